//! Redis failing: going away and coming back (calls fail fast as unavailable, and the same
//! `RedisMemory` works again once Redis is back), not answering, and answering with errors
//! that retrying does not fix.

use std::time::{Duration, Instant};

use chatgptd_memory::{HistoryLimits, Memory, MemoryOptions, RecordWrite, RedisMemory, StateEntry};
use chatgptd_testkit::redis::RedisServer;
use chatgptd_testkit::wait_until;
use chatgptd_types::Secrets;

use crate::fixture::entry;

const TIMEOUT: Duration = Duration::from_millis(500);

fn options(server: &RedisServer) -> MemoryOptions {
    MemoryOptions {
        redis_url: server.url(),
        pool_size: 3,
        connect_timeout: TIMEOUT,
        response_timeout: TIMEOUT,
        ..MemoryOptions::default()
    }
}

/// Waits until `memory` answers again, or fails the test after 10 s.
async fn wait_for_recovery(memory: &RedisMemory) {
    wait_until(
        Duration::from_secs(10),
        "redis memory to work again",
        || async { memory.put("probe", b"ok", None).await.ok() },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_redis_is_unavailable_fast_and_a_restarted_one_works_again() {
    chatgptd_testkit::init_logging();
    let mut server = RedisServer::start().await;
    let memory = RedisMemory::connect(&options(&server), &Secrets::env())
        .await
        .unwrap();
    memory.put("before", b"v", None).await.unwrap();

    server.stop();
    // More calls than connections, so every connection of the pool sees the outage, and
    // every kind of call: plain commands and scripts.
    for round in 0..3 {
        let started = Instant::now();
        let errors = [
            memory.get("before").await.unwrap_err(),
            memory.ping().await.unwrap_err(),
            memory.incr("count", 1, None).await.unwrap_err(),
            memory
                .append_history("owner", &entry("a"), HistoryLimits { cap: 5, ttl: None })
                .await
                .unwrap_err(),
        ];
        for err in &errors {
            assert!(err.is_unavailable(), "round {round}: {err}");
            assert!(
                err.to_string()
                    .contains(&format!("127.0.0.1:{}", server.port())),
                "{err}"
            );
        }
        // Four calls, each bounded by the connect timeout (refused connections fail at once).
        let elapsed = started.elapsed();
        assert!(
            elapsed < 4 * TIMEOUT,
            "round {round}: four failing calls took {elapsed:?}"
        );
    }

    server.restart().await;
    wait_for_recovery(&memory).await;
    // Every connection of the pool recovered, and scripts are reloaded into the new server.
    for _ in 0..3 {
        memory.ping().await.unwrap();
    }
    assert_eq!(memory.incr("count", 2, None).await.unwrap(), 2);
    let limits = HistoryLimits { cap: 5, ttl: None };
    assert!(
        memory
            .append_history("owner", &entry("a"), limits)
            .await
            .unwrap()
    );
    assert!(
        !memory
            .append_history("owner", &entry("a"), limits)
            .await
            .unwrap()
    );
    // The restarted server is empty (no persistence in tests).
    assert_eq!(memory.get("before").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_does_not_answer_is_unavailable_after_the_response_timeout() {
    let server = RedisServer::start().await;
    let memory = RedisMemory::connect(&options(&server), &Secrets::env())
        .await
        .unwrap();
    memory.put("key", b"v", None).await.unwrap();

    // CLIENT PAUSE holds every client's commands (the admin's too) for 1.5 s: Redis is up
    // but silent.
    let client = redis::Client::open(server.url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("ALL")
        .query_async(&mut admin)
        .await
        .unwrap();

    let started = Instant::now();
    let err = memory.get("key").await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(err.is_unavailable(), "{err}");
    assert!(
        elapsed >= TIMEOUT / 2,
        "failed before the timeout: {elapsed:?}: {err}"
    );
    assert!(
        elapsed < 2 * TIMEOUT + Duration::from_millis(200),
        "took {elapsed:?}"
    );

    wait_for_recovery(&memory).await;
    assert_eq!(memory.get("key").await.unwrap(), Some(b"v".to_vec()));
}

/// A full Redis (maxmemory reached under noeviction) refuses writes with OOM until someone
/// makes room: the record that met it must wait, not be dead-lettered.
#[tokio::test]
async fn a_full_redis_is_unavailable_until_there_is_room() {
    let server = RedisServer::start().await;
    let memory = RedisMemory::connect(&options(&server), &Secrets::env())
        .await
        .unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let admin = client.get_multiplexed_async_connection().await.unwrap();
    let config_set = |name: &'static str, value: &'static str| {
        let mut admin = admin.clone();
        async move {
            let _: () = redis::cmd("CONFIG")
                .arg("SET")
                .arg(name)
                .arg(value)
                .query_async(&mut admin)
                .await
                .unwrap();
        }
    };
    config_set("maxmemory-policy", "noeviction").await;
    // Below what Redis already uses: every write is refused.
    config_set("maxmemory", "1").await;

    let err = memory.put("key", b"v", None).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(err.to_string().contains("OOM"), "{err}");
    let err = memory
        .append_history("owner", &entry("a"), HistoryLimits { cap: 5, ttl: None })
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "scripts too: {err}");

    config_set("maxmemory", "0").await;
    memory.put("key", b"v", None).await.unwrap();
}

#[tokio::test]
async fn errors_retrying_does_not_fix_are_backend_errors() {
    let server = RedisServer::start().await;
    let memory = RedisMemory::connect(&options(&server), &Secrets::env())
        .await
        .unwrap();

    // Another application wrote a list where we keep a value, and garbage where we keep
    // history.
    let client = redis::Client::open(server.url()).unwrap();
    let mut other = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg("chatgptd:kv:taken")
        .arg("x")
        .query_async(&mut other)
        .await
        .unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg("chatgptd:history:{owner}")
        .arg("not json")
        .query_async(&mut other)
        .await
        .unwrap();

    let err = memory.get("taken").await.unwrap_err();
    assert!(!err.is_unavailable(), "{err}");
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
    let err = memory.history("owner", 10).await.unwrap_err();
    assert!(!err.is_unavailable(), "{err}");
    // The connection is fine after errors.
    memory.ping().await.unwrap();
}

/// One pipeline carries many records' writes: a write whose key holds something else fails
/// alone, and scripts Redis forgot (a restart, SCRIPT FLUSH) are loaded again.
#[tokio::test]
async fn a_batch_of_writes_fails_write_by_write_and_survives_a_script_flush() {
    let server = RedisServer::start().await;
    let memory = RedisMemory::connect(&options(&server), &Secrets::env())
        .await
        .unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut other = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg("chatgptd:state:taken")
        .arg("not a hash")
        .query_async(&mut other)
        .await
        .unwrap();
    let write = |owner: &str, version: i64| RecordWrite {
        owner: owner.to_string(),
        entry: entry(&format!("{owner}-{version}")),
        limits: HistoryLimits { cap: 5, ttl: None },
        state: StateEntry {
            version,
            value: serde_json::json!(version),
        },
        state_ttl: None,
    };
    let writes = [write("one", 1), write("taken", 2), write("three", 3)];

    let results = memory.write_records(&writes).await;
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    let err = results[1].as_ref().unwrap_err();
    assert!(
        !err.is_unavailable() && err.to_string().contains("WRONGTYPE"),
        "{err}"
    );
    assert_eq!(memory.state("three").await.unwrap().unwrap().version, 3);

    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut other)
        .await
        .unwrap();
    let again = [write("four", 4), write("one", 5)];
    let results = memory.write_records(&again).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(memory.state("one").await.unwrap().unwrap().version, 5);
    assert_eq!(memory.history("one", 10).await.unwrap().len(), 2);
}
