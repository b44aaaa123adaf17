//! The HTTP API of a process: observability routes, plus the routes of the workers it runs.

pub mod agents;
pub mod events;
mod search;
pub mod workflows;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chatgptd_runtime::Health;
use serde_json::json;

use self::events::EventStreams;
use crate::workers::Services;

/// The routes every process serves (`/healthz`, `/readyz`, `/metrics`, the event streams),
/// those of its services (`/search` where there is an index) and those of its workers
/// (`worker_routes`).
pub fn router(
    health: &Health,
    events: EventStreams,
    services: &Services,
    worker_routes: Vec<Router>,
) -> Router {
    let mut router = chatgptd_runtime::http::router(
        health.clone(),
        chatgptd_runtime::telemetry::install_prometheus(),
    )
    .merge(events.router());
    if let Some(search) = &services.search {
        router = router.merge(search::router(Arc::clone(search)));
    }
    worker_routes.into_iter().fold(router, Router::merge)
}

/// A request's JSON body, or the 400 that says why it is not one (boxed: a response is large).
pub(crate) fn json_body<T>(
    body: Result<axum::Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, Box<Response>> {
    body.map(|axum::Json(value)| value).map_err(|rejection| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            "invalid request body",
            json!({"detail": rejection.body_text()}),
        ))
    })
}

/// A JSON error response: `{"error": ..., ...extra}`.
pub(crate) fn error(status: StatusCode, message: &str, extra: serde_json::Value) -> Response {
    let mut body = json!({"error": message});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    (status, axum::Json(body)).into_response()
}
