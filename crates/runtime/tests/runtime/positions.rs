//! Where a worker starts and what stops it: topics it needs, a new group's first record, an
//! offset out of range that stops its partition, and a processor that keeps its own
//! positions.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatgptd_runtime::ProcessError;
use chatgptd_testkit::kafka::{
    MockKafka, TestCluster, commit_offset, committed, produce, producer,
};
use chatgptd_testkit::records::step;
use chatgptd_testkit::runtime::{
    FnProcessor, echo, metric_sample, produce_runs, start, test_options,
};
use chatgptd_testkit::{init_logging, unique, wait_until};
use chatgptd_types::records::WorkflowStep;

use crate::{WAIT, with_dead_letter_topic};

/// A worker whose topics do not exist refuses to start and says how to fix it.
async fn missing_topics_are_refused(cluster: &impl TestCluster) {
    let processor = FnProcessor::new(|_| async { Ok(vec![]) });
    let running = start(
        &cluster.brokers(),
        "missing",
        test_options(&unique("group")),
        &unique("nope"),
        processor,
    );
    let err = running.handle.await.unwrap().unwrap_err().to_string();
    assert!(
        err.contains("topics missing") && err.contains("chatgptd topics apply"),
        "{err}"
    );
}

/// A new group, which has committed nothing, reads every partition from its first record:
/// `auto.offset.reset` is `error`, so the runtime chooses that start itself.
async fn a_new_group_reads_from_the_beginning(cluster: &impl TestCluster) {
    let (input, output, group) = (unique("in"), unique("out"), unique("group"));
    cluster.create_topic(&input, 2).await;
    cluster.create_topic(&output, 1).await;
    let brokers = cluster.brokers();
    let producer = producer(&brokers);
    produce_runs(&producer, &input, Some(0), 0..5).await;
    produce_runs(&producer, &input, Some(1), 5..12).await;
    let out = output.clone();
    let processor =
        FnProcessor::new(move |incoming| std::future::ready(Ok(vec![echo(&out, &incoming)])));
    let worker = unique("new-group");
    let running = start(&brokers, &worker, test_options(&group), &input, processor);
    wait_until(WAIT, "both partitions committed to their end", || {
        let offsets = committed(&brokers, &group, &input, 2);
        async move { (offsets.get(&0) == Some(&5) && offsets.get(&1) == Some(&7)).then_some(()) }
    })
    .await;
    let (ready, components) = running.health.snapshot();
    assert!(ready, "{components:?}");
    assert_eq!(
        components[&format!("partitions:{worker}")].detail,
        "no partition stopped"
    );
    running.stop().await.unwrap();
}

/// A group whose committed offset is out of range (here beyond the end, as after a topic was
/// recreated; retention deleting unprocessed records is the same case below the start) stops
/// that partition: nothing of it is processed, its committed offset stays where it was, and
/// `/readyz` and a metric say which partition and why. Its other partition keeps going.
/// librdkafka's `auto.offset.reset` would otherwise move the group silently.
async fn an_offset_out_of_range_stops_its_partition(cluster: &impl TestCluster) {
    chatgptd_runtime::telemetry::install_prometheus();
    let (input, output, group) = (unique("in"), unique("out"), unique("group"));
    cluster.create_topic(&input, 2).await;
    cluster.create_topic(&output, 1).await;
    let brokers = cluster.brokers();
    let producer = producer(&brokers);
    produce_runs(&producer, &input, Some(0), 0..10).await;
    produce_runs(&producer, &input, Some(1), 10..20).await;
    tokio::task::spawn_blocking({
        let (brokers, group, input) = (brokers.clone(), group.clone(), input.clone());
        move || commit_offset(&brokers, &group, &input, 0, 1000)
    })
    .await
    .unwrap();

    let seen: Arc<Mutex<Vec<(i32, i64)>>> = Arc::default();
    let processor = FnProcessor::new({
        let (seen, out) = (seen.clone(), output.clone());
        move |incoming| {
            seen.lock()
                .unwrap()
                .push((incoming.meta.partition, incoming.meta.offset));
            let output = echo(&out, &incoming);
            async move { Ok(vec![output]) }
        }
    });
    let worker = unique("out-of-range");
    let running = start(&brokers, &worker, test_options(&group), &input, processor);
    let component = format!("partitions:{worker}");
    let detail = wait_until(WAIT, "the partition reported stopped", || {
        let (_, components) = running.health.snapshot();
        let status = components.get(&component).cloned();
        async move { status.filter(|s| !s.ready).map(|s| s.detail) }
    })
    .await;
    assert!(
        detail.contains(&format!("{input}/0")) && detail.contains("offset 1000 is out of range"),
        "{detail}"
    );
    assert!(detail.contains("0..10"), "the watermarks: {detail}");
    assert!(!running.health.snapshot().0, "/readyz fails");
    wait_until(WAIT, "the other partition committed to its end", || {
        let offsets = committed(&brokers, &group, &input, 2);
        async move { (offsets.get(&1) == Some(&10)).then_some(()) }
    })
    .await;
    // Several auto-commit intervals.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let offsets = committed(&brokers, &group, &input, 2);
    assert_eq!(offsets.get(&0), Some(&1000), "the committed offset stays");
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|(partition, _)| *partition == 1),
        "nothing of the stopped partition is processed: {seen:?}"
    );
    assert_eq!(seen.len(), 10, "the other partition is processed: {seen:?}");
    assert_eq!(
        metric_sample(&format!(
            "chatgptd_partitions_stopped_total{{worker=\"{worker}\",topic=\"{input}\"}}"
        )),
        1.0
    );
    assert_eq!(
        metric_sample(&format!(
            "chatgptd_stopped_partitions{{worker=\"{worker}\"}}"
        )),
        1.0
    );
    running.stop().await.unwrap();
}

/// Offsets a processor saw, each with the offset of the record before it.
type SeenLinks = Arc<Mutex<Vec<(i64, Option<i64>)>>>;

/// A processor that keeps its own positions, and does not need per-key order.
struct Positioned {
    start: i64,
    seen: SeenLinks,
    running: Arc<AtomicUsize>,
    most_at_once: Arc<AtomicUsize>,
    revoked: Arc<AtomicUsize>,
}

impl chatgptd_runtime::Processor for Positioned {
    type Input = WorkflowStep;

    fn process(
        &self,
        record: &chatgptd_runtime::Incoming<WorkflowStep>,
    ) -> impl std::future::Future<Output = Result<Vec<chatgptd_runtime::OutputRecord>, ProcessError>>
    + Send {
        let (seen, running, most) = (
            self.seen.clone(),
            self.running.clone(),
            self.most_at_once.clone(),
        );
        let (offset, previous) = (record.meta.offset, record.meta.previous_offset);
        async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            seen.lock().unwrap().push((offset, previous));
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(vec![])
        }
    }

    fn ordered_by_key(&self) -> bool {
        false
    }

    fn start_offsets(
        &self,
        partitions: &[(String, i32)],
    ) -> Vec<Option<chatgptd_runtime::StartAt>> {
        partitions
            .iter()
            .map(|_| Some(chatgptd_runtime::StartAt::Offset(self.start)))
            .collect()
    }

    fn partitions_revoked(&self, partitions: &[(String, i32)]) {
        self.revoked.fetch_add(partitions.len(), Ordering::SeqCst);
    }
}

/// A processor's own start offset wins over the group's, and without per-key order records
/// of one key run concurrently; the revoke hook runs at shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processor_positions_and_unordered_lanes() {
    init_logging();
    let kafka = MockKafka::start();
    let (input, group) = (unique("in"), unique("group"));
    kafka.create_topic(&input, 1);
    with_dead_letter_topic(&kafka).await;
    let producer = producer(&kafka.brokers());
    for i in 0..20 {
        produce(
            &producer,
            &input,
            Some(0),
            Some(b"one-key"),
            &step("one-key", &i.to_string()),
            &[],
        )
        .await;
    }
    let processor = Positioned {
        start: 5,
        seen: Arc::default(),
        running: Arc::default(),
        most_at_once: Arc::default(),
        revoked: Arc::default(),
    };
    let (seen, most, revoked) = (
        processor.seen.clone(),
        processor.most_at_once.clone(),
        processor.revoked.clone(),
    );
    let health = chatgptd_runtime::Health::default();
    let context = chatgptd_runtime::WorkerContext::new(
        &kafka.options(),
        &health,
        &chatgptd_types::Secrets::env(),
    )
    .unwrap();
    let runtime = chatgptd_runtime::ConsumerRuntime::new(
        "positions",
        &context,
        test_options(&group),
        vec![input.clone()],
        processor,
    )
    .unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(runtime.run(shutdown.clone()));
    wait_until(WAIT, "15 records", || {
        let n = seen.lock().unwrap().len();
        async move { (n == 15).then_some(()) }
    })
    .await;
    let mut offsets = seen.lock().unwrap().clone();
    offsets.sort();
    let expected: Vec<(i64, Option<i64>)> =
        (5..20).map(|o| (o, (o > 5).then_some(o - 1))).collect();
    assert_eq!(
        offsets, expected,
        "started at the processor's offset, each linked to the one before"
    );
    assert!(
        most.load(Ordering::SeqCst) > 1,
        "same-key records ran concurrently"
    );
    shutdown.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(revoked.load(Ordering::SeqCst), 1);
}

on_both_brokers!(
    missing_topics_are_refused,
    a_new_group_reads_from_the_beginning,
    an_offset_out_of_range_stops_its_partition,
);
