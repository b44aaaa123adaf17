//! Search across indexer replicas that each keep a full copy of the index: two indexer nodes
//! on the mock cluster, each in a consumer group of its own with its own data directory, and a
//! worker's retriever listing both.

use std::time::Duration;

use chatgptd_node::Role;
use chatgptd_search::retrieve::Retrieval;
use chatgptd_search::{Retriever, SearchQuery};
use chatgptd_testkit::kafka::{produce, producer};
use chatgptd_testkit::records::memory_record;
use chatgptd_testkit::wait_until;
use chatgptd_types::topics::names;

use crate::support::node::{self, Node};

const WAIT: Duration = Duration::from_secs(60);
const SECRET: &str = "replicas-search-token-0123456789abcdef";

/// A full-copy indexer replica: its own group (from `tag`) and data directory, and a `read`
/// token whose secret every replica shares, as a deployment's workers send one token.
async fn replica(
    kafka: &chatgptd_testkit::kafka::MockKafka,
    tag: &str,
) -> (Node, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let config = node::with_toml(
        node::config(kafka, data.path(), tag),
        "[http.tokens.search]\nsecret_env = \"SEARCH_TOKEN\"\nscopes = [\"read\"]\n",
    );
    let node = Node::start(config, [("SEARCH_TOKEN", SECRET)], &[Role::Indexer]).await;
    (node, data)
}

/// How many documents `retriever` finds (`None`: it could not search).
async fn total(retriever: &Retriever) -> Option<Result<usize, String>> {
    let found = retriever.search(SearchQuery::default()).await?;
    Some(
        found
            .map(|results| results.total)
            .map_err(|err| err.to_string()),
    )
}

/// Each replica indexes every partition, so each answers for all records; a search through
/// the retriever answers in full with the first replica down, and names every replica when
/// none answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_answers_while_one_full_copy_replica_is_down() {
    let kafka = node::kafka();
    let (a, _a_data) = replica(&kafka, "replica-a").await;
    let (b, _b_data) = replica(&kafka, "replica-b").await;

    let producer = producer(&kafka.brokers());
    let records = 24;
    for i in 0..records {
        let owner = format!("ticket:jira:R-{i}");
        let record = memory_record(&format!("r{i}"), &owner, &format!("replica note {i}"));
        produce(
            &producer,
            names::MEMORY_RECORDS,
            None,
            Some(owner.as_bytes()),
            &record,
            &[],
        )
        .await;
    }

    // Each replica alone holds every record: its own group was assigned every partition.
    let urls = format!("{},{}", a.url, b.url);
    for url in [&a.url, &b.url] {
        let only = b.stack.retriever("agents", url, "SEARCH_TOKEN");
        wait_until(WAIT, &format!("{url} holds every record"), || {
            let only = only.clone();
            async move { (total(&only).await == Some(Ok(records))).then_some(()) }
        })
        .await;
    }

    let both = b.stack.retriever("agents", &urls, "SEARCH_TOKEN");
    assert!(matches!(&both, Retriever::Remote(remote) if remote.base_urls().len() == 2));
    assert_eq!(total(&both).await, Some(Ok(records)));

    // The first listed replica goes down: searches still answer in full, from the other.
    let a_url = a.url.clone();
    a.stop().await.unwrap();
    assert_eq!(total(&both).await, Some(Ok(records)));
    assert_eq!(
        total(&both).await,
        Some(Ok(records)),
        "again, from the replica that answered"
    );
    let retrieval = Retrieval {
        max_hits: 3,
        max_tokens: 500,
        ..Retrieval::default()
    };
    let hits = both.find("a replica note", &retrieval).await;
    assert_eq!(
        hits.len(),
        3,
        "a prompt's retrieval finds memory too: {hits:?}"
    );

    // None answers: the error names every replica, and a prompt goes without memory.
    b.stop().await.unwrap();
    let err = total(&both).await.unwrap().unwrap_err();
    let b_url = &urls[a_url.len() + 1..];
    assert!(err.contains(&a_url) && err.contains(b_url), "{err}");
}

/// A stand-in indexer on 127.0.0.1 answering `GET /search` with `status` and `body`, counting
/// the searches it gets.
async fn stub(
    status: u16,
    body: serde_json::Value,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().route(
        "/search",
        axum::routing::get(move || {
            let (counted, body) = (counted.clone(), body.clone());
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                let status = axum::http::StatusCode::from_u16(status).unwrap();
                (status, axum::Json(body))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

/// What fails a search over to the next replica: a replica's error (5xx, an answer that is
/// not results) does, a refused query (400) does not, and the next search starts at the
/// replica that answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_error_fails_over_and_a_refused_query_does_not() {
    use std::sync::atomic::Ordering;
    let results =
        serde_json::json!({"total": 3, "hits": [], "offset": 0, "limit": 10, "shards": 1});
    let (broken, broken_hits) = stub(500, serde_json::json!({"error": "boom"})).await;
    let (garbled, garbled_hits) = stub(200, serde_json::json!({"not": "results"})).await;
    let (healthy, healthy_hits) = stub(200, results).await;
    let remote = chatgptd_search::Remote::new(
        chatgptd_testkit::http_client(),
        &format!("{broken},{garbled},{healthy}"),
    )
    .unwrap();
    let retriever = Retriever::Remote(std::sync::Arc::new(remote));

    assert_eq!(total(&retriever).await, Some(Ok(3)));
    assert_eq!(total(&retriever).await, Some(Ok(3)));
    let counts =
        || [&broken_hits, &garbled_hits, &healthy_hits].map(|hits| hits.load(Ordering::SeqCst));
    assert_eq!(
        counts(),
        [1, 1, 2],
        "the second search started at the replica that answered"
    );

    let (refusing, refusing_hits) = stub(
        400,
        serde_json::json!({"error": "invalid_query", "detail": "bad syntax"}),
    )
    .await;
    let remote = chatgptd_search::Remote::new(
        chatgptd_testkit::http_client(),
        &format!("{refusing},{healthy}"),
    )
    .unwrap();
    let retriever = Retriever::Remote(std::sync::Arc::new(remote));
    let refused = retriever.search(SearchQuery::default()).await.unwrap();
    assert!(
        matches!(&refused, Err(chatgptd_search::Error::Query(detail)) if detail == "bad syntax"),
        "{refused:?}"
    );
    assert_eq!(refusing_hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        healthy_hits.load(Ordering::SeqCst),
        2,
        "a refused query is not asked again elsewhere"
    );
}
