//! Where a worker's prompt finds relevant memory: the index in this process's data
//! directory, or an indexer's `GET /search` when the index lives elsewhere.

use std::sync::Arc;

use tracing::warn;

use crate::retrieve::{self, Retrieval};
use crate::{Error, Hit, SearchQuery, SearchResults, SearchService};

/// Where relevant memory comes from.
#[derive(Clone)]
pub enum Retriever {
    /// No retrieval.
    None,
    /// The index in this process's data directory.
    Local(Arc<SearchService>),
    /// An indexer's HTTP API, e.g. `http://indexer:8080`.
    Remote {
        client: reqwest::Client,
        base_url: String,
    },
}

impl std::fmt::Debug for Retriever {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Retriever::None => f.write_str("None"),
            Retriever::Local(_) => f.write_str("Local"),
            Retriever::Remote { base_url, .. } => write!(f, "Remote({base_url})"),
        }
    }
}

impl Retriever {
    /// Runs `query` on the index, wherever it is (`None`: this process has no index).
    pub async fn search(&self, query: SearchQuery) -> Option<Result<SearchResults, Error>> {
        match self {
            Retriever::None => None,
            Retriever::Local(service) => {
                let service = service.clone();
                let result = tokio::task::spawn_blocking(move || service.search(&query)).await;
                Some(result.unwrap_or_else(|err| Err(Error::Index(err.to_string()))))
            }
            Retriever::Remote { client, base_url } => {
                Some(remote_search(client, base_url, &query).await)
            }
        }
    }

    /// The most relevant memory for `text`. Retrieval is a help, not a requirement: when the
    /// index cannot answer, the prompt goes without it (and a warning is logged).
    pub async fn find(&self, text: &str, retrieval: &Retrieval) -> Vec<Hit> {
        let result = match self {
            Retriever::None => return Vec::new(),
            Retriever::Local(service) => {
                let (service, text, retrieval) =
                    (service.clone(), text.to_string(), retrieval.clone());
                tokio::task::spawn_blocking(move || retrieve::relevant(&service, &text, &retrieval))
                    .await
                    .map_err(|err| err.to_string())
                    .and_then(|found| found.map_err(|err| err.to_string()))
            }
            Retriever::Remote { client, base_url } => {
                remote(client, base_url, text, retrieval).await
            }
        };
        result.unwrap_or_else(|err| {
            warn!(%err, "relevant memory unavailable; prompting without it");
            Vec::new()
        })
    }
}

async fn remote(
    client: &reqwest::Client,
    base_url: &str,
    text: &str,
    retrieval: &Retrieval,
) -> Result<Vec<Hit>, String> {
    let Some(query) = retrieve::query_for(text, retrieval) else {
        return Ok(Vec::new());
    };
    let results = remote_search(client, base_url, &query)
        .await
        .map_err(|err| err.to_string())?;
    Ok(retrieve::select(results.hits, retrieval))
}

/// `query` through an indexer's `GET /search`.
async fn remote_search(
    client: &reqwest::Client,
    base_url: &str,
    query: &SearchQuery,
) -> Result<SearchResults, Error> {
    let mut params = vec![
        ("q", query.q.clone()),
        ("limit", query.limit.to_string()),
        ("offset", query.offset.to_string()),
    ];
    if !query.kinds.is_empty() {
        params.push(("kind", query.kinds.join(",")));
    }
    if let Some(owner) = &query.owner {
        params.push(("owner", owner.clone()));
    }
    if query.knowledge {
        params.push(("knowledge", "true".to_string()));
    }
    let url = format!("{}/search", base_url.trim_end_matches('/'));
    let unavailable = |err: String| Error::Index(format!("{url}: {err}"));
    let response = client
        .get(&url)
        .query(&params)
        .send()
        .await
        .map_err(|err| unavailable(err.to_string()))?;
    let status = response.status();
    if status == reqwest::StatusCode::BAD_REQUEST {
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        return Err(Error::Query(
            body.get("detail")
                .and_then(|d| d.as_str())
                .unwrap_or("the indexer refused the query")
                .to_string(),
        ));
    }
    if !status.is_success() {
        return Err(unavailable(format!("HTTP {status}")));
    }
    response
        .json()
        .await
        .map_err(|err| unavailable(err.to_string()))
}
