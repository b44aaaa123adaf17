//! The HTTP API of a process: the routes every process serves (`/healthz`, `/readyz`,
//! `/metrics`, the event streams) merged with the routes of the workers it runs, behind the
//! one token check.

use anyhow::Context;
use axum::Router;
use chatgptd_runtime::http::Routes;
use chatgptd_runtime::http::auth::authorize;
use tokio_util::sync::CancellationToken;

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
    .merge(event_streams(stack, shutdown)?.router());
    Ok(worker_routes.into_iter().fold(routes, Routes::merge))
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
