//! Load-time validation of the policy block, the argument schemas and the rules: each
//! mistake is a problem naming the action, and only that problem.

use std::time::Duration;

use super::{ACTIONS, build_with};
use crate::policy::PolicyOptions;

#[track_caller]
fn assert_problems(actions: &str, expected: &[(&str, &str)]) {
    let (_, problems) = build_with(actions);
    for (item, message) in expected {
        assert!(
            problems
                .iter()
                .any(|p| p.item.contains(item) && p.message.contains(message)),
            "no problem about {item} saying {message:?}; got: {problems:#?}"
        );
    }
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
}

/// The fixture with `note`'s rules replaced by `rules`.
fn with_note_rules(rules: &str) -> String {
    let start = ACTIONS.find("    rules:").unwrap();
    let end = ACTIONS.find("  - id: post").unwrap();
    format!(
        "{}    rules:\n{rules}{}",
        &ACTIONS[..start],
        &ACTIONS[end..]
    )
}

#[test]
fn without_a_policy_block_the_defaults_apply() {
    let without = ACTIONS.replace("  default_approval_expiry: 2h\n", "");
    let (registry, problems) = build_with(&without);
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(
        registry.policy().default_approval_expiry,
        Duration::from_secs(3600)
    );
    let start = ACTIONS.find("policy:").unwrap();
    let end = ACTIONS.find("actions:").unwrap();
    let (registry, problems) = build_with(&ACTIONS.replace(&ACTIONS[start..end], ""));
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(registry.policy(), &PolicyOptions::default());
}

#[test]
fn insane_policy_numbers_are_problems() {
    let policy = ACTIONS
        .replace(
            "{low: 10, medium: 40, high: 70}",
            "{low: 50, medium: 40, high: 96}",
        )
        .replace("experimental: 15", "experimental: 120")
        .replace("approval_at: 60", "approval_at: 97")
        .replace("2h", "0s");
    assert_problems(
        &policy,
        &[
            ("policy", "risk_scores.high 96 is at or above refuse_at 95"),
            ("policy", "low <= medium <= high"),
            ("policy", "tier_adjustments.experimental 120 is outside"),
            ("policy", "approval_at 97 and refuse_at 95"),
            ("policy", "default_approval_expiry must be more than 0"),
        ],
    );
    let long = ACTIONS.replace("approval_expiry: 10m", "approval_expiry: 60d");
    assert_problems(&long, &[("action `gated`", "longer than 7d")]);
}

#[test]
fn parameters_must_be_a_closed_object_schema_that_compiles() {
    let reply = "{type: object, properties: {text: {type: string}}, required: [text], additionalProperties: false}";
    for (schema, message) in [
        ("{type: string}", "must be an object schema"),
        (
            "{type: object, properties: {text: {type: string}}}",
            "additionalProperties: false",
        ),
        (
            "{type: object, additionalProperties: false}",
            "declare its arguments in `properties`",
        ),
        (
            "{type: object, properties: {}, required: [text], additionalProperties: false}",
            "`required` names `text`",
        ),
        (
            "{type: object, properties: {text: {type: strin}}, additionalProperties: false}",
            "does not compile",
        ),
    ] {
        assert_problems(
            &ACTIONS.replacen(reply, schema, 1),
            &[("action `reply`", message)],
        );
    }
    let missing = ACTIONS.replacen(&format!("    parameters: {reply}\n"), "", 1);
    // Only an MCP action may leave them to its server.
    assert_problems(&missing, &[("action `reply`", "must be an object schema")]);
}

#[test]
fn an_mcp_action_names_a_declared_server_and_may_take_its_schema_from_it() {
    let servers = "mcp_servers:\n  - {id: docs, url: 'http://127.0.0.1:9/mcp', headers: {Authorization: 'Bearer ${DOCS_TOKEN}'}}\n  - {id: both, url: 'http://x/mcp', command: run}\n  - {id: Bad_Id, command: run, headers: {a: b}}\n";
    let action = |id: &str, server: &str| {
        format!(
            "  - id: {id}\n    description: d\n    risk: low\n    executor: {{kind: mcp, server: {server}, tool: lookup}}\n"
        )
    };
    let text = format!(
        "{servers}{}{}{}",
        ACTIONS,
        action("look_up", "docs"),
        action("nowhere", "absent")
    );
    let (registry, problems) = build_with(&text);
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let has = |item: &str, message: &str| {
        lines
            .iter()
            .any(|line| line.contains(item) && line.contains(message))
    };
    assert!(has("action `nowhere`", "does not declare"), "{lines:#?}");
    assert!(has("mcp server `both`", "exactly one of"), "{lines:#?}");
    assert!(has("mcp server `Bad_Id`", "kebab-case"), "{lines:#?}");
    assert!(
        has("mcp server `Bad_Id`", "headers go with `url`"),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|line| line.contains("look_up")),
        "{lines:#?}"
    );
    let action = registry.action("look_up").unwrap();
    assert_eq!(action.mcp_tool(), Some(("docs", "lookup")));
    assert!(action.parameters.is_null());
    assert_eq!(
        registry.mcp_server("docs").unwrap().secret_names(),
        ["DOCS_TOKEN"]
    );
}

#[test]
fn rules_must_fit_the_arguments_they_test() {
    let rules = r#"      - {when: {argument: colour, above: 1}, add: 5, reason: r}
      - {when: {argument: text, above: 1}, add: 5, reason: r}
      - {when: {argument: level, matches: x}, add: 5, reason: r}
      - {when: {argument: text, equals: x}, add: 5, reason: r}
      - {when: {argument: tag, equals: c}, add: 5, reason: r}
      - {when: {argument: tag, equals: a}, add: 0, reason: ' '}
"#;
    assert_problems(
        &with_note_rules(rules),
        &[
            (
                "action `note`",
                "rules[0] (`colour`): `colour` is not an argument",
            ),
            ("action `note`", "rules[1] (`text`): `above` tests numbers"),
            (
                "action `note`",
                "rules[2] (`level`): `matches` tests strings",
            ),
            (
                "action `note`",
                "rules[3] (`text`): `equals` on a free-form string",
            ),
            (
                "action `note`",
                "rules[4] (`tag`): `equals: \"c\"` is not one of",
            ),
            ("action `note`", "rules[5] (`tag`): reason is empty"),
            (
                "action `note`",
                "rules[5] (`tag`): add 0 is outside 1 to 100",
            ),
        ],
    );
}

#[test]
fn a_condition_holds_exactly_one_test_and_a_pattern_that_compiles() {
    let two = with_note_rules(
        "      - {when: {argument: level, above: 1, equals: 2}, add: 5, reason: r}\n",
    );
    assert_problems(
        &two,
        &[("", "needs exactly one of `above`, `matches` or `equals`")],
    );
    let bad = with_note_rules(
        "      - {when: {argument: text, matches: \"(unclosed\"}, add: 5, reason: r}\n",
    );
    assert_problems(&bad, &[("", "`matches`: regex parse error")]);
    let unknown =
        with_note_rules("      - {when: {argument: text, below: 1}, add: 5, reason: r}\n");
    assert_problems(&unknown, &[("", "unknown field `below`")]);
}
