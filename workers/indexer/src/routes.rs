//! `GET /search?q=...&owner=...&kind=a,b&since=7d&limit=10&offset=0`, and `POST /knowledge`
//! (in `knowledge`).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chatgptd_search::{Error, SearchQuery, SearchService, parse_since};
use serde::Deserialize;
use serde_json::json;

use chatgptd_runtime::http::openapi::ErrorBody;
use chatgptd_runtime::http::{Routes, Scope, error_response as error, query_params};
use utoipa::OpenApi;

use crate::knowledge::KnowledgeApi;

/// Query parameters, as people type them.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(default)]
#[into_params(parameter_in = Query)]
struct Params {
    /// Words, `"phrases"`, `+required`, `-excluded`, `tag:x`, `a OR b`; empty lists the newest.
    q: String,
    /// Only records of this owner (`agent:<id>`, `ticket:<source>:<id>`, `run:<id>`).
    owner: Option<String>,
    /// With `owner`: the shared knowledge base too.
    knowledge: bool,
    /// Comma-separated kinds.
    kind: Option<String>,
    /// A duration back (7d), an RFC 3339 time, or epoch milliseconds.
    since: Option<String>,
    /// Results per page (at most 100; 0 means 10).
    limit: usize,
    /// Results to skip.
    offset: usize,
}

/// `GET /search`, for tokens with `read`; `POST /knowledge`, for tokens with `send`.
pub(crate) fn router(search: Arc<SearchService>, knowledge: KnowledgeApi) -> Routes {
    Routes::new()
        .documented(SearchApi::openapi())
        .get("/search", Scope::Read, search_handler)
        .with_state(search)
        .merge(
            Routes::new()
                .post("/knowledge", Scope::Send, crate::knowledge::add)
                .with_state(knowledge),
        )
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(search_handler, crate::knowledge::add),
    tags((name = "search", description = "Search over memory: tickets, conversations, runs, knowledge"))
)]
struct SearchApi;

/// Searches memory: best matches first, with snippets (matches in `<b>`, the rest escaped).
#[utoipa::path(get, path = "/search", tag = "search", params(Params), responses(
    (status = 200, description = "a page of results", body = chatgptd_search::SearchResults),
    (status = 400, description = "a query syntax error (with its position) or an invalid filter", body = ErrorBody),
))]
async fn search_handler(
    State(search): State<Arc<SearchService>>,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let params = match query_params(params) {
        Ok(params) => params,
        Err(response) => return *response,
    };
    let since_ms = match params
        .since
        .as_deref()
        .map(|since| parse_since(since, chatgptd_types::now_ms()))
        .transpose()
    {
        Ok(since) => since,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid since",
                json!({"detail": err.to_string()}),
            );
        }
    };
    let query = SearchQuery {
        q: params.q,
        owner: params.owner,
        knowledge: params.knowledge,
        kinds: params
            .kind
            .map(|k| {
                k.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        since_ms,
        limit: params.limit,
        offset: params.offset,
    };
    let result = tokio::task::spawn_blocking(move || search.search(&query)).await;
    match result {
        Ok(Ok(results)) => axum::Json(results).into_response(),
        Ok(Err(Error::Syntax { position, message })) => error(
            StatusCode::BAD_REQUEST,
            "query syntax error",
            json!({"position": position, "detail": message}),
        ),
        Ok(Err(err)) if err.is_bad_request() => error(
            StatusCode::BAD_REQUEST,
            "invalid query",
            json!({"detail": err.to_string()}),
        ),
        Ok(Err(err)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "search failed",
            json!({"detail": err.to_string()}),
        ),
        Err(err) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "search failed",
            json!({"detail": err.to_string()}),
        ),
    }
}
