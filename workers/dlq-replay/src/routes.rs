//! `POST /dead-letters/replay`: the replay of `chatgptd dlq replay`, for the dashboard and
//! scripts. One replay at a time per process: two would split the replayer group's partitions
//! between them and each report half. `GET /dead-letters`: the newest letters, a few
//! listings at a time per process (each holds a consumer and a blocking thread).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chatgptd_runtime::http::openapi::ErrorBody;
use chatgptd_runtime::http::{Routes, Scope, error_response, json_body, query_params};
use chatgptd_runtime::{ConsumerOptions, Health, WorkerContext};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

use crate::{Filter, Options, replay};

/// What the route replays with.
#[derive(Clone)]
struct ReplayApi {
    context: WorkerContext,
    consumer: ConsumerOptions,
    running: Arc<Mutex<()>>,
    /// Listings under way: each holds a consumer and a blocking thread.
    listings: Arc<Semaphore>,
    shutdown: CancellationToken,
}

/// Listings at once per process; more wait for a retry (503).
const MAX_LISTINGS: usize = 4;
/// The records read at the end of each partition of the dead-letter topic per listing.
const LIST_WINDOW: i64 = 1_000;
/// The most letters one listing answers.
const MAX_LIMIT: usize = 500;

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
        .get("/dead-letters", Scope::Read, list_letters)
        .post("/dead-letters/replay", Scope::Admin, replay_letters)
        .with_state(ReplayApi {
            context,
            consumer,
            running: Arc::default(),
            listings: Arc::new(Semaphore::new(MAX_LISTINGS)),
            shutdown,
        })
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_letters, replay_letters),
    tags((name = "dead letters", description = "Records no worker could process, and replaying them"))
)]
struct ReplayDoc;

/// The query of `GET /dead-letters`: the replay's filters and a limit.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only letters from this source topic.
    #[param(example = "tickets.events")]
    source_topic: Option<String>,
    /// Only letters with this error class (`validation`, `retries_exhausted`, ...).
    error_class: Option<String>,
    /// Only letters whose record key is this.
    key: Option<String>,
    /// How many letters (default 50, at most 500).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// The newest dead letters, with their reason, error class, source topic, partition and
/// offset, key and time. Read from the last 1,000 records of each partition of the
/// dead-letter topic (`window_per_partition`), so a listing stays bounded however long the
/// topic is; the CLI's `dlq replay --dry-run` reads it whole.
#[utoipa::path(get, path = "/dead-letters", tag = "dead letters",
    params(ListParams),
    responses(
        (status = 200, description = "`{\"dead_letters\": [...], \"scanned\", \"window_per_partition\"}`, newest first", body = serde_json::Value),
        (status = 400, description = "an invalid filter or limit", body = ErrorBody),
        (status = 503, description = "the broker could not be read, or too many listings run now", body = ErrorBody),
    ))]
async fn list_letters(
    State(api): State<ReplayApi>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Response {
    let params = match query_params(params) {
        Ok(params) => params,
        Err(response) => return *response,
    };
    let limit = params.limit.unwrap_or(50);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "limit out of range",
            json!({"detail": format!("limit must be from 1 to {MAX_LIMIT}; got {limit}")}),
        );
    }
    let Ok(permit) = api.listings.clone().try_acquire_owned() else {
        return busy("too many dead-letter listings at once");
    };
    let filter = Filter {
        source_topic: params.source_topic,
        error_class: params.error_class,
        key: params.key,
    };
    let context = api.context.clone();
    let topic = Options::default().dead_letter_topic;
    let listed = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        crate::recent(&context, &topic, &filter, limit, LIST_WINDOW)
    })
    .await;
    match listed {
        Ok(Ok(listing)) => Json(listing).into_response(),
        Ok(Err(detail)) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "the dead letters could not be read",
            json!({"detail": detail}),
        ),
        Err(err) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "the dead letters could not be read",
            json!({"detail": err.to_string()}),
        ),
    }
}

/// A 503 that says when to try again.
fn busy(why: &str) -> Response {
    let mut response = error_response(StatusCode::SERVICE_UNAVAILABLE, why, json!({}));
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    response
}

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
