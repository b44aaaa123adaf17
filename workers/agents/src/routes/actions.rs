//! What agents may do, and people deciding it:
//! - `POST /agents/{id}/actions/check`: the policy's decision and risk score for a proposed
//!   action, with no effect;
//! - `POST /agents/{id}/actions`: ask the agent to take an action, through the same schema
//!   check, policy, approvals and audit as a call its model makes;
//! - `GET /approvals[?state=pending]`, `GET /approvals/{id}`, `POST /approvals/{id}/approve`
//!   and `/deny`: the approval queue. A second decision, or one after expiry, is 409.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chatgptd_actions::Decision;
use chatgptd_fleet::new_request;
use chatgptd_runtime::http::{Caller, error_response as error, json_body};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AgentsApi, DEFAULT_WAIT, MAX_WAIT, send_and_wait};
use crate::act::{ACTION_KIND, Checked, check as check_call, tools_for};
use crate::approvals::ApprovalError;

/// The body of the two action routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Proposed {
    /// The catalogued action.
    action: String,
    /// Its arguments, as its schema in `agents/actions.yaml` declares them.
    #[serde(default = "empty_object")]
    arguments: Value,
    /// Who asks (default `api`); `POST .../actions` only.
    #[serde(default)]
    from: Option<String>,
    /// Continue this conversation; `POST .../actions` only.
    #[serde(default)]
    conversation_id: Option<String>,
    /// Wait for the agent's answer (default) or return at once; `POST .../actions` only.
    #[serde(default = "yes")]
    wait: bool,
    /// How long to wait, in milliseconds (at most five minutes).
    #[serde(default)]
    timeout_ms: Option<u64>,
}

fn empty_object() -> Value {
    json!({})
}

fn yes() -> bool {
    true
}

/// `POST /agents/{id}/actions/check`.
pub(super) async fn check(
    State(state): State<AgentsApi>,
    Path(id): Path<String>,
    body: Result<Json<Proposed>, JsonRejection>,
) -> Response {
    let proposed = match json_body(body) {
        Ok(proposed) => proposed,
        Err(response) => return *response,
    };
    let Some(agent) = state.registry.get(&id) else {
        return error(StatusCode::NOT_FOUND, "unknown agent", json!({"agent": id}));
    };
    let tools = tools_for(&state.registry, agent);
    let arguments = proposed.arguments.to_string();
    let checked = check_call(&state.registry, agent, &tools, &proposed.action, &arguments);
    let assessment = match &checked {
        Checked::Invalid(detail) => {
            return Json(json!({
                "agent": id, "action": proposed.action, "decision": "refused", "risk_score": 0,
                "reasons": [format!("invalid arguments: {detail}")],
            }))
            .into_response();
        }
        Checked::NotHeld(assessment) | Checked::Assessed(_, assessment) => assessment,
    };
    Json(json!({
        "agent": id,
        "action": proposed.action,
        "decision": crate::act::decision_name(assessment.decision),
        "risk_score": assessment.risk_score,
        "reasons": assessment.reasons,
        "approval_expiry": humantime::format_duration(assessment.approval_expiry).to_string(),
    }))
    .into_response()
}

/// `POST /agents/{id}/actions`.
pub(super) async fn take(
    State(state): State<AgentsApi>,
    Path(id): Path<String>,
    body: Result<Json<Proposed>, JsonRejection>,
) -> Response {
    let proposed = match json_body(body) {
        Ok(proposed) => proposed,
        Err(response) => return *response,
    };
    match state.registry.get(&id) {
        Some(agent) if agent.is_enabled() => {}
        Some(_) => return error(StatusCode::CONFLICT, "agent disabled", json!({"agent": id})),
        None => return error(StatusCode::NOT_FOUND, "unknown agent", json!({"agent": id})),
    }
    let from = proposed.from.unwrap_or_else(|| "api".to_string());
    let body = json!({"action": proposed.action, "arguments": proposed.arguments}).to_string();
    let mut message = new_request(&from, &id, &body, proposed.conversation_id.as_deref(), 0);
    message.kind = ACTION_KIND.to_string();
    let wait = proposed.wait.then(|| {
        proposed
            .timeout_ms
            .map_or(DEFAULT_WAIT, Duration::from_millis)
            .min(MAX_WAIT)
    });
    send_and_wait(&state, &message, 1, wait).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct StateFilter {
    state: Option<String>,
}

/// `GET /approvals[?state=pending|approved|denied|expired]`.
pub(super) async fn approvals(
    State(state): State<AgentsApi>,
    Query(filter): Query<StateFilter>,
) -> Response {
    const STATES: [&str; 4] = ["pending", "approved", "denied", "expired"];
    if let Some(wanted) = &filter.state
        && !STATES.contains(&wanted.as_str())
    {
        return error(
            StatusCode::BAD_REQUEST,
            "unknown approval state",
            json!({"state": wanted, "expected": STATES}),
        );
    }
    match state.approvals.list(filter.state.as_deref()).await {
        Ok(list) => Json(json!({"approvals": list})).into_response(),
        Err(err) => unavailable(err),
    }
}

/// `GET /approvals/{id}`.
pub(super) async fn approval(State(state): State<AgentsApi>, Path(id): Path<String>) -> Response {
    match state.approvals.get(&id).await {
        Ok(Some(approval)) => Json(json!(approval)).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "unknown approval",
            json!({"approval": id}),
        ),
        Err(err) => unavailable(err),
    }
}

/// The body of a decision (optional). Who decides is not in it: it is the caller's token,
/// recorded as the approval's `decided_by` and the audit's actor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Decided {
    /// Why (told to the agent's model when denied).
    #[serde(default)]
    reason: String,
}

/// `POST /approvals/{id}/approve`.
pub(super) async fn approve(
    state: State<AgentsApi>,
    caller: Caller,
    id: Path<String>,
    body: Result<Json<Decided>, JsonRejection>,
) -> Response {
    decide(state, caller, id, body, Decision::Approve).await
}

/// `POST /approvals/{id}/deny`.
pub(super) async fn deny(
    state: State<AgentsApi>,
    caller: Caller,
    id: Path<String>,
    body: Result<Json<Decided>, JsonRejection>,
) -> Response {
    decide(state, caller, id, body, Decision::Deny).await
}

async fn decide(
    State(state): State<AgentsApi>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<Decided>, JsonRejection>,
    decision: Decision,
) -> Response {
    let decided = match json_body(body) {
        Ok(decided) => decided,
        Err(response) => return *response,
    };
    match state
        .approvals
        .decide(&id, decision, caller.name(), &decided.reason)
        .await
    {
        Ok(approval) => Json(json!(approval)).into_response(),
        Err(ApprovalError::Store(chatgptd_actions::Error::UnknownApproval(_))) => error(
            StatusCode::NOT_FOUND,
            "unknown approval",
            json!({"approval": id}),
        ),
        Err(ApprovalError::Store(chatgptd_actions::Error::AlreadyDecided {
            state: now, ..
        })) => error(
            StatusCode::CONFLICT,
            "the approval is already decided",
            json!({"approval": id, "state": now}),
        ),
        Err(err) => unavailable(err),
    }
}

fn unavailable(err: ApprovalError) -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "approvals unavailable",
        json!({"detail": err.to_string()}),
    )
}
