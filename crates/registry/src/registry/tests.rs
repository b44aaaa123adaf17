use std::path::Path;

use super::*;
use crate::agent::{AgentState, Tier};
use crate::catalogue::Risk;

/// The built-in personas named in the issue, with the fleet each belongs to.
const PERSONAS: &[(&str, &str)] = &[
    ("wanderweave", "Creative"),
    ("design-studio-pro", "Creative"),
    ("showbuilder", "Creative"),
    ("culture-code", "Creative"),
    ("aegis-sentinel", "Aegis"),
    ("shield-core", "Aegis"),
    ("sentinel-audit-nexus", "Sentinel"),
    ("atlas-sentinel", "Atlas"),
    ("atlas-agent-foundry", "Atlas"),
    ("atlas-researcher-market", "Atlas"),
    ("atlas-researcher-tech", "Atlas"),
    ("atlas-researcher-risk", "Atlas"),
    ("travel-fleet", "Travel & Commerce"),
    ("hotel-optimizer-x", "Travel & Commerce"),
];

const FLEETS: &[&str] = &[
    "Atlas",
    "Aegis",
    "Travel & Commerce",
    "Creative",
    "Commerce",
    "Sentinel",
    "Core",
    "Experimental",
];

#[test]
fn builtin_registry_loads_without_problems_or_warnings() {
    let sources = source::builtin("agents", builtin::AGENT_FILES);
    let (registry, problems) = build(&sources);
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(registry.warnings().is_empty(), "{:#?}", registry.warnings());
}

#[test]
fn builtin_registry_has_about_thirty_agents_in_eight_fleets() {
    let registry = Registry::builtin();
    let count = registry.agents().len();
    assert!((28..=34).contains(&count), "{count} agents");
    let fleet_names: Vec<String> = registry.fleets().into_iter().map(|f| f.name).collect();
    assert_eq!(fleet_names, FLEETS);
    for fleet in registry.fleets() {
        assert!(fleet.enabled >= 1, "{} has no enabled agent", fleet.name);
    }
    let ids: Vec<&str> = registry.agents().iter().map(|a| a.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "agents() is sorted by id");
}

#[test]
fn every_named_persona_is_in_its_fleet() {
    let registry = Registry::builtin();
    for (id, fleet) in PERSONAS {
        let agent = registry
            .get(id)
            .unwrap_or_else(|| panic!("{id} is missing"));
        assert_eq!(agent.fleet, *fleet, "{id}");
        assert!(agent.is_enabled(), "{id}");
        assert!(
            registry.fleet(fleet).iter().any(|a| a.id == *id),
            "{id} not among fleet({fleet})"
        );
    }
}

#[test]
fn builtin_prompts_are_specific_multi_line_and_distinct() {
    let registry = Registry::builtin();
    let mut seen = std::collections::BTreeSet::new();
    for agent in registry.agents() {
        assert!(
            agent.system_prompt.lines().count() >= 5,
            "{}: prompt too short",
            agent.id
        );
        assert!(
            agent.system_prompt.contains(&agent.name),
            "{}: the prompt should introduce the persona by name",
            agent.id
        );
        assert!(seen.insert(agent.system_prompt.as_str()), "{}", agent.id);
    }
}

#[test]
fn the_directory_loads_the_same_as_the_builtin() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../agents");
    let loaded = Registry::load(&dir).unwrap();
    let builtin = Registry::builtin();
    assert_eq!(loaded.agents(), builtin.agents());
    assert_eq!(loaded.actions(), builtin.actions());
    assert_eq!(loaded.fleets(), builtin.fleets());
}

#[test]
fn fleet_lookup_ignores_case_accepts_ids_and_skips_disabled_agents() {
    let registry = Registry::builtin();
    let by_name: Vec<&str> = registry
        .fleet("travel & COMMERCE")
        .iter()
        .map(|a| a.id.as_str())
        .collect();
    let by_id: Vec<&str> = registry
        .fleet("travel-commerce")
        .iter()
        .map(|a| a.id.as_str())
        .collect();
    assert_eq!(by_name, by_id);
    assert!(by_name.contains(&"hotel-optimizer-x"));

    let disabled = registry.get("lab-trend-scout").unwrap();
    assert_eq!(disabled.status, AgentState::Disabled);
    assert!(
        !registry
            .fleet("experimental")
            .iter()
            .any(|a| a.id == "lab-trend-scout")
    );
    let summary = registry
        .fleets()
        .into_iter()
        .find(|f| f.id == "experimental")
        .unwrap();
    assert!(summary.agents.contains(&"lab-trend-scout".to_string()));
    assert_eq!(summary.enabled, summary.agents.len() - 1);
    assert!(registry.fleet("Narnia").is_empty());
}

#[test]
fn approvals_follow_the_catalogue_and_the_tier() {
    let registry = Registry::builtin();
    // Low risk, no approval in the catalogue.
    assert_eq!(
        registry.decide("wanderweave", "reply"),
        ActionDecision::Allowed
    );
    assert!(!registry.requires_approval("wanderweave", "reply"));
    // Medium risk without catalogue approval: allowed for core and standard agents...
    assert!(!registry.requires_approval("core-ticket-triage", "write_ticket_comment"));
    // ...but held for experimental ones.
    assert_eq!(
        registry.decide("lab-autopilot", "write_ticket_comment"),
        ActionDecision::NeedsApproval
    );
    // Catalogue approvals apply to every tier.
    assert!(registry.requires_approval("shield-core", "modify_access"));
    assert!(registry.requires_approval("hotel-optimizer-x", "spend_budget"));
    assert!(registry.requires_approval("showbuilder", "publish_content"));
    // Not held, unknown agent, unknown action: refused, and fail closed.
    assert_eq!(
        registry.decide("wanderweave", "modify_access"),
        ActionDecision::Refused
    );
    assert_eq!(registry.decide("nobody", "reply"), ActionDecision::Refused);
    assert_eq!(
        registry.decide("wanderweave", "launch_rocket"),
        ActionDecision::Refused
    );
    assert!(registry.requires_approval("nobody", "reply"));

    let tools: Vec<&str> = registry
        .actions_of("shield-core")
        .iter()
        .map(|a| a.id.as_str())
        .collect();
    assert!(tools.contains(&"modify_access"));
    assert_eq!(registry.action("modify_access").unwrap().risk, Risk::High);
}

#[test]
fn no_experimental_agent_holds_a_high_risk_action() {
    let registry = Registry::builtin();
    for agent in registry
        .agents()
        .iter()
        .filter(|a| a.tier == Tier::Experimental)
    {
        for action in registry.actions_of(&agent.id) {
            assert!(action.risk < Risk::High, "{} holds {}", agent.id, action.id);
        }
    }
}

#[test]
fn agents_serialize_for_the_api() {
    let registry = Registry::builtin();
    let json = serde_json::to_value(registry.get("hotel-optimizer-x").unwrap()).unwrap();
    assert_eq!(json["fleet"], "Travel & Commerce");
    assert_eq!(json["tier"], "standard");
    assert_eq!(json["status"], "enabled");
    assert_eq!(json["model"]["limits"]["requests_per_minute"], 60);
    assert!(json["model"]["name"].is_null());
    let whole = serde_json::to_value(&registry).unwrap();
    assert_eq!(whole["fleets"].as_array().unwrap().len(), 8);
}

// ---- Validation fixtures: each rule fails with a problem naming the file and the item.

const ACTIONS: &str = "
actions:
  - {id: reply, description: Answer., risk: low, parameters: {type: object, properties: {}, additionalProperties: false}}
  - {id: create_ticket, description: Open a ticket., risk: medium, parameters: {type: object, properties: {}, additionalProperties: false}}
  - {id: modify_access, description: Change access., risk: high, approval: true, parameters: {type: object, properties: {}, additionalProperties: false}}
";

const FLEETS_YAML: &str = "
fleets:
  - {id: atlas, name: Atlas, description: Research.}
  - {id: travel-commerce, name: Travel & Commerce, description: Trips.}
";

fn agent_yaml(id: &str, extra: &str) -> String {
    format!(
        "
  - id: {id}
    name: Agent {id}
    description: Does things.
    tier: standard
    system_prompt: You are agent {id}.
    actions: [reply]
{extra}"
    )
}

/// Loads a fixture directory: the valid base files, overridden or extended by `files`.
fn load_fixture(files: &[(&str, &str)]) -> Vec<Problem> {
    let dir = tempfile::tempdir().unwrap();
    let mut all: Vec<(&str, &str)> = vec![("actions.yaml", ACTIONS), ("fleets.yaml", FLEETS_YAML)];
    for (name, text) in files {
        all.retain(|(existing, _)| existing != name);
        all.push((name, text));
    }
    for (name, text) in all {
        if !text.is_empty() {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
    }
    match Registry::load(dir.path()) {
        Ok(_) => Vec::new(),
        Err(err) => {
            assert!(matches!(err, Error::Invalid { .. }), "{err}");
            err.problems().to_vec()
        }
    }
}

#[track_caller]
fn assert_problem(problems: &[Problem], file: &str, item: &str, message: &str) {
    let found = problems
        .iter()
        .any(|p| p.file.ends_with(file) && p.item.contains(item) && p.message.contains(message));
    assert!(
        found,
        "no problem in {file} about {item} saying {message:?}; got: {problems:#?}"
    );
    let line = problems
        .iter()
        .find(|p| p.file.ends_with(file) && p.item.contains(item))
        .unwrap()
        .to_string();
    assert!(line.contains(file) && line.contains(item), "{line}");
}

#[test]
fn a_valid_fixture_loads() {
    let file = format!("fleet: Atlas\nagents:{}", agent_yaml("scout", ""));
    assert_eq!(load_fixture(&[("atlas.yaml", &file)]), Vec::new());
}

#[test]
fn duplicate_agent_ids_name_both_files() {
    let atlas = format!("fleet: Atlas\nagents:{}", agent_yaml("scout", ""));
    let travel = format!("fleet: travel-commerce\nagents:{}", agent_yaml("scout", ""));
    let problems = load_fixture(&[("atlas.yaml", &atlas), ("travel.yaml", &travel)]);
    assert_problem(
        &problems,
        "travel.yaml",
        "agent `scout`",
        "duplicate agent id",
    );
    assert_problem(&problems, "travel.yaml", "agent `scout`", "atlas.yaml");
}

#[test]
fn undeclared_fleets_are_problems() {
    let file = format!("fleet: Narnia\nagents:{}", agent_yaml("scout", ""));
    let problems = load_fixture(&[("narnia.yaml", &file)]);
    assert_problem(
        &problems,
        "narnia.yaml",
        "fleet `Narnia`",
        "not declared in fleets.yaml",
    );

    let file = format!(
        "fleet: Atlas\nagents:{}",
        agent_yaml("scout", "    fleet: Travel & Commerce")
    );
    let problems = load_fixture(&[("atlas.yaml", &file)]);
    assert_problem(
        &problems,
        "atlas.yaml",
        "agent `scout`",
        "differs from the file's fleet",
    );
}

#[test]
fn unknown_and_duplicate_actions_are_problems() {
    let file = "fleet: Atlas\nagents:
  - id: scout
    name: Scout
    description: Does things.
    tier: standard
    system_prompt: You are Scout.
    actions: [reply, launch_rocket, reply]
";
    let problems = load_fixture(&[("atlas.yaml", file)]);
    assert_problem(
        &problems,
        "atlas.yaml",
        "agent `scout`",
        "action `launch_rocket` is not in actions.yaml",
    );
    assert_problem(
        &problems,
        "atlas.yaml",
        "agent `scout`",
        "action `reply` is listed twice",
    );
}

#[test]
fn experimental_agents_may_not_hold_high_risk_actions() {
    let file = "fleet: Atlas\nagents:
  - id: lab
    name: Lab
    description: Tries things.
    tier: experimental
    system_prompt: You are Lab.
    actions: [reply, create_ticket, modify_access]
";
    let problems = load_fixture(&[("atlas.yaml", file)]);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_problem(
        &problems,
        "atlas.yaml",
        "agent `lab`",
        "`modify_access` is high-risk",
    );
}

#[test]
fn empty_prompts_and_bad_model_settings_are_problems_all_reported() {
    let file = "fleet: Atlas\nagents:
  - id: Scout_1
    name: Scout
    description: Does things.
    tier: core
    system_prompt: \"  \"
    model: {name: '', temperature: 2.5, max_completion_tokens: 5000}
    actions: []
    max_hops: 0
    token_budget: 4000
";
    let problems = load_fixture(&[("atlas.yaml", file)]);
    for message in [
        "kebab-case",
        "system_prompt is empty",
        "actions is empty",
        "model.name is empty",
        "temperature 2.5 is outside",
        "max_completion_tokens 5000 exceeds token_budget 4000",
        "max_hops must be at least 1",
    ] {
        assert_problem(&problems, "atlas.yaml", "agent `Scout_1`", message);
    }
    assert_eq!(problems.len(), 7, "{problems:#?}");
}

#[test]
fn catalogue_rules() {
    let actions = "
actions:
  - {id: reply, description: Answer., risk: low, parameters: {type: object, properties: {}, additionalProperties: false}}
  - {id: reply, description: Again., risk: low, parameters: {type: object, properties: {}, additionalProperties: false}}
  - {id: nuke, description: Irreversible., risk: high, parameters: {type: object, properties: {}, additionalProperties: false}}
  - {id: Bad-Id, description: '', risk: low, parameters: {type: object, properties: {}, additionalProperties: false}}
";
    let file = format!("fleet: Atlas\nagents:{}", agent_yaml("scout", ""));
    let problems = load_fixture(&[("actions.yaml", actions), ("atlas.yaml", &file)]);
    assert_problem(
        &problems,
        "actions.yaml",
        "action `reply`",
        "declared twice",
    );
    assert_problem(
        &problems,
        "actions.yaml",
        "action `nuke`",
        "must set `approval: true`",
    );
    assert_problem(&problems, "actions.yaml", "action `Bad-Id`", "snake_case");
    assert_problem(
        &problems,
        "actions.yaml",
        "action `Bad-Id`",
        "description is empty",
    );
}

#[test]
fn fleets_file_rules() {
    let fleets = "
fleets:
  - {id: atlas, name: Atlas, description: Research.}
  - {id: ATLAS, name: atlas, description: Again.}
";
    let file = format!("fleet: Atlas\nagents:{}", agent_yaml("scout", ""));
    let problems = load_fixture(&[("fleets.yaml", fleets), ("atlas.yaml", &file)]);
    assert_problem(&problems, "fleets.yaml", "fleet `atlas`", "declared twice");
    assert_problem(&problems, "fleets.yaml", "fleet `atlas`", "not kebab-case");
}

#[test]
fn missing_declaration_files_and_parse_errors_name_the_file() {
    let file = format!("fleet: Atlas\nagents:{}", agent_yaml("scout", ""));
    let problems = load_fixture(&[("actions.yaml", ""), ("atlas.yaml", &file)]);
    assert_problem(&problems, "actions.yaml", "", "missing");
    // Without a catalogue, the agent's actions are not reported as unknown.
    assert_eq!(problems.len(), 1, "{problems:#?}");

    let unknown_field = format!(
        "fleet: Atlas\nagents:{}",
        agent_yaml("scout", "    colour: blue")
    );
    let problems = load_fixture(&[("atlas.yaml", &unknown_field)]);
    assert_problem(&problems, "atlas.yaml", "", "unknown field `colour`");
    assert!(problems[0].message.contains("agents[0]"), "{problems:#?}");
}

#[test]
fn an_agent_without_a_fleet_field_takes_the_files_by_display_name() {
    let file = format!("fleet: travel-commerce\nagents:{}", agent_yaml("scout", ""));
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("actions.yaml", ACTIONS),
        ("fleets.yaml", FLEETS_YAML),
        ("travel.yaml", file.as_str()),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let registry = Registry::load(dir.path()).unwrap();
    assert_eq!(registry.get("scout").unwrap().fleet, "Travel & Commerce");
    // Atlas has no agent: a warning, not a problem.
    assert_eq!(registry.warnings().len(), 1);
    assert!(registry.warnings()[0].to_string().contains("fleet `Atlas`"));
}

#[test]
fn an_unreadable_directory_is_an_io_error_naming_it() {
    let err = Registry::load(Path::new("/nonexistent/agents")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/agents"), "{err}");
}

#[test]
fn the_shipped_plugins_are_declared_executors_that_still_wait_for_approval() {
    use crate::executor::{Executor, GithubOperation, missing_secrets};
    let registry = Registry::builtin();
    for id in ["publish_content", "modify_access", "spend_budget"] {
        let action = registry.action(id).unwrap();
        assert!(action.approval, "{id} is approval-gated");
        let Some(Executor::Http(call)) = &action.executor else {
            panic!("{id} is a declared HTTP action");
        };
        assert_eq!(call.base_url_env.as_deref(), Some("ACTIONS_BASE_URL"));
        assert!(call.signature.is_some(), "{id} is signed");
    }
    let push = registry.action("github_open_pull_request").unwrap();
    assert!(push.approval, "a pull request waits for approval");
    assert!(matches!(
        &push.executor,
        Some(Executor::Github(call)) if call.operation == GithubOperation::OpenPullRequest
    ));
    let shield = registry.get("shield-core").unwrap();
    assert!(
        shield
            .actions
            .iter()
            .any(|a| a == "github_open_pull_request")
    );

    // Every required secret of every executor is named when unset, none when set.
    let missing = missing_secrets(registry.actions(), |_| false).join("\n");
    for name in [
        "ACTIONS_BASE_URL",
        "ACTIONS_TOKEN",
        "ACTIONS_SIGNING_KEY",
        "GITHUB_TOKEN",
    ] {
        assert!(missing.contains(name), "{name}: {missing}");
    }
    assert!(!missing.contains("GITHUB_API_URL"), "it has a default");
    assert!(missing_secrets(registry.actions(), |_| true).is_empty());
}

#[test]
fn executor_declarations_are_checked_at_load() {
    let actions = format!(
        "{ACTIONS}  - id: notify
    description: Tell the pager.
    risk: medium
    parameters: {{type: object, properties: {{text: {{type: string}}}}, additionalProperties: false}}
    executor: {{kind: http, url: /page, body: {{msg: '{{{{ arguments.txt }}}}'}}}}
  - id: read_repo
    description: Read a file.
    risk: low
    parameters: {{type: object, properties: {{repository: {{type: string}}}}, additionalProperties: false}}
    executor: {{kind: github, operation: read_file}}
"
    );
    let problems = load_fixture(&[("actions.yaml", &actions)]);
    assert_problem(
        &problems,
        "actions.yaml",
        "action `notify`",
        "not an http(s) URL",
    );
    assert_problem(
        &problems,
        "actions.yaml",
        "action `notify`",
        "no argument `txt`",
    );
    assert_problem(
        &problems,
        "actions.yaml",
        "action `read_repo`",
        "argument `path`",
    );

    // A kind nothing executes does not load at all.
    let actions = format!(
        "{ACTIONS}  - {{id: launch, description: d, risk: low, parameters: {{type: object}}, executor: {{kind: rocket}}}}\n"
    );
    let problems = load_fixture(&[("actions.yaml", &actions)]);
    assert_problem(&problems, "actions.yaml", "", "unknown variant `rocket`");
}
