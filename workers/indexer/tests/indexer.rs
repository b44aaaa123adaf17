//! The indexer through its worker, on real parts: the mock cluster and a Tantivy index on
//! disk.

use std::sync::Arc;
use std::time::Duration;

use chatgptd_runtime::{Health, Service, WorkerContext};
use chatgptd_search::{IndexerOptions, SearchQuery, SearchService};
use chatgptd_testkit::kafka::{MockKafka, committed, produce, producer};
use chatgptd_testkit::records::memory_record;
use chatgptd_testkit::runtime::{metric_sample, test_options};
use chatgptd_testkit::{init_logging, unique, wait_until};
use chatgptd_worker_indexer::{IndexerService, IndexerWorkerOptions};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

/// Records the indexer counted as consumed, from the process's metrics.
fn indexer_records_in(topic: &str) -> u64 {
    let sample = format!("chatgptd_records_in_total{{worker=\"indexer\",topic=\"{topic}\"}}");
    metric_sample(&sample) as u64
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
    let context = WorkerContext::new(
        &kafka.options(),
        &Health::default(),
        &chatgptd_types::Secrets::env(),
    )
    .unwrap();
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
