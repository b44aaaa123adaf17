//! The result cache on real memory backends: a repeated call is not paid twice, and a memory
//! outage stalls calls instead of paying for them.

use std::sync::Arc;
use std::time::Duration;

use chatgptd_memory::{Memory, MemoryOptions, RedisMemory, SqliteMemory};
use chatgptd_model::{
    ChatMessage, ChatRequest, Classify, Error, ErrorKind, ModelClient, ModelOptions,
};
use chatgptd_testkit::fake_openai::FakeOpenAi;
use chatgptd_testkit::redis::RedisServer;
use chatgptd_types::Secrets;

use crate::fixture::{options, secrets, triage_schema};

fn cached_options(fake: &FakeOpenAi) -> ModelOptions {
    ModelOptions {
        cache_ttl: Duration::from_secs(3600),
        ..options(fake)
    }
}

fn request() -> ChatRequest {
    ChatRequest::new("triage-v1", vec![ChatMessage::user("I was charged twice.")])
        .with_schema("triage", triage_schema())
}

#[tokio::test]
async fn the_cache_prevents_a_second_call() {
    let dir = tempfile::tempdir().unwrap();
    let memory: Arc<dyn Memory> = Arc::new(
        SqliteMemory::open(&dir.path().join("memory.db"), "test")
            .await
            .unwrap(),
    );
    let fake = FakeOpenAi::start().await;
    let client = ModelClient::new(&cached_options(&fake), Some(memory.clone()), &secrets())
        .await
        .unwrap();

    let first = client.chat(&request()).await.unwrap();
    let second = client.chat(&request()).await.unwrap();

    assert_eq!(
        fake.request_count(),
        1,
        "the second call was answered from the cache"
    );
    assert!(!first.provenance.cached);
    assert!(second.provenance.cached);
    assert_eq!(second.content, first.content);
    assert_eq!(second.json, first.json);
    assert_eq!(second.provenance.request_id, first.provenance.request_id);

    // A new client on the same memory (a restarted worker) does not pay either.
    let restarted = ModelClient::new(&cached_options(&fake), Some(memory), &secrets())
        .await
        .unwrap();
    assert!(restarted.chat(&request()).await.unwrap().provenance.cached);
    assert_eq!(fake.request_count(), 1);

    // Another prompt version, or a request that opts out, is a new call.
    let mut next_version = request();
    next_version.prompt_version = "triage-v2".to_string();
    assert!(!client.chat(&next_version).await.unwrap().provenance.cached);
    let mut uncached = request();
    uncached.cache = false;
    assert!(!client.chat(&uncached).await.unwrap().provenance.cached);
    assert_eq!(fake.request_count(), 3);
}

#[tokio::test]
async fn a_memory_outage_stalls_calls_instead_of_paying_for_them() {
    let mut redis = RedisServer::start().await;
    let memory_options = MemoryOptions {
        redis_url: redis.url(),
        ..MemoryOptions::default()
    };
    let memory: Arc<dyn Memory> = Arc::new(
        RedisMemory::connect(&memory_options, &Secrets::env())
            .await
            .unwrap(),
    );
    let fake = FakeOpenAi::start().await;
    let client = ModelClient::new(&cached_options(&fake), Some(memory), &secrets())
        .await
        .unwrap();

    redis.stop();
    let err = client.chat(&request()).await.unwrap_err();

    assert!(
        matches!(&err, Error::Cache(memory) if memory.is_unavailable()),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(fake.request_count(), 0);
}
