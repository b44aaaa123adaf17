//! The HTTP API's shared parts: `/healthz`, `/readyz` and `/metrics`, merged into the API of
//! every process; the JSON error body; routes that declare their scope ([`routes`]), API
//! tokens ([`token`]) and the check every request goes through ([`auth`]).

pub mod auth;
pub mod openapi;
pub mod routes;
pub mod token;

pub use auth::{Auth, Caller};
pub use routes::{Access, Declared, Routes};
pub use token::{AuthMode, Scope, Token, TokenError, TokenOptions};

use std::future::IntoFuture;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use utoipa::OpenApi;

use crate::health::Health;

#[derive(Clone)]
struct Observability {
    health: Health,
    prometheus: PrometheusHandle,
}

/// The observability routes. Public by default (`http.public`); a path taken out of that
/// list needs `read`.
pub fn router(health: Health, prometheus: PrometheusHandle) -> Routes {
    Routes::new()
        .documented(ObservabilityApi::openapi())
        .get("/healthz", Scope::Read, healthz)
        .get("/readyz", Scope::Read, readyz)
        .get("/metrics", Scope::Read, metrics_text)
        .with_state(Observability { health, prometheus })
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(healthz, readyz, metrics_text),
    tags((name = "operations", description = "Liveness, readiness and metrics of a process"))
)]
struct ObservabilityApi;

/// Alive: the process answers and nothing failed beyond repair.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses(
    (status = 200, description = "`{\"status\": \"ok\"}`", body = serde_json::Value),
    (status = 503, description = "failed beyond repair: restart the process", body = serde_json::Value),
))]
async fn healthz(State(state): State<Observability>) -> impl IntoResponse {
    match state.health.failure() {
        None => (StatusCode::OK, axum::Json(json!({"status": "ok"}))),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "failed", "reason": reason})),
        ),
    }
}

/// Ready: every consumer has joined its group and every producer reaches a broker.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "ready, with each component's state", body = serde_json::Value),
    (status = 503, description = "not ready yet, with each component's state", body = serde_json::Value),
))]
async fn readyz(State(state): State<Observability>) -> impl IntoResponse {
    let (ready, components) = state.health.snapshot();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({"ready": ready, "components": components})),
    )
}

/// Prometheus metrics of the process.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "the Prometheus text format", body = String, content_type = "text/plain"),
))]
async fn metrics_text(State(state): State<Observability>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.prometheus.render(),
    )
}

/// How long requests under way at shutdown may take to finish. A graceful shutdown waits for
/// every response to be written, and a client that stopped reading one (an event stream, a
/// long wait) would otherwise hold the server, and the process, forever.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets the requests under
/// way finish for up to [`SHUTDOWN_GRACE`]. Connections still open after it are abandoned:
/// they close when the process's runtime ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        () = shutdown.cancelled() => {}
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(result) => result,
        Err(_) => {
            warn!(
                grace = ?SHUTDOWN_GRACE,
                "http: connections still open after the shutdown grace are dropped"
            );
            Ok(())
        }
    }
}

/// A JSON error response: `{"error": message, ...extra}`, the one error body of every route.
pub fn error_response(
    status: StatusCode,
    message: &str,
    extra: serde_json::Value,
) -> axum::response::Response {
    let mut body = json!({"error": message});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    (status, axum::Json(body)).into_response()
}

/// A request's query parameters, or the 400 (a JSON body, as every error) that says why they
/// are not what the route reads. axum's own rejection would be plain text.
pub fn query_params<T>(
    query: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, Box<axum::response::Response>> {
    query
        .map(|axum::extract::Query(value)| value)
        .map_err(|rejection| {
            Box::new(error_response(
                StatusCode::BAD_REQUEST,
                "invalid query",
                json!({"detail": rejection.body_text()}),
            ))
        })
}

/// A request's JSON body, or the 400 that says why it is not one (boxed: a response is large).
pub fn json_body<T>(
    body: Result<axum::Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, Box<axum::response::Response>> {
    body.map(|axum::Json(value)| value).map_err(|rejection| {
        Box::new(error_response(
            StatusCode::BAD_REQUEST,
            "invalid request body",
            json!({"detail": rejection.body_text()}),
        ))
    })
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;
    use metrics_exporter_prometheus::PrometheusBuilder;

    use super::*;

    #[tokio::test]
    async fn healthz_fails_once_the_process_needs_a_restart() {
        let health = Health::default();
        let state = || Observability {
            health: health.clone(),
            prometheus: PrometheusBuilder::new().build_recorder().handle(),
        };
        let alive = healthz(State(state())).await.into_response();
        assert_eq!(alive.status(), StatusCode::OK);
        health.fail("fatal producer error");
        health.fail("a later reason is not kept");
        let failed = healthz(State(state())).await.into_response();
        assert_eq!(failed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(health.failure().as_deref(), Some("fatal producer error"));
    }
}
