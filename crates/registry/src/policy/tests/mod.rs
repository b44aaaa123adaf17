use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::{Problem, registry, source};

mod validation;

/// A catalogue whose numbers put calls exactly on the thresholds: with a standard agent,
/// `note` scores 10, `level` over 10 makes it 60 (approval_at), `urgent` text 59, tag `b` 95
/// (refuse_at).
const ACTIONS: &str = r#"
policy:
  risk_scores: {low: 10, medium: 40, high: 70}
  tier_adjustments: {core: -5, standard: 0, experimental: 15}
  approval_at: 60
  refuse_at: 95
  default_approval_expiry: 2h
actions:
  - id: reply
    description: Answer.
    risk: low
    parameters: {type: object, properties: {text: {type: string}}, required: [text], additionalProperties: false}
  - id: note
    description: Write a note.
    risk: low
    parameters:
      type: object
      properties:
        text: {type: string}
        level: {type: number}
        tag: {type: string, enum: [a, b]}
      additionalProperties: false
    rules:
      - {when: {argument: level, above: 10}, add: 50, reason: high levels}
      - {when: {argument: text, matches: "(?i)urgent"}, add: 49, reason: urgent notes}
      - {when: {argument: tag, equals: b}, add: 85, reason: tag b}
  - id: post
    description: Post outside.
    risk: medium
    parameters: {type: object, properties: {}, additionalProperties: false}
  - id: gated
    description: Always asks.
    risk: low
    approval: true
    approval_expiry: 10m
    parameters: {type: object, properties: {}, additionalProperties: false}
"#;

const FLEETS: &str = "fleets:\n  - {id: atlas, name: Atlas, description: Research.}\n";

const AGENTS: &str = "fleet: atlas\nagents:
  - {id: scout, name: Scout, description: D., tier: standard, system_prompt: P., actions: [reply, note, post, gated]}
  - {id: boss, name: Boss, description: D., tier: core, system_prompt: P., actions: [reply, note, post]}
  - {id: lab, name: Lab, description: D., tier: experimental, system_prompt: P., actions: [reply, note, post]}
  - {id: off, name: Off, description: D., tier: standard, system_prompt: P., actions: [reply, note], status: disabled}
";

fn build_with(actions: &str) -> (Registry, Vec<Problem>) {
    registry::build(&source::builtin(
        "agents",
        &[
            ("actions.yaml", actions),
            ("fleets.yaml", FLEETS),
            ("atlas.yaml", AGENTS),
        ],
    ))
}

fn fixture() -> Registry {
    let (registry, problems) = build_with(ACTIONS);
    assert!(problems.is_empty(), "{problems:#?}");
    registry
}

fn assess(registry: &Registry, agent: &str, action: &str, arguments: Value) -> Assessment {
    registry.assess(registry.get(agent).unwrap(), action, &arguments)
}

#[test]
fn the_tier_adjusts_the_base_score() {
    let registry = fixture();
    for (agent, score, reason) in [
        ("boss", 5, Some("core agent: -5")),
        ("scout", 10, None),
        ("lab", 25, Some("experimental agent: +15")),
    ] {
        let assessment = assess(&registry, agent, "note", json!({}));
        assert_eq!(assessment.decision, ActionDecision::Allowed, "{agent}");
        assert_eq!(assessment.risk_score, score, "{agent}");
        assert_eq!(assessment.reasons[0], "low risk: base score 10");
        assert_eq!(assessment.reasons.get(1).map(String::as_str), reason);
    }
}

#[test]
fn above_applies_only_to_numbers_over_the_limit() {
    let registry = fixture();
    assert_eq!(
        assess(&registry, "scout", "note", json!({"level": 10})).risk_score,
        10
    );
    let over = assess(&registry, "scout", "note", json!({"level": 10.5}));
    assert_eq!(over.risk_score, 60);
    assert!(
        over.reasons.contains(&"high levels: +50".to_string()),
        "{over:?}"
    );
}

#[test]
fn the_score_at_approval_at_needs_approval_and_one_below_does_not() {
    let registry = fixture();
    let at = assess(&registry, "scout", "note", json!({"level": 11}));
    assert_eq!(at.decision, ActionDecision::NeedsApproval);
    assert_eq!(
        at.reasons.last().unwrap(),
        "score 60 is at or above approval_at 60"
    );
    // `matches` ignores case here through (?i), and finds the word anywhere.
    let below = assess(&registry, "scout", "note", json!({"text": "an URGENT one"}));
    assert_eq!(below.risk_score, 59);
    assert_eq!(below.decision, ActionDecision::Allowed);
    assert_eq!(
        assess(&registry, "scout", "note", json!({"text": "calm"})).risk_score,
        10
    );
}

#[test]
fn the_score_at_refuse_at_is_refused_and_one_below_asks() {
    let registry = fixture();
    let at = assess(&registry, "scout", "note", json!({"tag": "b"}));
    assert_eq!((at.decision, at.risk_score), (ActionDecision::Refused, 95));
    assert_eq!(
        at.reasons.last().unwrap(),
        "score 95 is at or above refuse_at 95: refused"
    );
    let below = assess(&registry, "boss", "note", json!({"tag": "b"}));
    assert_eq!(
        (below.decision, below.risk_score),
        (ActionDecision::NeedsApproval, 90)
    );
    assert_eq!(
        assess(&registry, "scout", "note", json!({"tag": "a"})).risk_score,
        10
    );
}

#[test]
fn scores_stay_within_100_and_every_rule_that_applies_is_a_reason() {
    let registry = fixture();
    let all = assess(
        &registry,
        "scout",
        "note",
        json!({"level": 99, "text": "urgent", "tag": "b"}),
    );
    assert_eq!(all.risk_score, 100);
    assert_eq!(all.decision, ActionDecision::Refused);
    assert_eq!(all.reasons.len(), 5, "{all:?}");
}

#[test]
fn the_catalogue_and_the_experimental_tier_ask_for_approval_below_the_threshold() {
    let registry = fixture();
    let gated = assess(&registry, "scout", "gated", json!({}));
    assert_eq!(
        (gated.decision, gated.risk_score),
        (ActionDecision::NeedsApproval, 10)
    );
    assert!(
        gated
            .reasons
            .iter()
            .any(|r| r.contains("catalogue requires approval"))
    );

    let lab = assess(&registry, "lab", "post", json!({}));
    assert_eq!(
        (lab.decision, lab.risk_score),
        (ActionDecision::NeedsApproval, 55)
    );
    assert!(
        lab.reasons
            .iter()
            .any(|r| r.contains("experimental agents"))
    );
    assert_eq!(
        assess(&registry, "scout", "post", json!({})).decision,
        ActionDecision::Allowed
    );
}

#[test]
fn unknown_unheld_and_disabled_are_refused_with_the_reason() {
    let registry = fixture();
    for (agent, action, reason) in [
        (
            "scout",
            "launch_rocket",
            "`launch_rocket` is not in the action catalogue",
        ),
        ("boss", "gated", "agent `boss` does not hold `gated`"),
        ("off", "note", "agent `off` is disabled"),
    ] {
        let assessment = assess(&registry, agent, action, json!({}));
        assert_eq!(
            assessment.decision,
            ActionDecision::Refused,
            "{agent} {action}"
        );
        assert_eq!(assessment.risk_score, 100);
        assert_eq!(assessment.reasons, vec![reason.to_string()]);
        assert_eq!(registry.decide(agent, action), ActionDecision::Refused);
    }
    assert_eq!(registry.decide("nobody", "note"), ActionDecision::Refused);
}

#[test]
fn approval_expiry_is_the_actions_or_the_default() {
    let registry = fixture();
    let expiry = |action| assess(&registry, "scout", action, json!({})).approval_expiry;
    assert_eq!(expiry("gated"), Duration::from_secs(600));
    assert_eq!(expiry("note"), Duration::from_secs(7200));
    let json = serde_json::to_value(assess(&registry, "scout", "gated", json!({}))).unwrap();
    assert_eq!(json["decision"], "needs_approval");
    assert_eq!(json["approval_expiry"], "10m");
}

#[test]
fn decide_is_assess_without_arguments() {
    let registry = fixture();
    assert_eq!(registry.decide("scout", "note"), ActionDecision::Allowed);
    assert_eq!(
        registry.decide("scout", "gated"),
        ActionDecision::NeedsApproval
    );
    assert_eq!(
        registry.decide("lab", "post"),
        ActionDecision::NeedsApproval
    );
}

#[test]
fn tools_are_the_held_actions_but_reply() {
    let registry = fixture();
    let ids = |agent| -> Vec<String> {
        registry
            .tools_for(registry.get(agent).unwrap())
            .iter()
            .map(|action| action.id.clone())
            .collect()
    };
    assert_eq!(ids("scout"), ["note", "post", "gated"]);
    assert_eq!(ids("off"), ["note"]);
}

#[test]
fn equals_compares_numbers_as_numbers() {
    let condition: Condition = serde_yaml::from_str("{argument: n, equals: 3}").unwrap();
    assert!(condition.applies(&json!({"n": 3.0})));
    assert!(!condition.applies(&json!({"n": "3"})));
    assert!(!condition.applies(&json!({})));
    assert!(!condition.applies(&Value::Null));
    let back = serde_yaml::to_string(&condition).unwrap();
    assert_eq!(back.trim(), "argument: n\nequals: 3");
}

// ---- The built-in catalogue.

#[test]
fn the_builtin_catalogue_scores_its_examples() {
    let registry = Registry::builtin();
    let check = |agent, action, arguments: Value, decision, score| {
        let assessment = assess(&registry, agent, action, arguments);
        assert_eq!(
            (assessment.decision, assessment.risk_score),
            (decision, score),
            "{agent} {action}: {assessment:?}"
        );
    };
    use ActionDecision::{Allowed, NeedsApproval, Refused};
    let access = |change, role| json!({"system": "okta", "principal": "mallory", "change": change, "role": role});
    // Shield Core is core (-5) on a high-risk action (70), which always needs approval.
    check(
        "shield-core",
        "modify_access",
        access("rotate", "api-key"),
        NeedsApproval,
        65,
    );
    check(
        "shield-core",
        "modify_access",
        access("revoke", "Admin"),
        NeedsApproval,
        85,
    );
    // What a prompt injection asks for is refused outright, approval or not.
    check(
        "shield-core",
        "modify_access",
        access("grant", "org-owner"),
        Refused,
        95,
    );
    let spend = |amount| json!({"amount": amount, "currency": "EUR", "purpose": "hotel"});
    check(
        "hotel-optimizer-x",
        "spend_budget",
        spend(120),
        NeedsApproval,
        70,
    );
    check(
        "hotel-optimizer-x",
        "spend_budget",
        spend(1500),
        NeedsApproval,
        85,
    );
    check(
        "hotel-optimizer-x",
        "spend_budget",
        spend(20000),
        Refused,
        100,
    );
    let update = |status| json!({"status": status});
    check(
        "core-ticket-triage",
        "update_ticket",
        update("In Progress"),
        Allowed,
        35,
    );
    check(
        "core-ticket-triage",
        "update_ticket",
        update("Resolved"),
        NeedsApproval,
        60,
    );
    let critical = json!({"title": "t", "description": "d", "priority": "critical"});
    check(
        "catalog-curator",
        "create_ticket",
        critical.clone(),
        NeedsApproval,
        60,
    );
    check(
        "atlas-agent-foundry",
        "create_ticket",
        critical,
        Allowed,
        55,
    );
    check(
        "wanderweave",
        "search_memory",
        json!({"query": "lisbon"}),
        Allowed,
        10,
    );

    let tools: Vec<&str> = registry
        .tools_for(registry.get("shield-core").unwrap())
        .iter()
        .map(|action| action.id.as_str())
        .collect();
    assert!(
        !tools.contains(&REPLY) && tools.contains(&"modify_access"),
        "{tools:?}"
    );
}
