//! The HTTP API of a process: observability routes plus whatever its workers serve.

use axum::Router;
use chatgptd_runtime::Health;

/// The routes every process serves: `/healthz`, `/readyz`, `/metrics`.
pub fn base_router(health: &Health) -> Router {
    chatgptd_runtime::http::router(
        health.clone(),
        chatgptd_runtime::telemetry::install_prometheus(),
    )
}
