//! `POST /knowledge`: a document into the knowledge base.
//!
//! The document goes onto the memory topic as one record (202 once the broker has it), like
//! everything else the index holds: the indexer chunks it and stores its offset only after an
//! index commit includes the chunks, and a restart reads it again from the shard's commit.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chatgptd_runtime::http::openapi::ErrorBody;
use chatgptd_runtime::http::{error_response as error, json_body};
use chatgptd_runtime::{OutputRecord, Producer};
use chatgptd_search::knowledge::{self, Format};
use chatgptd_types::avro::Codec;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::info;

/// Where `POST /knowledge` sends documents.
#[derive(Clone)]
pub(crate) struct KnowledgeApi {
    pub producer: Producer,
    pub codec: Codec,
    /// The memory topic the indexer reads.
    pub topic: String,
}

/// The body of `POST /knowledge`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KnowledgeRequest {
    /// Where the document comes from (a path, a URL, a title). Ingesting the same source
    /// again replaces its chunks.
    #[schema(example = "handbook/vpn.md")]
    source: String,
    /// The document, text or Markdown (at most 256 KiB).
    #[schema(example = "# VPN\n\nThe gateway is vpn.example.org.")]
    text: String,
    /// `markdown` or `text`; by default Markdown when the source ends in `.md`.
    #[serde(default)]
    format: Option<String>,
    /// Tags for filtering (`tag:it` in a search).
    #[serde(default)]
    tags: Vec<String>,
}

/// What `POST /knowledge` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Accepted {
    /// The source, trimmed.
    source: String,
    /// The owner of its chunks in the index (`knowledge:<source>`).
    owner: String,
    /// The chunks the indexer will make of it.
    chunks: usize,
    /// The memory-topic partition and offset it was written at.
    partition: i32,
    offset: i64,
}

/// Adds a document to the knowledge base (or replaces the one from the same source): it is
/// on Kafka when this answers, and searchable once the indexer has committed its chunks.
#[utoipa::path(post, path = "/knowledge", tag = "search",
    request_body = KnowledgeRequest,
    responses(
        (status = 202, description = "accepted: on the memory topic, searchable soon", body = Accepted),
        (status = 400, description = "an invalid body, an empty source or document, or one over 256 KiB", body = ErrorBody),
        (status = 503, description = "Kafka did not accept the document; try again", body = ErrorBody),
    ))]
pub(crate) async fn add(
    State(state): State<KnowledgeApi>,
    body: Result<Json<KnowledgeRequest>, JsonRejection>,
) -> Response {
    let request = match json_body(body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let format = match request.format.as_deref() {
        None => Format::for_file(&request.source),
        Some(name) => match Format::parse(name) {
            Some(format) => format,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "unknown format",
                    json!({"detail": "format is `markdown` or `text`", "format": name}),
                );
            }
        },
    };
    let record = match knowledge::record(
        &request.source,
        &request.text,
        format,
        &request.tags,
        chatgptd_types::now_ms(),
    ) {
        Ok(record) => record,
        Err(refused) => {
            return error(
                StatusCode::BAD_REQUEST,
                "document refused",
                json!({"detail": refused.to_string()}),
            );
        }
    };
    let chunks = knowledge::chunk_records(&record).len();
    let output = match OutputRecord::avro(&state.codec, &state.topic, record.owner.clone(), &record)
    {
        Ok(output) => output,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                "document refused",
                json!({"detail": err.to_string()}),
            );
        }
    };
    match state.producer.send(&output).await {
        Ok((partition, offset)) => {
            info!(source = %record.attributes["source"], chunks, partition, offset, "knowledge document accepted");
            (
                StatusCode::ACCEPTED,
                Json(Accepted {
                    source: record.attributes["source"].clone(),
                    owner: record.owner,
                    chunks,
                    partition,
                    offset,
                }),
            )
                .into_response()
        }
        Err(err) if chatgptd_runtime::producer::rejects_record(&err) => error(
            StatusCode::BAD_REQUEST,
            "document refused by Kafka",
            json!({"detail": err.to_string()}),
        ),
        Err(err) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the document was not accepted by Kafka",
            json!({"detail": err.to_string()}),
        ),
    }
}
