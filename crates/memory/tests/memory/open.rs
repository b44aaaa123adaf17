//! `open` with Redis: a start with Redis unreachable fails clearly, without leaking secrets.

use std::time::{Duration, Instant};

use chatgptd_memory::{Memory, MemoryOptions, RedisMemory};
use chatgptd_testkit::redis::RedisServer;
use chatgptd_types::Secrets;

#[tokio::test]
async fn redis_down_at_start_is_unavailable_naming_the_address_not_the_password() {
    let port = chatgptd_testkit::free_port();
    let options = MemoryOptions {
        redis_url: format!("redis://worker:s3cret-pw@127.0.0.1:{port}/2"),
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_millis(500),
        ..MemoryOptions::default()
    };
    let started = Instant::now();
    let err = chatgptd_memory::open(&options, &std::env::temp_dir(), &Secrets::env())
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.is_unavailable(), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("redis://127.0.0.1:{port}/2")),
        "{message}"
    );
    assert!(!message.contains("s3cret-pw"), "{message}");
    assert!(!message.contains("worker"), "{message}");
}

#[tokio::test]
async fn open_with_a_redis_url_uses_redis() {
    let server = RedisServer::start().await;
    let options = MemoryOptions {
        redis_url: server.url(),
        ..MemoryOptions::default()
    };
    let memory = chatgptd_memory::open(&options, &std::env::temp_dir(), &Secrets::env())
        .await
        .unwrap();
    assert_eq!(memory.backend(), "redis");
    memory.ping().await.unwrap();
}

/// The password is the secret named by `redis_password_env`, looked up in the `Secrets` the
/// caller hands over (a map here; the environment in production).
#[tokio::test]
async fn the_password_comes_from_the_named_secret() {
    let password = "s3cret-redis-pw";
    let secrets = Secrets::from_map([("CHATGPTD_TEST_REDIS_PASSWORD", password)]);
    let server = RedisServer::start().await;
    server.require_password(password).await;

    let without = MemoryOptions {
        redis_url: server.url(),
        ..MemoryOptions::default()
    };
    let err = RedisMemory::connect(&without, &secrets).await.unwrap_err();
    assert!(
        !err.is_unavailable(),
        "a missing password is a configuration error: {err}"
    );

    let with = MemoryOptions {
        redis_password_env: "CHATGPTD_TEST_REDIS_PASSWORD".to_string(),
        ..without.clone()
    };
    let memory = RedisMemory::connect(&with, &secrets).await.unwrap();
    memory.put("k", b"v", None).await.unwrap();
    assert!(!format!("{memory:?}").contains(password));
    // `open`, as the workers call it, hands the secrets on.
    let opened = chatgptd_memory::open(&with, &std::env::temp_dir(), &secrets)
        .await
        .unwrap();
    assert_eq!(opened.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));

    let unset = MemoryOptions {
        redis_password_env: "CHATGPTD_TEST_SURELY_UNSET_VARIABLE".to_string(),
        ..without
    };
    let err = RedisMemory::connect(&unset, &secrets).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("CHATGPTD_TEST_SURELY_UNSET_VARIABLE"),
        "{err}"
    );
}
