//! `/agents/{id}/memory`: notes for one agent, and searching what it knows (its own memory
//! and the shared knowledge base, never another agent's).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chatgptd_runtime::OutputRecord;
use chatgptd_runtime::http::openapi::ErrorBody;
use chatgptd_runtime::http::{error_response as error, json_body, query_params};
use chatgptd_search::SearchQuery;
use chatgptd_types::records::MemoryRecord;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AgentsApi;

/// The memory kind of notes posted for an agent.
pub(crate) const NOTE_KIND: &str = "note";

/// The longest note, in bytes: a note is a fact, a document belongs in `POST /knowledge`.
const MAX_NOTE_BYTES: usize = 16 * 1024;

/// The body of `POST /agents/{id}/memory`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoteRequest {
    /// What the agent should remember (at most 16 KiB).
    #[schema(example = "Sam prefers trains to flights.")]
    text: String,
    /// Tags for filtering.
    #[serde(default)]
    tags: Vec<String>,
}

/// What `POST /agents/{id}/memory` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct NoteAccepted {
    /// The note's memory id.
    id: String,
    /// `agent:<id>`.
    owner: String,
}

/// Stores a note in an agent's memory, through the memory topic like its conversations:
/// on Kafka when this answers, searchable once indexed.
#[utoipa::path(post, path = "/agents/{id}/memory", tag = "agents",
    params(("id" = String, Path, description = "the agent id", example = "wanderweave")),
    request_body = NoteRequest,
    responses(
        (status = 202, description = "accepted: on the memory topic", body = NoteAccepted),
        (status = 400, description = "an invalid body, an empty note or one over 16 KiB", body = ErrorBody),
        (status = 404, description = "no such agent", body = ErrorBody),
        (status = 503, description = "Kafka did not accept the note; try again", body = ErrorBody),
    ))]
pub(crate) async fn remember(
    State(state): State<AgentsApi>,
    Path(id): Path<String>,
    body: Result<Json<NoteRequest>, JsonRejection>,
) -> Response {
    if state.registry().get(&id).is_none() {
        return error(StatusCode::NOT_FOUND, "unknown agent", json!({"agent": id}));
    }
    let request = match json_body(body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    if request.text.trim().is_empty() || request.text.len() > MAX_NOTE_BYTES {
        return error(
            StatusCode::BAD_REQUEST,
            "note refused",
            json!({"detail": format!("a note is 1 to {MAX_NOTE_BYTES} bytes, not blank")}),
        );
    }
    let owner = format!("agent:{id}");
    let record = MemoryRecord {
        id: format!("note:{}", uuid::Uuid::new_v4()),
        owner: owner.clone(),
        kind: NOTE_KIND.to_string(),
        text: request.text,
        tags: request
            .tags
            .into_iter()
            .map(|tag| tag.trim().to_string())
            .filter(|tag| !tag.is_empty())
            .collect(),
        created_at_ms: chatgptd_types::now_ms(),
        source_topic: String::new(),
        source_partition: -1,
        source_offset: -1,
        attributes: Default::default(),
    };
    let sent = match OutputRecord::avro(&state.codec, &state.memory_topic, owner.clone(), &record) {
        Ok(output) => state
            .producer
            .send(&output)
            .await
            .map_err(|err| err.to_string()),
        Err(err) => Err(err.to_string()),
    };
    match sent {
        Ok(_) => (
            StatusCode::ACCEPTED,
            Json(NoteAccepted {
                id: record.id,
                owner,
            }),
        )
            .into_response(),
        Err(detail) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the note was not accepted by Kafka",
            json!({"detail": detail}),
        ),
    }
}

/// Query parameters of `GET /agents/{id}/memory`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(default)]
#[into_params(parameter_in = Query)]
pub(crate) struct MemoryParams {
    /// Words, `"phrases"`, `+required`, `-excluded`, `tag:x`; empty lists the newest.
    q: String,
    /// Results per page (at most 100; 0 means 10).
    limit: usize,
    /// Results to skip.
    offset: usize,
}

/// Searches what an agent knows: its own memory (notes, conversations, actions) and the
/// shared knowledge base. Best matches first.
#[utoipa::path(get, path = "/agents/{id}/memory", tag = "agents",
    params(
        ("id" = String, Path, description = "the agent id", example = "wanderweave"),
        MemoryParams,
    ),
    responses(
        (status = 200, description = "a page of results", body = chatgptd_search::SearchResults),
        (status = 400, description = "a query syntax error or invalid parameters", body = ErrorBody),
        (status = 404, description = "no such agent", body = ErrorBody),
        (status = 503, description = "no search index reachable from this process", body = ErrorBody),
    ))]
pub(crate) async fn search(
    State(state): State<AgentsApi>,
    Path(id): Path<String>,
    params: Result<Query<MemoryParams>, QueryRejection>,
) -> Response {
    if state.registry().get(&id).is_none() {
        return error(StatusCode::NOT_FOUND, "unknown agent", json!({"agent": id}));
    }
    let params = match query_params(params) {
        Ok(params) => params,
        Err(response) => return *response,
    };
    let query = SearchQuery {
        q: params.q,
        owner: Some(format!("agent:{id}")),
        knowledge: true,
        limit: params.limit,
        offset: params.offset,
        ..SearchQuery::default()
    };
    match state.retriever.search(query).await {
        Some(Ok(results)) => Json(results).into_response(),
        Some(Err(err)) if err.is_bad_request() => error(
            StatusCode::BAD_REQUEST,
            "invalid query",
            json!({"detail": err.to_string()}),
        ),
        Some(Err(err)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "search unavailable",
            json!({"detail": err.to_string()}),
        ),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no search index",
            json!({"detail": "this process has no index: set agents.search_url to an indexer"}),
        ),
    }
}
