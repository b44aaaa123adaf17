//! Where a worker's prompt finds relevant memory: the index in this process's data
//! directory, or an indexer's `GET /search` when the index lives elsewhere.

use std::sync::Arc;

use tracing::warn;

use crate::retrieve::{self, Retrieval};
use crate::{Hit, SearchResults, SearchService};

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
    let mut params = vec![("q", query.q), ("limit", query.limit.to_string())];
    if !query.kinds.is_empty() {
        params.push(("kind", query.kinds.join(",")));
    }
    if let Some(owner) = query.owner {
        params.push(("owner", owner));
    }
    let url = format!("{}/search", base_url.trim_end_matches('/'));
    let response = client
        .get(&url)
        .query(&params)
        .send()
        .await
        .map_err(|err| err.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    let results: SearchResults = response.json().await.map_err(|err| err.to_string())?;
    Ok(retrieve::select(results.hits, retrieval))
}
