//! `POST /dead-letters/replay`: the replay of `chatgptd dlq replay`, for the dashboard and
//! scripts. One replay at a time per process: two would split the replayer group's partitions
//! between them and each report half.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chatgptd_runtime::http::openapi::ErrorBody;
use chatgptd_runtime::http::{Routes, Scope, error_response, json_body};
use chatgptd_runtime::{ConsumerOptions, Health, WorkerContext};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

use crate::{Filter, Options, replay};

/// What the route replays with.
#[derive(Clone)]
struct ReplayApi {
    context: WorkerContext,
    consumer: ConsumerOptions,
    running: Arc<Mutex<()>>,
    shutdown: CancellationToken,
}

/// The replay route over `context`, reading with `consumer` (the `dlq_replay` settings, so
/// the API and the CLI share one group and never replay a letter twice between them).
pub fn routes(
    context: WorkerContext,
    consumer: ConsumerOptions,
    shutdown: CancellationToken,
) -> Routes {
    // Its own health: a replay that ends must not leave a stopped consumer in /readyz.
    let context = WorkerContext {
        health: Health::default(),
        ..context
    };
    Routes::new()
        .documented(ReplayDoc::openapi())
        .post("/dead-letters/replay", Scope::Admin, replay_letters)
        .with_state(ReplayApi {
            context,
            consumer,
            running: Arc::default(),
            shutdown,
        })
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(replay_letters),
    tags((name = "dead letters", description = "Records no worker could process, and replaying them"))
)]
struct ReplayDoc;

/// The body of `POST /dead-letters/replay`: the CLI's filters and dry run.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
struct ReplayRequest {
    /// Only letters from this source topic.
    source_topic: Option<String>,
    /// Only letters with this error class (`validation`, `retries_exhausted`, ...).
    error_class: Option<String>,
    /// Only letters whose record key is this.
    key: Option<String>,
    /// Report what would be replayed and publish nothing.
    dry_run: bool,
    /// Skip letters replayed this many times already (default 3).
    max_replays: Option<i32>,
}

/// Re-publishes matching dead letters to the topic they came from, byte for byte, until the
/// dead-letter topic's end as it was at the start; letters replayed before are not replayed
/// again. Answers what it did, as `chatgptd dlq replay` prints it.
#[utoipa::path(post, path = "/dead-letters/replay", tag = "dead letters",
    request_body = ReplayRequest,
    responses(
        (status = 200, description = "`{\"matched\": [...], \"filtered_out\", \"too_many_replays\", \"without_value\", \"left_in_place\", \"dry_run\"}`", body = serde_json::Value),
        (status = 400, description = "an invalid body", body = ErrorBody),
        (status = 409, description = "a replay is already running in this process", body = ErrorBody),
        (status = 503, description = "the broker could not be read or written", body = ErrorBody),
    ))]
async fn replay_letters(
    State(api): State<ReplayApi>,
    body: Result<Json<ReplayRequest>, JsonRejection>,
) -> Response {
    let request = match json_body(body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let Ok(_running) = api.running.try_lock() else {
        return error_response(StatusCode::CONFLICT, "a replay is running", json!({}));
    };
    let options = Options {
        filter: Filter {
            source_topic: request.source_topic,
            error_class: request.error_class,
            key: request.key,
        },
        dry_run: request.dry_run,
        max_replays: request.max_replays.unwrap_or(3).max(0),
        consumer: api.consumer.clone(),
        idle_timeout: Duration::from_secs(30),
        ..Options::default()
    };
    match replay(&api.context, options, api.shutdown.child_token()).await {
        Ok(report) => Json(report).into_response(),
        Err(err) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "replay failed",
            json!({"detail": err.to_string()}),
        ),
    }
}
