//! What a record's delivery guarantees: an offset is committed only after its record and
//! every earlier one are done, records of one key run in order while keys run concurrently,
//! a shutdown drains what is in flight, and a partition at its bound takes nothing more.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatgptd_testkit::kafka::{TestCluster, committed, consume, header, produce, producer};
use chatgptd_testkit::records::step;
use chatgptd_testkit::runtime::{FnProcessor, echo, produce_runs, start, test_options};
use chatgptd_testkit::{unique, wait_until};
use chatgptd_types::trace::TraceContext;
use tokio::sync::watch;

use crate::{WAIT, wait_committed};

/// Outputs appear as records complete, but the committed offset never passes a record that
/// is still being processed: if offsets were stored as records arrive, or as later records
/// finish, the committed offset would move past the gated record and this test fails.
async fn commits_only_after_processing(cluster: &impl TestCluster) {
    let (input, output, group) = (unique("in"), unique("out"), unique("group"));
    cluster.create_topic(&input, 1).await;
    cluster.create_topic(&output, 1).await;
    let (gate_tx, gate) = watch::channel(false);
    let out = output.clone();
    let processor = FnProcessor::new(move |incoming| {
        let mut gate = gate.clone();
        let out = out.clone();
        async move {
            if incoming.value.step_id == "gated" {
                gate.wait_for(|open| *open).await.unwrap();
            }
            Ok(vec![echo(&out, &incoming)])
        }
    });
    let running = start(
        &cluster.brokers(),
        "commits",
        test_options(&group),
        &input,
        processor,
    );

    let brokers = cluster.brokers();
    let producer = producer(&brokers);
    let parent = TraceContext::new_root();
    for i in 0..10 {
        let step_id = if i == 3 { "gated" } else { "plain" };
        let traceparent = parent.to_header();
        produce(
            &producer,
            &input,
            Some(0),
            Some(format!("run-{i}").as_bytes()),
            &step(&format!("run-{i}"), step_id),
            &[(TraceContext::HEADER, traceparent.as_bytes())],
        )
        .await;
    }

    let outputs = tokio::task::spawn_blocking({
        let (brokers, output) = (brokers.clone(), output.clone());
        move || consume(&brokers, &output, 9, WAIT)
    })
    .await
    .unwrap();
    assert_eq!(
        outputs.len(),
        9,
        "every record but the gated one is processed"
    );
    for message in &outputs {
        let traceparent =
            TraceContext::parse(&header(message, TraceContext::HEADER).unwrap()).unwrap();
        assert_eq!(
            traceparent.trace_id, parent.trace_id,
            "outputs continue the input's trace"
        );
        assert_ne!(traceparent.span_id, parent.span_id);
    }
    // Several auto-commit intervals pass; the gated record (offset 3) holds the commit.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let offsets = committed(&brokers, &group, &input, 1);
    assert!(
        offsets.get(&0).is_none_or(|offset| *offset <= 3),
        "committed past unfinished work: {offsets:?}"
    );

    gate_tx.send(true).unwrap();
    wait_committed(&brokers, &group, &input, 10, "the commit to reach the end").await;
    running.stop().await.unwrap();
}

/// Same-key records are processed one after another, in offset order, while different keys
/// run concurrently within one partition.
async fn per_key_order_with_concurrency(cluster: &impl TestCluster) {
    let (input, output, group) = (unique("in"), unique("out"), unique("group"));
    cluster.create_topic(&input, 1).await;
    cluster.create_topic(&output, 1).await;
    let started: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
    let running_now = Arc::new(AtomicUsize::new(0));
    let most_at_once = Arc::new(AtomicUsize::new(0));
    let processor = FnProcessor::new({
        let (started, running_now, most_at_once, out) = (
            started.clone(),
            running_now.clone(),
            most_at_once.clone(),
            output.clone(),
        );
        move |incoming| {
            let (started, running_now, most_at_once, out) = (
                started.clone(),
                running_now.clone(),
                most_at_once.clone(),
                out.clone(),
            );
            async move {
                let now = running_now.fetch_add(1, Ordering::SeqCst) + 1;
                most_at_once.fetch_max(now, Ordering::SeqCst);
                let seq: u32 = incoming.value.step_id.parse().unwrap();
                started
                    .lock()
                    .unwrap()
                    .push((incoming.value.run_id.clone(), seq));
                tokio::time::sleep(Duration::from_millis(20)).await;
                running_now.fetch_sub(1, Ordering::SeqCst);
                Ok(vec![echo(&out, &incoming)])
            }
        }
    });
    let running = start(
        &cluster.brokers(),
        "order",
        test_options(&group),
        &input,
        processor,
    );
    let producer = producer(&cluster.brokers());
    for seq in 0..10 {
        for key in 0..10 {
            let run = format!("key-{key}");
            produce(
                &producer,
                &input,
                Some(0),
                Some(run.as_bytes()),
                &step(&run, &seq.to_string()),
                &[],
            )
            .await;
        }
    }
    wait_until(WAIT, "100 records processed", || {
        let count = started.lock().unwrap().len();
        async move { (count >= 100).then_some(()) }
    })
    .await;
    let mut by_key: HashMap<String, Vec<u32>> = HashMap::new();
    for (key, seq) in started.lock().unwrap().iter() {
        by_key.entry(key.clone()).or_default().push(*seq);
    }
    for (key, seqs) in &by_key {
        assert_eq!(seqs, &(0..10).collect::<Vec<_>>(), "order of {key}");
    }
    let most = most_at_once.load(Ordering::SeqCst);
    assert!(
        most >= 5,
        "keys should run concurrently in one partition, at most {most} did"
    );
    running.stop().await.unwrap();
}

/// A shutdown waits for in-flight records and commits them.
async fn shutdown_drains_and_commits(cluster: &impl TestCluster) {
    let (input, output, group) = (unique("in"), unique("out"), unique("group"));
    cluster.create_topic(&input, 1).await;
    cluster.create_topic(&output, 1).await;
    let started = Arc::new(AtomicUsize::new(0));
    let processor = FnProcessor::new({
        let (started, out) = (started.clone(), output.clone());
        move |incoming| {
            let (started, out) = (started.clone(), out.clone());
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1500)).await;
                Ok(vec![echo(&out, &incoming)])
            }
        }
    });
    let brokers = cluster.brokers();
    let running = start(&brokers, "drain", test_options(&group), &input, processor);
    let producer = producer(&brokers);
    produce_runs(&producer, &input, Some(0), 0..5).await;
    wait_until(WAIT, "5 records in flight", || {
        let n = started.load(Ordering::SeqCst);
        async move { (n == 5).then_some(()) }
    })
    .await;
    running.stop().await.unwrap();
    assert_eq!(
        committed(&brokers, &group, &input, 1).get(&0),
        Some(&5),
        "in-flight records finished and committed"
    );
    assert_eq!(consume(&brokers, &output, 5, WAIT).len(), 5);
}

/// A partition at its in-flight bound is paused: no more records are taken until some finish.
async fn backpressure_bounds_in_flight_records(cluster: &impl TestCluster) {
    let (input, output, group) = (unique("in"), unique("out"), unique("group"));
    cluster.create_topic(&input, 1).await;
    cluster.create_topic(&output, 1).await;
    let started = Arc::new(AtomicUsize::new(0));
    let (gate_tx, gate) = watch::channel(false);
    let processor = FnProcessor::new({
        let (started, out) = (started.clone(), output.clone());
        move |incoming| {
            let (started, out, mut gate) = (started.clone(), out.clone(), gate.clone());
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                gate.wait_for(|open| *open).await.unwrap();
                Ok(vec![echo(&out, &incoming)])
            }
        }
    });
    let mut options = test_options(&group);
    options.max_in_flight_per_partition = 8;
    let brokers = cluster.brokers();
    let running = start(&brokers, "backpressure", options, &input, processor);
    let producer = producer(&brokers);
    produce_runs(&producer, &input, Some(0), 0..200).await;
    wait_until(WAIT, "the bound to fill", || {
        let n = started.load(Ordering::SeqCst);
        async move { (n >= 8).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        started.load(Ordering::SeqCst),
        8,
        "no record beyond the bound is taken"
    );
    gate_tx.send(true).unwrap();
    wait_committed(&brokers, &group, &input, 200, "all 200 committed").await;
    assert_eq!(started.load(Ordering::SeqCst), 200);
    running.stop().await.unwrap();
}

on_both_brokers!(
    commits_only_after_processing,
    per_key_order_with_concurrency,
    shutdown_drains_and_commits,
    backpressure_bounds_in_flight_records,
);
