//! The memory writer through its worker, on real parts: the mock cluster and a real
//! redis-server.

use std::sync::Arc;
use std::time::Duration;

use chatgptd_memory::{Memory, MemoryOptions};
use chatgptd_runtime::{Health, Service, WorkerContext};
use chatgptd_testkit::kafka::{MockKafka, committed, produce, producer};
use chatgptd_testkit::records::memory_record;
use chatgptd_testkit::redis::RedisServer;
use chatgptd_testkit::runtime::test_options;
use chatgptd_testkit::{init_logging, unique, wait_until};
use chatgptd_worker_memory_writer::MemoryWriterOptions;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

async fn redis_memory(redis: &RedisServer) -> Arc<dyn Memory> {
    let options = MemoryOptions {
        redis_url: redis.url(),
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_millis(500),
        ..MemoryOptions::default()
    };
    chatgptd_memory::open(
        &options,
        std::path::Path::new("unused"),
        &chatgptd_types::Secrets::env(),
    )
    .await
    .unwrap()
}

/// A running memory writer.
struct Writer {
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), chatgptd_runtime::Error>>,
}

fn start_writer(kafka: &MockKafka, topic: &str, group: &str, memory: Arc<dyn Memory>) -> Writer {
    let context = WorkerContext::new(
        &kafka.options(),
        &Health::default(),
        &chatgptd_types::Secrets::env(),
    )
    .unwrap();
    let options = MemoryWriterOptions {
        topic: topic.to_string(),
        consumer: test_options(group),
    };
    let runtime = chatgptd_worker_memory_writer::MemoryWriterService::new(
        &options,
        &MemoryOptions::default(),
        &context,
        memory,
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(runtime.run(shutdown.clone()));
    Writer { shutdown, handle }
}

impl Writer {
    async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap();
    }
}

async fn history_len(memory: &Arc<dyn Memory>, owner: &str) -> Option<usize> {
    memory.history(owner, 100).await.ok().map(|h| h.len())
}

/// Reading the same record again (a second consumer group: a full redelivery) writes
/// nothing new: the history keeps one entry, the state keeps its version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redelivered_memory_record_changes_nothing() {
    init_logging();
    let (kafka, redis) = (MockKafka::start(), RedisServer::start().await);
    let memory = redis_memory(&redis).await;
    let topic = unique("memory");
    kafka.create_topic(&topic, 1);
    kafka.create_topic(chatgptd_types::topics::names::DEAD_LETTER, 1);
    let producer = producer(&kafka.brokers());
    produce(
        &producer,
        &topic,
        Some(0),
        Some(b"agent:x"),
        &memory_record("r1", "agent:x", "hello"),
        &[],
    )
    .await;

    for _ in 0..2 {
        let group = unique("group");
        let writer = start_writer(&kafka, &topic, &group, memory.clone());
        wait_until(WAIT, "the record committed", || {
            let offsets = committed(&kafka.brokers(), &group, &topic, 1);
            async move { (offsets.get(&0) == Some(&1)).then_some(()) }
        })
        .await;
        writer.stop().await;
    }
    let history = memory.history("agent:x", 100).await.unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].text, "hello");
    assert_eq!(memory.state("agent:x").await.unwrap().unwrap().version, 0);
}

/// While Redis is down nothing is acknowledged; once it is back, everything produced
/// meanwhile is written and committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_stopped_mid_stream_loses_nothing() {
    init_logging();
    let (kafka, mut redis) = (MockKafka::start(), RedisServer::start().await);
    let memory = redis_memory(&redis).await;
    let (topic, group) = (unique("memory"), unique("group"));
    kafka.create_topic(&topic, 1);
    kafka.create_topic(chatgptd_types::topics::names::DEAD_LETTER, 1);
    let brokers = kafka.brokers();
    let writer = start_writer(&kafka, &topic, &group, memory.clone());
    let producer = producer(&brokers);
    for i in 0..5 {
        produce(
            &producer,
            &topic,
            Some(0),
            Some(b"a"),
            &memory_record(&format!("a{i}"), "owner:a", "before"),
            &[],
        )
        .await;
    }
    wait_until(WAIT, "the first five written", || {
        let memory = memory.clone();
        async move { (history_len(&memory, "owner:a").await == Some(5)).then_some(()) }
    })
    .await;
    wait_until(WAIT, "the first five committed", || {
        let offsets = committed(&brokers, &group, &topic, 1);
        async move { (offsets.get(&0) == Some(&5)).then_some(()) }
    })
    .await;

    redis.stop();
    for i in 0..5 {
        produce(
            &producer,
            &topic,
            Some(0),
            Some(b"b"),
            &memory_record(&format!("b{i}"), "owner:b", "during"),
            &[],
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        committed(&brokers, &group, &topic, 1).get(&0),
        Some(&5),
        "nothing acknowledged while Redis is down"
    );

    redis.restart().await;
    wait_until(WAIT, "the five produced during the outage written", || {
        let memory = memory.clone();
        async move { (history_len(&memory, "owner:b").await == Some(5)).then_some(()) }
    })
    .await;
    wait_until(WAIT, "all ten committed", || {
        let offsets = committed(&brokers, &group, &topic, 1);
        async move { (offsets.get(&0) == Some(&10)).then_some(()) }
    })
    .await;
    writer.stop().await;
}
