//! Load-time checks of the policy block and of each action's arguments schema and rules,
//! so a mistake shows in `chatgptd config check`, not as a tool call that cannot be scored.

use std::time::Duration;

use serde_json::Value;

use super::PolicyOptions;
use super::rules::Test;
use crate::Problem;
use crate::catalogue::{ActionSpec, Risk};

/// The longest an approval may wait. `agents.approvals` keeps its records 30 days, and a
/// request must still be on the topic, with room to spare, when it is decided.
const MAX_APPROVAL_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Checks the `policy:` block.
pub(crate) fn check_policy(path: &str, policy: &PolicyOptions, problems: &mut Vec<Problem>) {
    let mut problem = |message: String| problems.push(Problem::new(path, "policy", message));
    let scores = policy.risk_scores;
    for risk in [Risk::Low, Risk::Medium, Risk::High] {
        let score = scores.of(risk);
        if score > 100 {
            problem(format!(
                "risk_scores.{} {score} is above 100",
                risk.as_str()
            ));
        } else if score >= policy.refuse_at {
            problem(format!(
                "risk_scores.{} {score} is at or above refuse_at {}: every {} action would be refused",
                risk.as_str(),
                policy.refuse_at,
                risk.as_str()
            ));
        }
    }
    if !(scores.low <= scores.medium && scores.medium <= scores.high) {
        problem("risk_scores must not fall as the risk rises (low <= medium <= high)".into());
    }
    let tiers = policy.tier_adjustments;
    for (tier, adjustment) in [
        ("core", tiers.core),
        ("standard", tiers.standard),
        ("experimental", tiers.experimental),
    ] {
        if !(-100..=100).contains(&adjustment) {
            problem(format!(
                "tier_adjustments.{tier} {adjustment} is outside -100 to 100"
            ));
        }
    }
    if !(policy.approval_at < policy.refuse_at && policy.refuse_at <= 100) {
        problem(format!(
            "approval_at {} and refuse_at {} must satisfy approval_at < refuse_at <= 100",
            policy.approval_at, policy.refuse_at
        ));
    }
    if let Some(message) = expiry_problem(policy.default_approval_expiry) {
        problem(format!("default_approval_expiry {message}"));
    }
}

/// Checks one action's `approval_expiry`, `parameters` and `rules`. With `schema_later`
/// (an MCP action without `parameters`, whose schema its server lists at run time) the
/// rules are checked for what they say alone, not against the arguments.
pub(crate) fn check_action(
    path: &str,
    item: &str,
    action: &ActionSpec,
    schema_later: bool,
    problems: &mut Vec<Problem>,
) {
    let mut problem = |message: String| problems.push(Problem::new(path, item, message));
    if let Some(message) = action.approval_expiry.and_then(expiry_problem) {
        problem(format!("approval_expiry {message}"));
    }
    let properties = if schema_later {
        None
    } else {
        match check_parameters(&action.parameters) {
            Ok(properties) => Some(properties),
            Err(message) => {
                problem(format!("parameters: {message}"));
                // Without a usable schema the rules cannot be checked against it.
                return;
            }
        }
    };
    for (index, rule) in action.rules.iter().enumerate() {
        let argument = &rule.when.argument;
        let at = format!("rules[{index}] (`{argument}`)");
        if rule.reason.trim().is_empty() {
            problem(format!("{at}: reason is empty"));
        }
        if !(1..=100).contains(&rule.add) {
            problem(format!("{at}: add {} is outside 1 to 100", rule.add));
        }
        let Some(properties) = properties else {
            continue;
        };
        let Some(declared) = properties.get(argument) else {
            problem(format!(
                "{at}: `{argument}` is not an argument of the action's parameters"
            ));
            continue;
        };
        if let Some(message) = test_problem(&rule.when.test, declared) {
            problem(format!("{at}: {message}"));
        }
    }
}

fn expiry_problem(expiry: Duration) -> Option<String> {
    if expiry.is_zero() {
        Some("must be more than 0".into())
    } else if expiry > MAX_APPROVAL_EXPIRY {
        Some(format!(
            "{} is longer than 7d (agents.approvals keeps a request 30 days)",
            humantime::format_duration(expiry)
        ))
    } else {
        None
    }
}

/// The schema's `properties`, once it is an object schema that closes its arguments and
/// compiles.
fn check_parameters(schema: &Value) -> Result<&serde_json::Map<String, Value>, String> {
    if schema.get("type") != Some(&Value::from("object")) {
        return Err("must be an object schema (`type: object`)".into());
    }
    if schema.get("additionalProperties") != Some(&Value::Bool(false)) {
        // A model must not be able to slip in arguments no rule looks at.
        return Err("must set `additionalProperties: false`".into());
    }
    let properties = match schema.get("properties") {
        Some(Value::Object(properties)) => properties,
        _ => return Err("must declare its arguments in `properties`".into()),
    };
    if let Some(required) = schema.get("required") {
        let names = required.as_array().map(|names| {
            names
                .iter()
                .map(|name| name.as_str().unwrap_or_default())
                .collect::<Vec<_>>()
        });
        let Some(names) = names else {
            return Err("`required` must be a list of argument names".into());
        };
        if let Some(name) = names.iter().find(|name| !properties.contains_key(**name)) {
            return Err(format!(
                "`required` names `{name}`, which is not in `properties`"
            ));
        }
    }
    jsonschema::validator_for(schema).map_err(|err| format!("does not compile: {err}"))?;
    Ok(properties)
}

/// What is wrong with testing an argument declared as `declared` with `test`.
fn test_problem(test: &Test, declared: &Value) -> Option<String> {
    let types: Vec<&str> = match declared.get("type") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let enumerated = declared.get("enum").and_then(Value::as_array);
    match test {
        Test::Above(_) if !types.iter().any(|t| matches!(*t, "number" | "integer")) => {
            Some("`above` tests numbers, and the argument is not declared a number".into())
        }
        Test::Matches(_) if !types.contains(&"string") => {
            Some("`matches` tests strings, and the argument is not declared a string".into())
        }
        Test::Equals(value) if value.is_array() || value.is_object() => {
            Some("`equals` takes a string, a number or a boolean".into())
        }
        Test::Equals(value) => match enumerated {
            Some(allowed) if !allowed.contains(value) => Some(format!(
                "`equals: {value}` is not one of the argument's `enum` values"
            )),
            // `Closed` or ` closed` would slip past an exact comparison.
            None if types.contains(&"string") => Some(
                "`equals` on a free-form string is easy to sidestep: declare an `enum`, or use `matches` with `(?i)`"
                    .into(),
            ),
            _ => None,
        },
        _ => None,
    }
}
