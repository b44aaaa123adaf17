//! `/workflows` and `/runs`: definitions, starting runs, following them, resuming and
//! approving.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chatgptd_runtime::http::openapi::ErrorBody;
use chatgptd_runtime::http::{
    Caller, Routes, Scope, error_response as error, json_body, query_params,
};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::client::{ClientError, WorkflowsClient};
use crate::list::{ListedState, RunsPage, RunsQuery, parse_cursor};

/// How long `POST /workflows/{name}/runs` waits when asked to, unless told otherwise.
const DEFAULT_WAIT: Duration = Duration::from_secs(60);
/// The longest it may be asked to wait (`timeout_ms`): each wait holds a connection, and
/// the HTTP server's shutdown grace cuts waits anyway. A longer run is followed with
/// `GET /runs/{id}` or its event stream.
const MAX_WAIT: Duration = Duration::from_secs(300);

/// `/workflows` and `/runs` over `client`, each with the scope a caller's token needs.
pub fn router(client: WorkflowsClient) -> Routes {
    Routes::new()
        .documented(WorkflowsApi::openapi())
        .get("/workflows", Scope::Read, list)
        .get("/workflows/{name}", Scope::Read, show)
        .post("/workflows/{name}/runs", Scope::Send, start)
        .get("/runs", Scope::Read, runs)
        .get("/runs/{id}", Scope::Read, run)
        .post("/runs/{id}/resume", Scope::Approve, resume)
        .post("/runs/{id}/steps/{step}/approve", Scope::Approve, approve)
        .with_state(client)
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, show, start, runs, run, resume, approve),
    tags((name = "workflows", description = "Workflow definitions and their runs"))
)]
struct WorkflowsApi;

fn client_error(err: ClientError) -> Response {
    let status = if err.is_not_found() {
        StatusCode::NOT_FOUND
    } else if err.is_bad_request() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let detail = match &err {
        ClientError::InvalidInput(problems) => json!(problems),
        other => json!(other.to_string()),
    };
    error(status, &err.to_string(), json!({"detail": detail}))
}

/// Every workflow definition.
#[utoipa::path(get, path = "/workflows", tag = "workflows", responses(
    (status = 200, description = "`{\"workflows\": [...]}`", body = serde_json::Value),
))]
async fn list(State(client): State<WorkflowsClient>) -> Response {
    Json(json!({"workflows": client.workflows().list()})).into_response()
}

/// One workflow definition: its input, steps and their dependencies.
#[utoipa::path(get, path = "/workflows/{name}", tag = "workflows",
    params(("name" = String, Path, description = "the workflow's name", example = "research")),
    responses(
        (status = 200, description = "the definition", body = serde_json::Value),
        (status = 404, description = "no such workflow", body = ErrorBody),
    ))]
async fn show(State(client): State<WorkflowsClient>, Path(name): Path<String>) -> Response {
    match client.workflows().get(&name) {
        Some(spec) => Json(json!(spec)).into_response(),
        None => client_error(ClientError::UnknownWorkflow(name)),
    }
}

/// The body of `POST /workflows/{name}/runs`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct StartRequest {
    /// The run's input, as the workflow declares it.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    input: Value,
    /// Wait until the run finishes (or waits for an approval).
    #[serde(default)]
    wait: bool,
    /// How long to wait, in milliseconds: from 1 to `MAX_WAIT`. Any number is read, so that
    /// an out-of-range one (negative, fractional, huge) is refused with the range.
    #[serde(default)]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 300_000)]
    timeout_ms: Option<serde_json::Number>,
}

/// The wait a request asked for, or the 400 that gives the allowed range. Zero would make
/// `wait` meaningless and a huge value would hold the connection for as long as the run.
fn wait_timeout(timeout_ms: Option<&serde_json::Number>) -> Result<Duration, Box<Response>> {
    let Some(given) = timeout_ms else {
        return Ok(DEFAULT_WAIT);
    };
    let max_ms = u64::try_from(MAX_WAIT.as_millis()).unwrap_or(u64::MAX);
    match given.as_u64() {
        Some(ms) if (1..=max_ms).contains(&ms) => Ok(Duration::from_millis(ms)),
        _ => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "timeout_ms out of range",
            json!({
                "detail": format!(
                    "timeout_ms must be a whole number of milliseconds from 1 to {max_ms}; got {given}"
                ),
                "min_ms": 1,
                "max_ms": max_ms,
            }),
        ))),
    }
}

fn empty_object() -> Value {
    json!({})
}

/// Starts a run; with `wait`, answers when it finishes or waits for a person.
#[utoipa::path(post, path = "/workflows/{name}/runs", tag = "workflows",
    params(("name" = String, Path, description = "the workflow's name", example = "research")),
    request_body = StartRequest,
    responses(
        (status = 200, description = "the run, finished or waiting (with `wait`)", body = serde_json::Value),
        (status = 202, description = "started: `{\"run_id\", \"status\"}`", body = serde_json::Value),
        (status = 400, description = "invalid body or input", body = ErrorBody),
        (status = 404, description = "no such workflow", body = ErrorBody),
    ))]
async fn start(
    State(client): State<WorkflowsClient>,
    caller: Caller,
    Path(name): Path<String>,
    body: Result<Json<StartRequest>, JsonRejection>,
) -> Response {
    let request = match json_body(body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    // Checked before the run starts: a refused request starts nothing.
    let timeout = match wait_timeout(request.timeout_ms.as_ref()) {
        Ok(timeout) => timeout,
        Err(response) => return *response,
    };
    let started_by = format!("api:{}", caller.name());
    let run_id = match client.start(&name, &request.input, &started_by).await {
        Ok(run_id) => run_id,
        Err(err) => return client_error(err),
    };
    if !request.wait {
        return (
            StatusCode::ACCEPTED,
            Json(json!({"run_id": run_id, "status": "started"})),
        )
            .into_response();
    }
    match client.wait(&run_id, timeout).await {
        Ok(view) => Json(json!(view)).into_response(),
        Err(ClientError::UnknownRun(_)) => (
            StatusCode::ACCEPTED,
            Json(json!({"run_id": run_id, "status": "starting"})),
        )
            .into_response(),
        Err(err) => client_error(err),
    }
}

/// The longest page of `GET /runs`.
const MAX_RUNS: usize = 500;

/// The query of `GET /runs`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RunsParams {
    /// Only runs of this workflow.
    #[param(example = "research")]
    workflow: Option<String>,
    /// Only runs in this state: running, waiting (for a person), succeeded or failed.
    state: Option<String>,
    /// How many runs (default 50, at most 500).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The runs, newest first: each one's state and how many of its steps are done. A page may
/// hold fewer than `limit` runs when a filter leaves many out; `next_cursor` reads on.
#[utoipa::path(get, path = "/runs", tag = "workflows",
    params(RunsParams),
    responses(
        (status = 200, description = "a page of runs", body = RunsPage),
        (status = 400, description = "an invalid filter, limit or cursor", body = ErrorBody),
        (status = 503, description = "memory is unavailable", body = ErrorBody),
    ))]
async fn runs(
    State(client): State<WorkflowsClient>,
    params: Result<Query<RunsParams>, QueryRejection>,
) -> Response {
    let params = match query_params(params) {
        Ok(params) => params,
        Err(response) => return *response,
    };
    let limit = params.limit.unwrap_or(50);
    if !(1..=MAX_RUNS).contains(&limit) {
        return error(
            StatusCode::BAD_REQUEST,
            "limit out of range",
            json!({"detail": format!("limit must be from 1 to {MAX_RUNS}; got {limit}")}),
        );
    }
    let cursor = match params.cursor.as_deref().map(parse_cursor) {
        None => None,
        Some(Some(cursor)) => Some(cursor),
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid cursor",
                json!({"detail": "pass the next_cursor of a page as it was given"}),
            );
        }
    };
    let state = match params.state.as_deref().map(ListedState::parse) {
        None => None,
        Some(Some(state)) => Some(state),
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "unknown run state",
                json!({"state": params.state, "expected": ListedState::NAMES}),
            );
        }
    };
    let query = RunsQuery {
        workflow: params.workflow,
        state,
        limit,
        cursor,
    };
    match client.runs(&query).await {
        Ok(page) => Json(page).into_response(),
        Err(err) => client_error(err),
    }
}

/// A run: its status and each step's state, attempts, timing and output.
#[utoipa::path(get, path = "/runs/{id}", tag = "workflows",
    params(("id" = String, Path, description = "the run id")),
    responses(
        (status = 200, description = "the run", body = serde_json::Value),
        (status = 404, description = "no such run", body = ErrorBody),
    ))]
async fn run(State(client): State<WorkflowsClient>, Path(id): Path<String>) -> Response {
    match client.view(&id).await {
        Ok(view) => Json(json!(view)).into_response(),
        Err(err) => client_error(err),
    }
}

/// Resumes a run's failed or waiting steps. Who resumes is the caller's token, recorded on
/// the run (`resumed_by`).
#[utoipa::path(post, path = "/runs/{id}/resume", tag = "workflows",
    params(("id" = String, Path, description = "the run id")),
    responses(
        (status = 202, description = "`{\"run_id\", \"resumed_steps\"}`", body = serde_json::Value),
        (status = 404, description = "no such run", body = ErrorBody),
    ))]
async fn resume(
    State(client): State<WorkflowsClient>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    match client.resume(&id, caller.name()).await {
        Ok(steps) => (
            StatusCode::ACCEPTED,
            Json(json!({"run_id": id, "resumed_steps": steps})),
        )
            .into_response(),
        Err(err) => client_error(err),
    }
}

/// Approves a step that waits for a person. Who approves is the caller's token, recorded on
/// the step (`approved_by`).
#[utoipa::path(post, path = "/runs/{id}/steps/{step}/approve", tag = "workflows",
    params(
        ("id" = String, Path, description = "the run id"),
        ("step" = String, Path, description = "the step's name"),
    ),
    responses(
        (status = 202, description = "`{\"run_id\", \"approved\"}`", body = serde_json::Value),
        (status = 400, description = "the step does not wait for an approval", body = ErrorBody),
        (status = 404, description = "no such run or step", body = ErrorBody),
    ))]
async fn approve(
    State(client): State<WorkflowsClient>,
    caller: Caller,
    Path((id, step)): Path<(String, String)>,
) -> Response {
    match client.approve(&id, &step, caller.name()).await {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(json!({"run_id": id, "approved": step})),
        )
            .into_response(),
        Err(err) => client_error(err),
    }
}
