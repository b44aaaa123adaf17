//! Where a worker's prompt finds relevant memory: the index in this process's data
//! directory, or an indexer's `GET /search` when the index lives elsewhere.
//!
//! Several indexers that each keep a full copy of the index (each in a consumer group of its
//! own, on its own disk) serve one search together: a search goes to the replica that last
//! answered and moves on to the next when one is down, so it answers while any replica is up.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    /// Indexers' HTTP APIs, e.g. `http://indexer:8080`: replicas with a full copy each.
    Remote(Arc<Remote>),
}

/// Indexer replicas answering `GET /search`, tried in turn.
pub struct Remote {
    client: reqwest::Client,
    base_urls: Vec<String>,
    /// The replica that answered last: searches start there, so a replica that is down costs
    /// one failed attempt when it goes down, not one per search.
    current: AtomicUsize,
}

impl Remote {
    /// Replicas at `urls`, separated by commas (`http://indexer-a:8080,http://indexer-b:8080`).
    /// `None` when `urls` names none.
    pub fn new(client: reqwest::Client, urls: &str) -> Option<Remote> {
        let base_urls = base_urls(urls);
        (!base_urls.is_empty()).then_some(Remote {
            client,
            base_urls,
            current: AtomicUsize::new(0),
        })
    }

    /// The replicas' base URLs.
    pub fn base_urls(&self) -> &[String] {
        &self.base_urls
    }

    /// `query` on the first replica that answers, starting with the one that answered last.
    /// A refused query (400) is the query's fault, not the replica's: it is not tried again.
    async fn search(&self, query: &SearchQuery) -> Result<SearchResults, Error> {
        let first = self.current.load(Ordering::Relaxed);
        let mut unavailable = Vec::new();
        for turn in 0..self.base_urls.len() {
            let at = (first + turn) % self.base_urls.len();
            match remote_search(&self.client, &self.base_urls[at], query).await {
                Err(Error::Index(err)) => {
                    if self.base_urls.len() > 1 {
                        warn!(%err, "an indexer replica did not answer; trying the next");
                    }
                    unavailable.push(err);
                }
                answer => {
                    self.current.store(at, Ordering::Relaxed);
                    return answer;
                }
            }
        }
        Err(Error::Index(unavailable.join("; ")))
    }
}

impl std::fmt::Debug for Retriever {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Retriever::None => f.write_str("None"),
            Retriever::Local(_) => f.write_str("Local"),
            Retriever::Remote(remote) => {
                let urls: Vec<String> = remote.base_urls.iter().map(|u| redacted(u)).collect();
                write!(f, "Remote({})", urls.join(","))
            }
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
            Retriever::Remote(remote) => Some(remote.search(&query).await),
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
            Retriever::Remote(replicas) => remote(replicas, text, retrieval).await,
        };
        result.unwrap_or_else(|err| {
            warn!(%err, "relevant memory unavailable; prompting without it");
            Vec::new()
        })
    }
}

async fn remote(replicas: &Remote, text: &str, retrieval: &Retrieval) -> Result<Vec<Hit>, String> {
    let Some(query) = retrieve::query_for(text, retrieval) else {
        return Ok(Vec::new());
    };
    let results = replicas
        .search(&query)
        .await
        .map_err(|err| err.to_string())?;
    Ok(retrieve::select(results.hits, retrieval))
}

/// The base URLs in a comma-separated list, without trailing slashes.
fn base_urls(urls: &str) -> Vec<String> {
    urls.split(',')
        .map(|url| url.trim().trim_end_matches('/'))
        .filter(|url| !url.is_empty())
        .map(str::to_string)
        .collect()
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
    let url = format!("{base_url}/search");
    // Errors are logged and answered: they name the replica without credentials, and
    // reqwest's own URL (with the query, the prompt's words) is left out of them.
    let shown = redacted(&url);
    let unavailable = |err: String| Error::Index(format!("{shown}: {err}"));
    let response = client
        .get(&url)
        .query(&params)
        .send()
        .await
        .map_err(|err| unavailable(err.without_url().to_string()))?;
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
        .map_err(|err| unavailable(err.without_url().to_string()))
}

/// `url` without the user name and password it may carry, for logs and errors.
fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_listed_with_commas() {
        assert_eq!(
            base_urls(" http://a:8080/ , ,http://b:8080"),
            ["http://a:8080", "http://b:8080"]
        );
        assert_eq!(base_urls("http://a:8080"), ["http://a:8080"]);
        assert!(base_urls(" , ").is_empty());
    }

    #[test]
    fn credentials_in_a_url_are_not_shown() {
        assert_eq!(
            redacted("http://reader:s3cret@indexer:8080/search"),
            "http://indexer:8080/search"
        );
        assert_eq!(
            redacted("http://indexer:8080/search"),
            "http://indexer:8080/search"
        );
    }
}
