//! `/agents`, `/fleets` and `/messages`: the fleet, its status, and messages to agents;
//! `/agents/{id}/actions` and `/approvals` (in `actions`): what agents may do, and deciding.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chatgptd_fleet::reported::reported_health;
use chatgptd_fleet::{AgentsClient, LiveRegistry, agent_health, new_request};
use chatgptd_memory::Memory;
use chatgptd_registry::{AgentSpec, Registry};
use chatgptd_runtime::http::openapi::ErrorBody;
use chatgptd_runtime::http::{Routes, Scope, error_response as error, json_body, query_params};
use chatgptd_types::records::AgentMessage;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::approvals::ApprovalsClient;

mod actions;
mod memory;
mod registrations;
mod usage;

pub(crate) use memory::NOTE_KIND;

/// How long `POST .../messages` waits for answers unless told otherwise.
const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// The longest a request may ask to wait (`timeout_ms`): a held connection per caller.
const MAX_WAIT: Duration = Duration::from_secs(300);

/// What the routes read and send through.
#[derive(Clone)]
pub(crate) struct AgentsApi {
    /// The files with the run-time registrations over them.
    pub(crate) live: Arc<LiveRegistry>,
    pub(crate) memory: Arc<dyn Memory>,
    pub(crate) client: AgentsClient,
    pub(crate) approvals: ApprovalsClient,
    pub(crate) heartbeat_interval: Duration,
    /// Notes go onto the memory topic through it.
    pub(crate) producer: chatgptd_runtime::Producer,
    pub(crate) codec: chatgptd_types::avro::Codec,
    pub(crate) memory_topic: String,
    /// Where `GET /agents/{id}/memory` searches: the index the prompts search.
    pub(crate) retriever: chatgptd_search::Retriever,
    /// The models' prices (`model.prices`), for the cost in `GET /usage`.
    pub(crate) prices: Arc<std::collections::BTreeMap<String, chatgptd_model::Price>>,
    /// The MCP servers' tool lists, for what `actions/check` offers.
    pub(crate) mcp: crate::McpClients,
}

/// `/agents`, `/fleets`, `/messages` and `/approvals` over `state`, each with the scope a
/// caller's token needs.
pub(crate) fn router(state: AgentsApi) -> Routes {
    Routes::new()
        .documented(AgentsDoc::openapi())
        .get("/agents", Scope::Read, list)
        .post("/agents", Scope::Admin, registrations::register)
        .get("/agents/{id}", Scope::Read, show)
        .patch("/agents/{id}", Scope::Admin, registrations::patch)
        .delete("/agents/{id}", Scope::Admin, registrations::disable)
        .post(
            "/agents/{id}/heartbeat",
            Scope::Send,
            registrations::heartbeat,
        )
        .get("/agents/{id}/messages", Scope::Read, history)
        .post("/agents/{id}/messages", Scope::Send, send_to_agent)
        .get("/agents/{id}/memory", Scope::Read, memory::search)
        .post("/agents/{id}/memory", Scope::Send, memory::remember)
        .get("/fleets", Scope::Read, fleets)
        .get("/usage", Scope::Read, usage::usage)
        .post("/fleets/{name}/messages", Scope::Send, send_to_fleet)
        .get("/messages/{id}", Scope::Read, answers)
        .post("/agents/{id}/actions", Scope::Send, actions::take)
        // No effect, but it tells what the policy would do with given arguments.
        .post("/agents/{id}/actions/check", Scope::Read, actions::check)
        .get("/approvals", Scope::Read, actions::approvals)
        .get("/approvals/{id}", Scope::Read, actions::approval)
        .post("/approvals/{id}/approve", Scope::Approve, actions::approve)
        .post("/approvals/{id}/deny", Scope::Approve, actions::deny)
        .with_state(state)
}

/// The description of `/agents`, `/fleets`, `/messages` and `/approvals`.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        list, show, history, send_to_agent, memory::search, memory::remember, fleets, send_to_fleet, answers,
        actions::take, actions::check, actions::approvals, actions::approval,
        actions::approve, actions::deny,
        registrations::register, registrations::patch, registrations::disable,
        registrations::heartbeat, usage::usage,
    ),
    tags(
        (name = "agents", description = "The fleet, its agents and messages to them"),
        (name = "approvals", description = "Actions that wait for a person, and deciding them"),
    )
)]
struct AgentsDoc;

impl AgentsApi {
    /// The registry as it stands now: read once per request, so one answer sees one version.
    pub(crate) fn registry(&self) -> Arc<Registry> {
        self.live.current()
    }
}

async fn describe(state: &AgentsApi, agent: &AgentSpec, full: bool) -> Value {
    let health = agent_health(state.memory.as_ref(), &agent.id, state.heartbeat_interval)
        .await
        .ok();
    // What an externally hosted GPT says of itself, beside what the workers say.
    let reported = reported_health(state.memory.as_ref(), &agent.id, chatgptd_types::now_ms())
        .await
        .ok()
        .flatten();
    let mut value = json!({
        "id": agent.id,
        "name": agent.name,
        "fleet": agent.fleet,
        "tier": agent.tier,
        "description": agent.description,
        "actions": agent.actions,
        "enabled": agent.is_enabled(),
        "status": health.as_ref().map(|h| h.status),
        "last_heartbeat_ms": health.as_ref().and_then(|h| h.last_heartbeat_ms),
        "reported": reported,
        "registration": state.live.registration(&agent.id),
    });
    if full {
        value["system_prompt"] = json!(agent.system_prompt);
        value["model"] = json!(agent.model);
        value["token_budget"] = json!(agent.token_budget);
        value["max_hops"] = json!(agent.max_hops);
        value["worker"] = json!(health.and_then(|h| h.worker));
        // Today's usage, as `GET /usage` counts it; null when memory cannot say.
        let today = crate::usage::today();
        let registry = state.registry();
        let usage = crate::usage::day_usage(
            state.memory.as_ref(),
            &registry,
            &state.prices,
            &today,
            Some(&agent.id),
        )
        .await
        .ok()
        .map(|day| {
            day.agents
                .into_iter()
                .next()
                .map_or_else(Default::default, |agent| agent.usage)
        });
        value["usage_today"] = json!(usage.map(|usage| {
            let mut usage = json!(usage);
            usage["day"] = json!(today);
            usage
        }));
    }
    value
}

/// Every agent: fleet, tier, actions, enabled, status and last heartbeat.
#[utoipa::path(get, path = "/agents", tag = "agents", responses(
    (status = 200, description = "`{\"agents\": [...]}`", body = serde_json::Value),
))]
async fn list(State(state): State<AgentsApi>) -> Response {
    let mut agents = Vec::new();
    for agent in state.registry().agents() {
        agents.push(describe(&state, agent, false).await);
    }
    Json(json!({"agents": agents})).into_response()
}

/// One agent, with its prompt, model, limits, the worker that runs it and its usage today.
#[utoipa::path(get, path = "/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "the agent id", example = "wanderweave")),
    responses(
        (status = 200, description = "the agent, with `usage_today` as `GET /usage` counts it (null when memory cannot say)", body = serde_json::Value),
        (status = 404, description = "no such agent", body = ErrorBody),
    ))]
async fn show(State(state): State<AgentsApi>, Path(id): Path<String>) -> Response {
    match state.registry().get(&id) {
        Some(agent) => Json(describe(&state, agent, true).await).into_response(),
        None => error(StatusCode::NOT_FOUND, "unknown agent", json!({"agent": id})),
    }
}

/// The fleets and their members.
#[utoipa::path(get, path = "/fleets", tag = "agents", responses(
    (status = 200, description = "`{\"fleets\": {...}}`", body = serde_json::Value),
))]
async fn fleets(State(state): State<AgentsApi>) -> Response {
    Json(json!({"fleets": state.registry().fleets()})).into_response()
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(default)]
#[into_params(parameter_in = Query)]
struct Limit {
    /// How many messages (default 50, at most 500).
    limit: Option<usize>,
}

/// An agent's conversation history, newest last.
#[utoipa::path(get, path = "/agents/{id}/messages", tag = "agents",
    params(("id" = String, Path, description = "the agent id", example = "wanderweave"), Limit),
    responses(
        (status = 200, description = "`{\"agent\", \"messages\": [...]}`", body = serde_json::Value),
        (status = 400, description = "an invalid limit", body = ErrorBody),
        (status = 404, description = "no such agent", body = ErrorBody),
    ))]
async fn history(
    State(state): State<AgentsApi>,
    Path(id): Path<String>,
    limit: Result<Query<Limit>, QueryRejection>,
) -> Response {
    let limit = match query_params(limit) {
        Ok(limit) => limit,
        Err(response) => return *response,
    };
    if state.registry().get(&id).is_none() {
        return error(StatusCode::NOT_FOUND, "unknown agent", json!({"agent": id}));
    }
    match state
        .memory
        .history(&format!("agent:{id}"), limit.limit.unwrap_or(50).min(500))
        .await
    {
        Ok(entries) => Json(json!({"agent": id, "messages": entries})).into_response(),
        Err(err) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "memory unavailable",
            json!({"detail": err.to_string()}),
        ),
    }
}

/// The body of `POST /agents/{id}/messages` and `POST /fleets/{name}/messages`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SendRequest {
    /// What to say.
    body: String,
    /// Who says it (default `api`).
    #[serde(default)]
    from: Option<String>,
    /// Continue this conversation.
    #[serde(default)]
    conversation_id: Option<String>,
    /// Tokens the answer may spend: 0 means the agent's own budget (its `token_budget`),
    /// and more than that budget is refused (400), never granted.
    #[serde(default)]
    token_budget: i64,
    /// Wait for the answers (default) or return the message id at once.
    #[serde(default = "yes")]
    wait: bool,
    /// How long to wait, in milliseconds (at most five minutes).
    #[serde(default)]
    timeout_ms: Option<u64>,
}

fn yes() -> bool {
    true
}

/// Sends a message to an agent and (by default) waits for its answer.
#[utoipa::path(post, path = "/agents/{id}/messages", tag = "agents",
    params(("id" = String, Path, description = "the agent id", example = "wanderweave")),
    request_body = SendRequest,
    responses(
        (status = 200, description = "answered: `{\"status\": \"answered\", \"message\", \"answers\"}`", body = serde_json::Value),
        (status = 202, description = "sent, or still pending when the wait ended", body = serde_json::Value),
        (status = 400, description = "invalid body, or a token budget above the agent's", body = ErrorBody),
        (status = 404, description = "no such agent", body = ErrorBody),
        (status = 409, description = "the agent is disabled", body = ErrorBody),
    ))]
async fn send_to_agent(
    State(state): State<AgentsApi>,
    Path(id): Path<String>,
    body: Result<Json<SendRequest>, JsonRejection>,
) -> Response {
    match state.registry().get(&id) {
        Some(agent) if agent.is_enabled() => {
            let budget = agent.token_budget;
            send(state, id, 1, budget, body).await
        }
        Some(_) => error(StatusCode::CONFLICT, "agent disabled", json!({"agent": id})),
        None => error(StatusCode::NOT_FOUND, "unknown agent", json!({"agent": id})),
    }
}

/// Sends a message to every enabled agent of a fleet and (by default) waits for their answers.
#[utoipa::path(post, path = "/fleets/{name}/messages", tag = "agents",
    params(("name" = String, Path, description = "the fleet", example = "creative")),
    request_body = SendRequest,
    responses(
        (status = 200, description = "every member answered", body = serde_json::Value),
        (status = 202, description = "sent, or some answers still pending when the wait ended", body = serde_json::Value),
        (status = 400, description = "invalid body, or a token budget above every member's", body = ErrorBody),
        (status = 404, description = "no such fleet, or no enabled agents in it", body = ErrorBody),
    ))]
async fn send_to_fleet(
    State(state): State<AgentsApi>,
    Path(name): Path<String>,
    body: Result<Json<SendRequest>, JsonRejection>,
) -> Response {
    let registry = state.registry();
    let fleet = registry.fleet(&name);
    let members = fleet.len();
    // Each member clamps to its own budget; more than the largest is refused outright.
    let budget = fleet
        .iter()
        .map(|agent| agent.token_budget)
        .max()
        .unwrap_or(0);
    if members == 0 {
        return error(
            StatusCode::NOT_FOUND,
            "unknown fleet, or no enabled agents in it",
            json!({"fleet": name}),
        );
    }
    send(state, format!("fleet:{name}"), members, budget, body).await
}

async fn send(
    state: AgentsApi,
    to: String,
    expected: usize,
    max_budget: i64,
    body: Result<Json<SendRequest>, JsonRejection>,
) -> Response {
    let request = match json_body(body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    if !(0..=max_budget).contains(&request.token_budget) {
        return error(
            StatusCode::BAD_REQUEST,
            "token_budget out of range",
            json!({
                "detail": format!(
                    "token_budget must be from 0 (the agent's own budget) to {max_budget}, \
                     the budget its configuration allows; got {}",
                    request.token_budget
                ),
                "max": max_budget,
            }),
        );
    }
    if request.body.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "the message body is empty",
            json!({}),
        );
    }
    let from = request.from.unwrap_or_else(|| "api".to_string());
    let message = new_request(
        &from,
        &to,
        &request.body,
        request.conversation_id.as_deref(),
        request.token_budget,
    );
    let wait = request.wait.then(|| {
        request
            .timeout_ms
            .map_or(DEFAULT_WAIT, Duration::from_millis)
            .min(MAX_WAIT)
    });
    send_and_wait(&state, &message, expected, wait).await
}

/// Sends `message` and, with `wait`, waits that long for `expected` answers in its inbox.
pub(crate) async fn send_and_wait(
    state: &AgentsApi,
    message: &AgentMessage,
    expected: usize,
    wait: Option<Duration>,
) -> Response {
    let to = &message.to;
    if let Err(err) = state.client.send(message).await {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the message was not accepted by Kafka",
            json!({"detail": err.to_string()}),
        );
    }
    let sent =
        json!({"message_id": message.id, "conversation_id": message.conversation_id, "to": to});
    let Some(timeout) = wait else {
        return (
            StatusCode::ACCEPTED,
            Json(json!({"status": "sent", "message": sent})),
        )
            .into_response();
    };
    match state.client.wait(&message.id, expected, timeout).await {
        Ok(answers) if answers.len() >= expected => {
            Json(json!({"status": "answered", "message": sent, "answers": answers})).into_response()
        }
        Ok(answers) => (
            StatusCode::ACCEPTED,
            Json(json!({"status": "pending", "message": sent, "answers": answers})),
        )
            .into_response(),
        Err(err) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "memory unavailable",
            json!({"detail": err.to_string(), "message": sent}),
        ),
    }
}

/// The answers to a message so far.
#[utoipa::path(get, path = "/messages/{id}", tag = "agents",
    params(("id" = String, Path, description = "the message id")),
    responses(
        (status = 200, description = "`{\"message_id\", \"answers\": [...]}`", body = serde_json::Value),
    ))]
async fn answers(State(state): State<AgentsApi>, Path(id): Path<String>) -> Response {
    match state.client.answers(&id).await {
        Ok(answers) => Json(json!({"message_id": id, "answers": answers})).into_response(),
        Err(err) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "memory unavailable",
            json!({"detail": err.to_string()}),
        ),
    }
}
