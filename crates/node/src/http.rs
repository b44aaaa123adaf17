//! The HTTP API of a process: the routes every process serves (`/healthz`, `/readyz`,
//! `/metrics`, the event streams) merged with the routes of the workers it runs.

use anyhow::Context;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::events::{EventStreams, RunTopics};
use crate::stack::Stack;

/// The process's router: its own routes and `worker_routes`.
pub fn router(
    stack: &Stack,
    shutdown: CancellationToken,
    worker_routes: Vec<Router>,
) -> anyhow::Result<Router> {
    let router = chatgptd_runtime::http::router(
        stack.health.clone(),
        chatgptd_runtime::telemetry::install_prometheus(),
    )
    .merge(event_streams(stack, shutdown)?.router());
    Ok(worker_routes.into_iter().fold(router, Router::merge))
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
