//! Agents registered, changed and disabled at run time (`POST /agents`, `PATCH` and
//! `DELETE /agents/{id}`, scope `admin`), and the heartbeats an externally hosted GPT reports
//! (`POST /agents/{id}/heartbeat`, scope `send`). Registrations go through the
//! [`LiveRegistry`](chatgptd_fleet::LiveRegistry): validated as the files are, stored in the
//! compacted `agents.registry` topic with the caller's token name.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chatgptd_fleet::RegistryError;
use chatgptd_fleet::reported::{self, MAX_REPORT_TTL, Report, ReportedStatus};
use chatgptd_registry::{AgentSpec, AgentState};
use chatgptd_runtime::http::openapi::ErrorBody;
use chatgptd_runtime::http::{Caller, error_response as error, json_body};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AgentsApi;

/// Registers a new agent: the fields of an agent in `agents/<fleet>.yaml`, `fleet` included.
#[utoipa::path(post, path = "/agents", tag = "agents",
    request_body(content = serde_json::Value, description = "an agent, as in `agents/<fleet>.yaml` with its `fleet`"),
    responses(
        (status = 201, description = "registered: the agent as stored", body = serde_json::Value),
        (status = 400, description = "invalid: `problems` names each field", body = ErrorBody),
        (status = 409, description = "an agent with this id exists", body = ErrorBody),
        (status = 503, description = "the registry topic did not take it", body = ErrorBody),
    ))]
pub(super) async fn register(
    State(state): State<AgentsApi>,
    caller: Caller,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let value = match json_body(body) {
        Ok(value) => value,
        Err(response) => return *response,
    };
    let agent = match parse(value) {
        Ok(agent) => agent,
        Err(response) => return *response,
    };
    if state.registry().get(&agent.id).is_some() {
        return error(
            StatusCode::CONFLICT,
            "an agent with this id exists; PATCH /agents/{id} changes it",
            json!({"agent": agent.id}),
        );
    }
    write(&state, agent, "register", &caller, StatusCode::CREATED).await
}

/// Changes an agent (from the files or registered at run time): the given fields replace
/// its own, objects (`model`, `model.limits`) field by field; `"status": "enabled"` enables
/// a disabled agent.
#[utoipa::path(patch, path = "/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "the agent id", example = "wanderweave")),
    request_body(content = serde_json::Value, description = "the fields to change"),
    responses(
        (status = 200, description = "changed: the agent as stored", body = serde_json::Value),
        (status = 400, description = "invalid: `problems` names each field", body = ErrorBody),
        (status = 404, description = "no such agent", body = ErrorBody),
        (status = 503, description = "the registry topic did not take it", body = ErrorBody),
    ))]
pub(super) async fn patch(
    State(state): State<AgentsApi>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let changes = match json_body(body) {
        Ok(changes) => changes,
        Err(response) => return *response,
    };
    if !changes.is_object() {
        return invalid(vec![
            json!({"field": "", "message": "the body must be a JSON object"}),
        ]);
    }
    if changes
        .get("id")
        .is_some_and(|new| new.as_str() != Some(id.as_str()))
    {
        return invalid(vec![
            json!({"field": "id", "message": "an agent's id cannot change (it keys its messages)"}),
        ]);
    }
    let Some(known) = state.registry().get(&id).cloned() else {
        return error(StatusCode::NOT_FOUND, "unknown agent", json!({"agent": id}));
    };
    let mut value = json!(known);
    merge(&mut value, changes);
    let agent = match parse(value) {
        Ok(agent) => agent,
        Err(response) => return *response,
    };
    let change = match (known.status, agent.status) {
        (AgentState::Disabled, AgentState::Enabled) => "enable",
        (AgentState::Enabled, AgentState::Disabled) => "disable",
        _ => "patch",
    };
    write(&state, agent, change, &caller, StatusCode::OK).await
}

/// Disables an agent: it stays listed with its history, messages to it are refused with the
/// reason `agent_disabled`. `PATCH` with `"status": "enabled"` brings it back.
#[utoipa::path(delete, path = "/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "the agent id", example = "wanderweave")),
    responses(
        (status = 200, description = "disabled: the agent as stored", body = serde_json::Value),
        (status = 404, description = "no such agent", body = ErrorBody),
        (status = 503, description = "the registry topic did not take it", body = ErrorBody),
    ))]
pub(super) async fn disable(
    State(state): State<AgentsApi>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let Some(mut agent) = state.registry().get(&id).cloned() else {
        return error(StatusCode::NOT_FOUND, "unknown agent", json!({"agent": id}));
    };
    agent.status = AgentState::Disabled;
    write(&state, agent, "disable", &caller, StatusCode::OK).await
}

/// The body of `POST /agents/{id}/heartbeat`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Heartbeat {
    /// What the agent is doing.
    status: ReportedStatus,
    /// How long the report holds, in seconds (1 to 86400); after it the agent shows `stale`.
    #[schema(minimum = 1, maximum = 86400)]
    ttl_s: u64,
}

/// An externally hosted GPT reports its status, valid for `ttl_s` seconds.
#[utoipa::path(post, path = "/agents/{id}/heartbeat", tag = "agents",
    params(("id" = String, Path, description = "the agent id", example = "wanderweave")),
    request_body = Heartbeat,
    responses(
        (status = 200, description = "recorded: the report as `GET /agents/{id}` shows it", body = serde_json::Value),
        (status = 400, description = "invalid body, or a TTL out of bounds", body = ErrorBody),
        (status = 404, description = "no such agent", body = ErrorBody),
        (status = 503, description = "memory unavailable", body = ErrorBody),
    ))]
pub(super) async fn heartbeat(
    State(state): State<AgentsApi>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<Heartbeat>, JsonRejection>,
) -> Response {
    let beat = match json_body(body) {
        Ok(beat) => beat,
        Err(response) => return *response,
    };
    if !(1..=MAX_REPORT_TTL.as_secs()).contains(&beat.ttl_s) {
        return error(
            StatusCode::BAD_REQUEST,
            "ttl_s out of range",
            json!({"field": "ttl_s", "min": 1, "max": MAX_REPORT_TTL.as_secs()}),
        );
    }
    if state.registry().get(&id).is_none() {
        return error(StatusCode::NOT_FOUND, "unknown agent", json!({"agent": id}));
    }
    let report = Report {
        status: beat.status,
        at_ms: chatgptd_types::now_ms(),
        ttl_s: Duration::from_secs(beat.ttl_s).as_secs(),
        by: caller.name().to_string(),
    };
    match reported::report(state.memory.as_ref(), &id, &report).await {
        Ok(()) => Json(json!({
            "agent": id,
            "reported": reported::health_of(&report, report.at_ms),
        }))
        .into_response(),
        Err(err) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "memory unavailable",
            json!({"detail": err.to_string()}),
        ),
    }
}

/// The agent in `value`, or the 400 naming what does not fit.
fn parse(value: Value) -> Result<AgentSpec, Box<Response>> {
    serde_json::from_value(value).map_err(|err| {
        Box::new(invalid(vec![
            json!({"field": field_of(&err.to_string()), "message": err.to_string()}),
        ]))
    })
}

/// The field serde names in its message (``missing field `tier` ``), else empty.
fn field_of(message: &str) -> String {
    message
        .split('`')
        .nth(1)
        .map(str::to_string)
        .unwrap_or_default()
}

/// The field a registry problem is about: its messages start with the field's name
/// (`model.temperature 3 is outside 0 to 2`, ``action `x` is not in actions.yaml``).
fn field_of_problem(message: &str) -> String {
    let first = message.split([' ', ':']).next().unwrap_or_default();
    match first {
        "ids" => "id".to_string(),
        "action" => "actions".to_string(),
        _ => first.to_string(),
    }
}

fn invalid(problems: Vec<Value>) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "invalid agent",
        json!({"problems": problems}),
    )
}

async fn write(
    state: &AgentsApi,
    agent: AgentSpec,
    change: &str,
    caller: &Caller,
    status: StatusCode,
) -> Response {
    let id = agent.id.clone();
    match state.live.write(agent, change, caller.name()).await {
        Ok(agent) => (
            status,
            Json(json!({
                "agent": agent,
                "registration": state.live.registration(&id),
            })),
        )
            .into_response(),
        Err(RegistryError::Invalid(problems)) => invalid(
            problems
                .iter()
                .map(|problem| json!({"field": field_of_problem(&problem.message), "message": problem.message}))
                .collect(),
        ),
        Err(err @ RegistryError::Kafka(_)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the registry topic did not take the change",
            json!({"detail": err.to_string()}),
        ),
    }
}

/// JSON merge patch (RFC 7386): objects merge field by field, anything else replaces.
fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(&key);
                } else {
                    merge(target.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patches_nested_objects() {
        let mut value = json!({"name": "a", "model": {"temperature": 0.7, "name": "m"}});
        merge(
            &mut value,
            json!({"model": {"temperature": 0.2}, "name": "b"}),
        );
        assert_eq!(
            value,
            json!({"name": "b", "model": {"temperature": 0.2, "name": "m"}})
        );
    }

    #[test]
    fn serde_messages_name_their_field() {
        assert_eq!(field_of("missing field `tier` at line 1"), "tier");
        assert_eq!(field_of("unknown field `colour`, expected"), "colour");
        assert_eq!(
            field_of_problem("model.temperature 9 is outside 0 to 2"),
            "model.temperature"
        );
        assert_eq!(
            field_of_problem("action `x` is not in actions.yaml"),
            "actions"
        );
        assert_eq!(field_of_problem("fleet `x` is not declared"), "fleet");
    }
}
