//! The HTTP API of a process: the routes every process serves (`/healthz`, `/readyz`,
//! `/metrics`, the event streams, the dashboard) merged with the routes of the workers it
//! runs, behind the one token check.

use std::sync::{Arc, OnceLock};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use chatgptd_runtime::http::auth::authorize;
use chatgptd_runtime::http::{Routes, Scope};
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

use crate::auth::Tokens;
use crate::events::{EventStreams, RunTopics};
use crate::stack::Stack;

/// The process's routes: its own and `worker_routes`, each declaring what it requires.
pub fn routes(
    stack: &Stack,
    shutdown: CancellationToken,
    worker_routes: Vec<Routes>,
) -> anyhow::Result<Routes> {
    let routes = chatgptd_runtime::http::router(
        stack.health.clone(),
        chatgptd_runtime::telemetry::install_prometheus(),
    )
    .merge(event_streams(stack, shutdown.clone())?.router())
    .merge(chatgptd_dashboard::routes())
    .merge(chatgptd_worker_dlq_replay::routes(
        stack.context.clone(),
        stack.config.dlq_replay.clone(),
        shutdown,
    ));
    let document = Arc::new(OnceLock::new());
    let routes = worker_routes
        .into_iter()
        .fold(routes, Routes::merge)
        .merge(openapi_route(document.clone()));
    // Built once every route is in, itself included.
    let _ = document.set(serde_json::to_string(&routes.openapi())?);
    Ok(routes)
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(openapi_json), tags((name = "operations")))]
struct DocumentApi;

/// `GET /openapi.json`: the document of this process's API, the routes of the workers it runs.
fn openapi_route(document: Arc<OnceLock<String>>) -> Routes {
    Routes::new()
        .documented(DocumentApi::openapi())
        .get("/openapi.json", Scope::Read, openapi_json)
        .with_state(document)
}

/// The OpenAPI 3.1 document of this process's API, generated from its handlers.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses(
    (status = 200, description = "the OpenAPI document", body = serde_json::Value),
))]
async fn openapi_json(State(document): State<Arc<OnceLock<String>>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.get().cloned().unwrap_or_default(),
    )
}

/// `routes` as one router behind `auth`: every request is checked against what its route
/// declared, and an undeclared route needs `admin`.
pub fn router(routes: Routes, tokens: Tokens) -> Router {
    let (router, declared) = routes.into_parts();
    let auth = tokens.check(&declared);
    router.layer(axum::middleware::from_fn_with_state(auth, authorize))
}

/// The event streams of this process's HTTP API: any topic of topics.yaml, from its brokers.
fn event_streams(stack: &Stack, shutdown: CancellationToken) -> anyhow::Result<EventStreams> {
    let config = &stack.config;
    let topics = config.topics().context("reading the topics file")?;
    Ok(EventStreams::new(
        stack.context.kafka.clone(),
        stack.secrets.clone(),
        topics.topics.into_iter().map(|topic| topic.name),
        RunTopics {
            steps: config.workflows.topic.clone(),
            memory: config.workflows.memory_topic.clone(),
            history: config.workflows.run_ttl,
        },
        config.http.max_event_subscribers,
        shutdown,
    ))
}
