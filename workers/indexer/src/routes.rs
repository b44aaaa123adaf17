//! `GET /search?q=...&owner=...&kind=a,b&since=7d&limit=10&offset=0`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chatgptd_search::{Error, SearchQuery, SearchService, parse_since};
use serde::Deserialize;
use serde_json::json;

use chatgptd_runtime::http::{Routes, Scope, error_response as error};

/// Query parameters, as people type them.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Params {
    q: String,
    owner: Option<String>,
    /// Comma-separated kinds.
    kind: Option<String>,
    /// A duration back (7d), an RFC 3339 time, or epoch milliseconds.
    since: Option<String>,
    limit: usize,
    offset: usize,
}

/// `GET /search`, for tokens with `read`.
pub fn router(search: Arc<SearchService>) -> Routes {
    Routes::new()
        .get("/search", Scope::Read, search_handler)
        .with_state(search)
}

async fn search_handler(
    State(search): State<Arc<SearchService>>,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(params) = match params {
        Ok(params) => params,
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid query parameters",
                json!({"detail": rejection.body_text()}),
            );
        }
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
