//! What agents may do, and people deciding it:
//! - `POST /agents/{id}/actions/check`: the policy's decision and risk score for a proposed
//!   action, with no effect;
//! - `POST /agents/{id}/actions`: ask the agent to take an action, through the same schema
//!   check, policy, approvals and audit as a call its model makes;
//! - `GET /approvals[?state=pending]`, `GET /approvals/{id}`, `POST /approvals/{id}/approve`
//!   and `/deny`: the approval queue. A second decision, or one after expiry, is 409.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chatgptd_actions::Decision;
use chatgptd_fleet::new_request;
use chatgptd_runtime::http::openapi::ErrorBody;
use chatgptd_runtime::http::{Caller, error_response as error, json_body, query_params};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AgentsApi, DEFAULT_WAIT, MAX_WAIT, send_and_wait};
use crate::act::{ACTION_KIND, Checked, check as check_call, tools_for};
use crate::approvals::ApprovalError;

/// The body of the two action routes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Proposed {
    /// The catalogued action.
    action: String,
    /// Its arguments, as its schema in `agents/actions.yaml` declares them.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
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

#[utoipa::path(post, path = "/agents/{id}/actions/check", tag = "approvals",
    params(("id" = String, Path, description = "the agent id", example = "core-ticket-triage")),
    request_body = Proposed,
    responses(
        (status = 200, description = "what the policy would decide: decision, risk score, reasons; nothing is done", body = serde_json::Value),
        (status = 400, description = "invalid body", body = ErrorBody),
        (status = 404, description = "no such agent", body = ErrorBody),
    ))]
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
    let registry = state.registry();
    let Some(agent) = registry.get(&id) else {
        return error(StatusCode::NOT_FOUND, "unknown agent", json!({"agent": id}));
    };
    let tools = tools_for(&registry, agent, &state.mcp);
    let arguments = proposed.arguments.to_string();
    let checked = check_call(&registry, agent, &tools, &proposed.action, &arguments);
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

#[utoipa::path(post, path = "/agents/{id}/actions", tag = "approvals",
    params(("id" = String, Path, description = "the agent id", example = "core-ticket-triage")),
    request_body = Proposed,
    responses(
        (status = 200, description = "the agent's answer after the action was decided and done (or refused)", body = serde_json::Value),
        (status = 202, description = "sent, or waiting (for an approval) when the wait ended", body = serde_json::Value),
        (status = 400, description = "invalid body", body = ErrorBody),
        (status = 404, description = "no such agent", body = ErrorBody),
        (status = 409, description = "the agent is disabled", body = ErrorBody),
    ))]
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
    match state.registry().get(&id) {
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

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct StateFilter {
    /// Only approvals in this state: pending, approved, denied or expired.
    state: Option<String>,
}

#[utoipa::path(get, path = "/approvals", tag = "approvals", params(StateFilter), responses(
    (status = 200, description = "`{\"approvals\": [...]}`: what is asked, by whom, risk score, reasons, state", body = serde_json::Value),
    (status = 400, description = "an unknown state or parameter", body = ErrorBody),
))]
/// `GET /approvals[?state=pending|approved|denied|expired]`.
pub(super) async fn approvals(
    State(state): State<AgentsApi>,
    filter: Result<Query<StateFilter>, QueryRejection>,
) -> Response {
    let filter = match query_params(filter) {
        Ok(filter) => filter,
        Err(response) => return *response,
    };
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

#[utoipa::path(get, path = "/approvals/{id}", tag = "approvals",
    params(("id" = String, Path, description = "the approval id")),
    responses(
        (status = 200, description = "the approval", body = serde_json::Value),
        (status = 404, description = "no such approval", body = ErrorBody),
    ))]
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
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Decided {
    /// Why (told to the agent's model when denied).
    #[serde(default)]
    reason: String,
}

#[utoipa::path(post, path = "/approvals/{id}/approve", tag = "approvals",
    params(("id" = String, Path, description = "the approval id")),
    request_body = Decided,
    responses(
        (status = 200, description = "approved: the action runs once; the decided approval", body = serde_json::Value),
        (status = 400, description = "invalid body", body = ErrorBody),
        (status = 404, description = "no such approval", body = ErrorBody),
        (status = 409, description = "already decided, or expired", body = ErrorBody),
    ))]
/// `POST /approvals/{id}/approve`.
pub(super) async fn approve(
    state: State<AgentsApi>,
    caller: Caller,
    id: Path<String>,
    body: Result<Json<Decided>, JsonRejection>,
) -> Response {
    decide(state, caller, id, body, Decision::Approve).await
}

#[utoipa::path(post, path = "/approvals/{id}/deny", tag = "approvals",
    params(("id" = String, Path, description = "the approval id")),
    request_body = Decided,
    responses(
        (status = 200, description = "denied: the model is told who and why; the decided approval", body = serde_json::Value),
        (status = 400, description = "invalid body", body = ErrorBody),
        (status = 404, description = "no such approval", body = ErrorBody),
        (status = 409, description = "already decided, or expired", body = ErrorBody),
    ))]
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
