//! Memory and the search index through their workers, on real parts: the mock cluster, a
//! real redis-server, a Tantivy index on disk.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chatgptd_memory::{Memory, MemoryOptions};
use chatgptd_runtime::{Health, Service, WorkerContext};
use chatgptd_search::{IndexerOptions, SearchQuery, SearchService};
use chatgptd_testkit::kafka::{MockKafka, committed, produce, producer};
use chatgptd_testkit::redis::RedisServer;
use chatgptd_testkit::{init_logging, unique, wait_until};
use chatgptd_types::Secrets;
use chatgptd_types::avro::Codec;
use chatgptd_types::records::MemoryRecord;
use chatgptd_worker_indexer::{IndexerService, IndexerWorkerOptions};
use chatgptd_worker_memory_writer::MemoryWriterOptions;
use tokio_util::sync::CancellationToken;

use crate::support::test_options;

const WAIT: Duration = Duration::from_secs(30);

fn memory_record(id: &str, owner: &str, text: &str) -> Vec<u8> {
    let record = MemoryRecord {
        id: id.into(),
        owner: owner.into(),
        kind: "message".into(),
        text: text.into(),
        tags: vec![],
        created_at_ms: chatgptd_types::now_ms(),
        source_topic: "agents.messages".into(),
        source_partition: 0,
        source_offset: 0,
        attributes: BTreeMap::new(),
    };
    Codec::builtin().encode(&record).unwrap()
}

async fn redis_memory(redis: &RedisServer) -> Arc<dyn Memory> {
    let options = MemoryOptions {
        redis_url: redis.url(),
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_millis(500),
        ..MemoryOptions::default()
    };
    chatgptd_memory::open(&options, std::path::Path::new("unused"), &Secrets::env())
        .await
        .unwrap()
}

/// A running memory writer.
struct Writer {
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), chatgptd_runtime::Error>>,
}

fn start_writer(kafka: &MockKafka, topic: &str, group: &str, memory: Arc<dyn Memory>) -> Writer {
    let context =
        WorkerContext::new(&kafka.options(), &Health::default(), &Secrets::env()).unwrap();
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
    let _memory = chatgptd_node::stack::open_memory(&config, &health, &Secrets::env())
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

/// Records the indexer counted as consumed, from the process's metrics.
fn indexer_records_in(topic: &str) -> u64 {
    let rendered = chatgptd_runtime::telemetry::install_prometheus().render();
    let sample = format!("chatgptd_records_in_total{{worker=\"indexer\",topic=\"{topic}\"}}");
    chatgptd_testkit::prometheus_sample(&rendered, &sample) as u64
}

fn start_indexer(
    kafka: &MockKafka,
    topic: &str,
    group: &str,
    index_root: &std::path::Path,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), chatgptd_runtime::Error>>,
) {
    let context =
        WorkerContext::new(&kafka.options(), &Health::default(), &Secrets::env()).unwrap();
    let mut consumer = test_options(group);
    consumer.max_in_flight_per_partition = 4096;
    consumer.dead_letter_topic = format!("{topic}.dlq");
    let options = IndexerWorkerOptions {
        topic: topic.to_string(),
        consumer,
        index: IndexerOptions {
            commit_interval: Duration::from_millis(100),
            ..IndexerOptions::default()
        },
    };
    let service = IndexerService::new(&options, index_root, &context).unwrap();
    let shutdown = CancellationToken::new();
    (shutdown.clone(), tokio::spawn(service.run(shutdown)))
}

async fn search_total(service: &Arc<SearchService>) -> usize {
    let service = service.clone();
    tokio::task::spawn_blocking(move || {
        service
            .search(&SearchQuery::default())
            .map(|r| r.total)
            .unwrap_or(0)
    })
    .await
    .unwrap()
}

/// The index commit is the publish point: if the process dies after committing the index
/// but before committing Kafka offsets (simulated by a group with no offsets at all),
/// the indexer resumes where its commits say, reading nothing twice and losing nothing. A
/// record that cannot be decoded is dead-lettered and does not hold the position back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_between_index_commit_and_offset_commit_neither_loses_nor_duplicates() {
    init_logging();
    chatgptd_runtime::telemetry::install_prometheus();
    let kafka = MockKafka::start();
    let (topic, group) = (unique("memory"), unique("group"));
    kafka.create_topic(&topic, 2);
    kafka.create_topic(&format!("{topic}.dlq"), 1);
    let index_root = tempfile::tempdir().unwrap();
    let service = Arc::new(SearchService::new(&chatgptd_search::topic_dir(
        index_root.path(),
        &topic,
    )));
    let brokers = kafka.brokers();
    let producer = producer(&brokers);
    for i in 0..20 {
        let (partition, owner) = (i % 2, format!("owner:{}", i % 2));
        produce(
            &producer,
            &topic,
            Some(partition),
            Some(owner.as_bytes()),
            &memory_record(&format!("r{i}"), &owner, &format!("note {i}")),
            &[],
        )
        .await;
    }
    produce(
        &producer,
        &topic,
        Some(0),
        Some(b"owner:0"),
        b"\xC3\x01 garbage",
        &[],
    )
    .await;

    let (stop, running) = start_indexer(&kafka, &topic, &group, index_root.path());
    wait_until(WAIT, "20 documents searchable", || {
        let service = service.clone();
        async move { (search_total(&service).await == 20).then_some(()) }
    })
    .await;
    wait_until(WAIT, "offsets committed", || {
        let offsets = committed(&brokers, &group, &topic, 2);
        async move { (offsets.values().sum::<i64>() == 21).then_some(()) }
    })
    .await;
    stop.cancel();
    running.await.unwrap().unwrap();
    let consumed = indexer_records_in(&topic);
    assert_eq!(consumed, 21);

    // The "crash": the offsets the index already has never reached Kafka. A fresh group
    // has no committed offsets at all, so without the index's own positions it would read
    // every partition from offset 0.
    let group = unique("group-after-crash");
    let (stop, running) = start_indexer(&kafka, &topic, &group, index_root.path());
    for i in 20..24 {
        let (partition, owner) = (i % 2, format!("owner:{}", i % 2));
        produce(
            &producer,
            &topic,
            Some(partition),
            Some(owner.as_bytes()),
            &memory_record(&format!("r{i}"), &owner, &format!("note {i}")),
            &[],
        )
        .await;
    }
    wait_until(WAIT, "24 documents searchable", || {
        let service = service.clone();
        async move { (search_total(&service).await == 24).then_some(()) }
    })
    .await;
    wait_until(WAIT, "offsets committed again", || {
        let offsets = committed(&brokers, &group, &topic, 2);
        async move { (offsets.values().sum::<i64>() == 25).then_some(()) }
    })
    .await;
    assert_eq!(
        indexer_records_in(&topic),
        consumed + 4,
        "only the new records were read"
    );
    stop.cancel();
    running.await.unwrap().unwrap();
}

/// `chatgptd index rebuild` against a real broker: every record the memory topic holds is
/// indexed into a fresh directory that replaces the old one; a rebuild while an indexer holds
/// the index is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn index_rebuild_reindexes_the_memory_topic() {
    use chatgptd_testkit::kafka::TestCluster;
    init_logging();
    let tansu =
        chatgptd_testkit::tansu::Tansu::start(chatgptd_testkit::tansu::Storage::Memory).await;
    let topic = chatgptd_types::topics::names::MEMORY_RECORDS;
    tansu.create_topic(topic, 3).await;
    tansu
        .create_topic(chatgptd_types::topics::names::DEAD_LETTER, 1)
        .await;
    let producer = producer(&tansu.brokers());
    for i in 0..30 {
        let owner = format!("owner:{}", i % 5);
        produce(
            &producer,
            topic,
            None,
            Some(owner.as_bytes()),
            &memory_record(&format!("r{i}"), &owner, &format!("note number {i}")),
            &[],
        )
        .await;
    }
    let data = tempfile::tempdir().unwrap();
    let chatgptd = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_chatgptd"));
        command
            .env_remove("CHATGPTD_CONFIG")
            .args(["--brokers", &tansu.brokers(), "--data-dir"])
            .arg(data.path())
            .args(args);
        command
    };
    let run = |mut command: std::process::Command| async move {
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    };

    for _ in 0..2 {
        let rebuilt = run(chatgptd(&["index", "rebuild"])).await;
        assert!(
            rebuilt.status.success(),
            "{}",
            String::from_utf8_lossy(&rebuilt.stderr)
        );
        assert!(String::from_utf8_lossy(&rebuilt.stdout).contains("index rebuilt"));
        let searched = run(chatgptd(&[
            "search", "", "--format", "json", "--limit", "1",
        ]))
        .await;
        let results: serde_json::Value = serde_json::from_slice(&searched.stdout).unwrap();
        assert_eq!(
            results["total"], 30,
            "every record, once, after each rebuild"
        );
    }

    // A live indexer holds the shards: the rebuild must not pull them from under it.
    let held = chatgptd_search::ShardSet::new(
        &data.path().join("index"),
        topic,
        IndexerOptions::default(),
    );
    held.open(0).unwrap();
    let refused = run(chatgptd(&["index", "rebuild"])).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("an indexer holds"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
