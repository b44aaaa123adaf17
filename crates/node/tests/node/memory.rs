//! The memory backend as the node opens it (`stack::open_memory`), on a real redis-server.

use std::time::Duration;

use chatgptd_memory::MemoryOptions;
use chatgptd_runtime::Health;
use chatgptd_testkit::redis::RedisServer;
use chatgptd_testkit::{init_logging, wait_until};

const WAIT: Duration = Duration::from_secs(30);

/// `/readyz` follows the memory backend: a Redis that goes away makes the process not ready
/// until it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_redis_going_away_and_coming_back() {
    init_logging();
    let mut redis = RedisServer::start().await;
    let data = tempfile::tempdir().unwrap();
    let config = chatgptd_node::config::Config {
        data_dir: data.path().to_path_buf(),
        memory: MemoryOptions {
            redis_url: redis.url(),
            response_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_millis(500),
            ..MemoryOptions::default()
        },
        ..Default::default()
    };
    let health = Health::default();
    let _memory =
        chatgptd_node::stack::open_memory(&config, &health, &chatgptd_types::Secrets::env())
            .await
            .unwrap();
    let ready = |health: &Health| health.snapshot().0;
    assert!(ready(&health));

    redis.stop();
    wait_until(WAIT, "not ready while redis is down", || {
        let down = !ready(&health);
        async move { down.then_some(()) }
    })
    .await;
    redis.restart().await;
    wait_until(WAIT, "ready again", || {
        let up = ready(&health);
        async move { up.then_some(()) }
    })
    .await;
}
