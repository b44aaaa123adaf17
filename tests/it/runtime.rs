//! The consumer runtime against real Kafka protocol: librdkafka's mock cluster, and tansu.
//!
//! Each scenario is written once against [`TestCluster`] and run on both brokers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatgptd_runtime::ProcessError;
use chatgptd_runtime::dead_letter::header as dlq;
use chatgptd_testkit::kafka::{
    MockKafka, TestCluster, commit_offset, committed, consume, header, produce, producer,
};
use chatgptd_testkit::tansu::{Storage, Tansu};
use chatgptd_testkit::{init_logging, prometheus_sample, unique, wait_until};
use chatgptd_types::Secrets;
use chatgptd_types::avro::Codec;
use chatgptd_types::records::{DeadLetter, WorkflowStep};
use chatgptd_types::trace::TraceContext;
use rdkafka::Message;
use tokio::sync::watch;

use crate::support::{
    FnProcessor, echo, produce_runs, start, start_in, step, step_value, test_options, ticket,
};

const WAIT: Duration = Duration::from_secs(30);

/// Waits until `group` has committed `offset` on partition 0 of `topic`; `what` names it.
async fn wait_committed(brokers: &str, group: &str, topic: &str, offset: i64, what: &str) {
    wait_until(WAIT, what, || {
        let offsets = committed(brokers, group, topic, 1);
        async move { (offsets.get(&0) == Some(&offset)).then_some(()) }
    })
    .await;
}

fn decode_step(message: &rdkafka::message::OwnedMessage) -> WorkflowStep {
    Codec::builtin().decode(message.payload().unwrap()).unwrap()
}

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

/// Undecodable bytes, a record of another schema, a permanent processing error and a record
/// whose retries run out all go to the dead-letter topic with their headers, and the records
/// after them are processed.
async fn poison_records_are_dead_lettered(cluster: &impl TestCluster) {
    let (input, output, dead, group) =
        (unique("in"), unique("out"), unique("dlq"), unique("group"));
    for topic in [&input, &output, &dead] {
        cluster.create_topic(topic, 1).await;
    }
    let tries = Arc::new(AtomicUsize::new(0));
    let processor = FnProcessor::new({
        let (out, tries) = (output.clone(), tries.clone());
        move |incoming| {
            let (out, tries) = (out.clone(), tries.clone());
            async move {
                match incoming.value.step_id.as_str() {
                    "invalid" => Err(ProcessError::permanent(
                        "validation",
                        "step_id is not allowed",
                    )),
                    "flaky" => {
                        tries.fetch_add(1, Ordering::SeqCst);
                        Err(ProcessError::retryable(
                            "model_timeout",
                            "the model did not answer",
                        ))
                    }
                    // Over librdkafka's message.max.bytes: the broker would refuse it too.
                    "huge" => {
                        let mut output = echo(&out, &incoming);
                        output.payload = vec![b'x'; 2_000_000];
                        Ok(vec![output])
                    }
                    _ => Ok(vec![echo(&out, &incoming)]),
                }
            }
        }
    });
    let mut options = test_options(&group);
    options.dead_letter_topic = dead.clone();
    let running = start(&cluster.brokers(), "poison", options, &input, processor);

    let codec = Codec::builtin();
    let ticket = codec.encode(&ticket(0)).unwrap();
    let records: Vec<(&str, Vec<u8>)> = vec![
        ("good-0", step("good-0", "plain")),
        ("garbage", b"\xC3\x01 not avro at all".to_vec()),
        ("invalid", step("invalid", "invalid")),
        ("flaky", step("flaky", "flaky")),
        ("ticket", ticket),
        ("huge", step("huge", "huge")),
        ("good-6", step("good-6", "plain")),
    ];
    let producer = producer(&cluster.brokers());
    for (key, payload) in &records {
        produce(
            &producer,
            &input,
            Some(0),
            Some(key.as_bytes()),
            payload,
            &[("origin", b"test")],
        )
        .await;
    }

    let brokers = cluster.brokers();
    let letters = tokio::task::spawn_blocking({
        let (brokers, dead) = (brokers.clone(), dead.clone());
        move || consume(&brokers, &dead, 5, WAIT)
    })
    .await
    .unwrap();
    assert_eq!(letters.len(), 5);
    let mut by_offset = BTreeMap::new();
    for message in &letters {
        assert_eq!(
            header(message, dlq::SOURCE_TOPIC).as_deref(),
            Some(input.as_str())
        );
        assert_eq!(header(message, dlq::SOURCE_PARTITION).as_deref(), Some("0"));
        assert!(!header(message, dlq::ERROR_MESSAGE).unwrap().is_empty());
        assert_eq!(header(message, dlq::WORKER).as_deref(), Some("poison"));
        let offset: i64 = header(message, dlq::SOURCE_OFFSET)
            .unwrap()
            .parse()
            .unwrap();
        let letter: DeadLetter = codec.decode(message.payload().unwrap()).unwrap();
        assert_eq!(letter.source_offset, offset);
        assert_eq!(
            letter.value.as_deref(),
            Some(records[offset as usize].1.as_slice()),
            "original bytes kept"
        );
        assert_eq!(letter.headers["origin"].as_ref(), b"test");
        by_offset.insert(
            offset,
            (
                header(message, dlq::ERROR_CLASS).unwrap(),
                header(message, dlq::ATTEMPTS).unwrap(),
            ),
        );
    }
    let expected: BTreeMap<i64, (String, String)> = [
        (1, ("unknown_schema".to_string(), "1".to_string())),
        (2, ("validation".to_string(), "1".to_string())),
        (3, ("retries_exhausted".to_string(), "3".to_string())),
        (4, ("unknown_schema".to_string(), "1".to_string())),
        (5, ("output_rejected".to_string(), "1".to_string())),
    ]
    .into();
    assert_eq!(by_offset, expected);
    assert_eq!(
        tries.load(Ordering::SeqCst),
        3,
        "max_attempts tries, no more"
    );

    let outputs = consume(&brokers, &output, 2, WAIT);
    let runs: HashSet<String> = outputs.iter().map(|m| decode_step(m).run_id).collect();
    assert_eq!(
        runs,
        HashSet::from(["good-0".to_string(), "good-6".to_string()])
    );
    wait_committed(
        &brokers,
        &group,
        &input,
        7,
        "the commit to pass the dead letters",
    )
    .await;
    running.stop().await.unwrap();
}

/// Two members of one group split the partitions; every record is processed and committed.
async fn rebalance_between_two_consumers(cluster: &impl TestCluster) {
    let (input, output, group) = (unique("in"), unique("out"), unique("group"));
    cluster.create_topic(&input, 4).await;
    cluster.create_topic(&output, 1).await;
    // Every processing of every record, by member.
    let seen: Arc<Mutex<Vec<(&'static str, String)>>> = Arc::default();
    let member = |name: &'static str| {
        let (seen, out) = (seen.clone(), output.clone());
        FnProcessor::new(move |incoming| {
            let (seen, out) = (seen.clone(), out.clone());
            async move {
                // Long enough that records are in flight when the second member joins.
                tokio::time::sleep(Duration::from_millis(50)).await;
                seen.lock()
                    .unwrap()
                    .push((name, incoming.value.run_id.clone()));
                Ok(vec![echo(&out, &incoming)])
            }
        })
    };
    let brokers = cluster.brokers();
    let first = start(
        &brokers,
        "member-a",
        test_options(&group),
        &input,
        member("a"),
    );
    let producer = producer(&brokers);
    let send = |range: std::ops::Range<usize>, pause: Duration| {
        let (producer, input) = (producer.clone(), input.clone());
        async move {
            for i in range {
                produce_runs(&producer, &input, None, i..i + 1).await;
                tokio::time::sleep(pause).await;
            }
        }
    };
    send(0..100, Duration::ZERO).await;
    wait_until(WAIT, "the first member to process", || {
        let done = seen.lock().unwrap().len();
        async move { (done > 0).then_some(()) }
    })
    .await;

    // Records keep arriving while the second member joins and the partitions move.
    let sending = tokio::spawn(send(100..200, Duration::from_millis(20)));
    let second = start(
        &brokers,
        "member-b",
        test_options(&group),
        &input,
        member("b"),
    );
    sending.await.unwrap();
    wait_until(WAIT, "the second member to join", || {
        let ready = second.health.snapshot().0;
        async move { ready.then_some(()) }
    })
    .await;
    wait_until(WAIT, "all 200 records processed", || {
        let all: HashSet<String> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, run)| run.clone())
            .collect();
        async move { (all.len() == 200).then_some(()) }
    })
    .await;
    wait_until(WAIT, "every partition committed to its end", || {
        let offsets = committed(&brokers, &group, &input, 4);
        async move { (offsets.values().sum::<i64>() == 200).then_some(()) }
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|(member, _)| *member == "b"),
        "the second member got partitions"
    );
    // The revoked member drained its in-flight records and committed them before the
    // partitions moved, so the new owner started after them: nothing processed twice. (On
    // the mock broker, which refuses that commit, redelivery is the at-least-once answer.)
    if cluster.commits_while_rebalancing() {
        let mut times: HashMap<&str, usize> = HashMap::new();
        for (_, run) in &seen {
            *times.entry(run.as_str()).or_default() += 1;
        }
        let twice: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "processed more than once: {twice:?}");
    }
    first.stop().await.unwrap();
    second.stop().await.unwrap();
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

/// A dependency that is down (here: six tries in a row, twice `max_attempts`) is waited
/// out, not dead-lettered, and the record's offset is not committed meanwhile.
async fn an_outage_is_waited_out_not_dead_lettered(cluster: &impl TestCluster) {
    let (input, output, dead, group) =
        (unique("in"), unique("out"), unique("dlq"), unique("group"));
    for topic in [&input, &output, &dead] {
        cluster.create_topic(topic, 1).await;
    }
    let tries = Arc::new(AtomicUsize::new(0));
    let processor = FnProcessor::new({
        let (out, tries) = (output.clone(), tries.clone());
        move |incoming| {
            let (out, tries) = (out.clone(), tries.clone());
            async move {
                if tries.fetch_add(1, Ordering::SeqCst) < 6 {
                    return Err(ProcessError::unavailable(
                        "memory_unavailable",
                        "redis: connection refused",
                    ));
                }
                Ok(vec![echo(&out, &incoming)])
            }
        }
    });
    let mut options = test_options(&group);
    options.dead_letter_topic = dead.clone();
    let brokers = cluster.brokers();
    let running = start(&brokers, "outage", options, &input, processor);
    let producer = producer(&brokers);
    produce(
        &producer,
        &input,
        Some(0),
        Some(b"run"),
        &step("run", "s"),
        &[],
    )
    .await;
    wait_until(WAIT, "the third failed try", || {
        let n = tries.load(Ordering::SeqCst);
        async move { (n >= 3).then_some(()) }
    })
    .await;
    assert!(
        committed(&brokers, &group, &input, 1)
            .get(&0)
            .is_none_or(|offset| *offset == 0)
    );
    assert_eq!(
        consume(&brokers, &output, 1, WAIT).len(),
        1,
        "processed once the dependency is back"
    );
    assert_eq!(tries.load(Ordering::SeqCst), 7);
    assert!(
        consume(&brokers, &dead, 1, Duration::from_secs(2)).is_empty(),
        "nothing dead-lettered"
    );
    running.stop().await.unwrap();
}

/// A sample of the process's metrics (0 when absent).
fn metric_sample(sample: &str) -> f64 {
    let rendered = chatgptd_runtime::telemetry::install_prometheus().render();
    prometheus_sample(&rendered, sample)
}

/// A partition paused at its in-flight bound, revoked, and assigned back to the same member
/// is read again: librdkafka keeps a partition's pause flag across unassign and assign, so
/// unless the runtime resumes it on assign it is never fetched again. Two partitions, both
/// paused by the first member; a second member joins, and under the (eager) default protocol
/// the first gets one of them back, whichever it is. Before that, the lag of partitions the
/// group never committed is reported.
async fn a_paused_partition_assigned_back_is_read_again(cluster: &impl TestCluster) {
    chatgptd_runtime::telemetry::install_prometheus();
    let (input, output, group) = (unique("in"), unique("out"), unique("group"));
    cluster.create_topic(&input, 2).await;
    cluster.create_topic(&output, 1).await;
    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let started = Arc::new(AtomicUsize::new(0));
    let (gate_tx, gate) = watch::channel(false);
    let member = || {
        let (seen, started, out, gate) =
            (seen.clone(), started.clone(), output.clone(), gate.clone());
        FnProcessor::new(move |incoming| {
            let (seen, started, out, mut gate) =
                (seen.clone(), started.clone(), out.clone(), gate.clone());
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                gate.wait_for(|open| *open).await.unwrap();
                seen.lock().unwrap().insert(incoming.value.run_id.clone());
                Ok(vec![echo(&out, &incoming)])
            }
        })
    };
    let options = || {
        let mut options = test_options(&group);
        options.max_in_flight_per_partition = 4;
        // The blocked records are abandoned quickly when the partitions are revoked.
        options.drain_timeout = Duration::from_secs(1);
        options
    };
    let brokers = cluster.brokers();
    let producer = producer(&brokers);
    produce_runs(&producer, &input, Some(0), 0..10).await;
    produce_runs(&producer, &input, Some(1), 10..20).await;
    let worker = unique("paused-a");
    let first = start(&brokers, &worker, options(), &input, member());
    wait_until(WAIT, "both partitions at their bound", || {
        let n = started.load(Ordering::SeqCst);
        async move { (n >= 8).then_some(()) }
    })
    .await;
    wait_until(WAIT, "the lag of partitions never committed", || {
        let lag = |partition: i32| {
            metric_sample(&format!(
                "chatgptd_consumer_lag{{worker=\"{worker}\",topic=\"{input}\",partition=\"{partition}\"}}"
            ))
        };
        let lags = (lag(0), lag(1));
        async move { (lags == (10.0, 10.0)).then_some(()) }
    })
    .await;

    let second = start(&brokers, &unique("paused-b"), options(), &input, member());
    wait_until(WAIT, "the first member's second assignment", || {
        let assigns = metric_sample(&format!(
            "chatgptd_rebalances_total{{worker=\"{worker}\",kind=\"assign\"}}"
        ));
        async move { (assigns >= 2.0).then_some(()) }
    })
    .await;
    gate_tx.send(true).unwrap();
    produce_runs(&producer, &input, Some(0), 20..25).await;
    produce_runs(&producer, &input, Some(1), 25..30).await;
    wait_until(WAIT, "all 30 records processed", || {
        let n = seen.lock().unwrap().len();
        async move { (n == 30).then_some(()) }
    })
    .await;
    wait_until(WAIT, "both partitions committed to their end", || {
        let offsets = committed(&brokers, &group, &input, 2);
        async move { (offsets.get(&0) == Some(&15) && offsets.get(&1) == Some(&15)).then_some(()) }
    })
    .await;
    first.stop().await.unwrap();
    second.stop().await.unwrap();
}

/// A processor that panics on a record: the record is dead-lettered with class `panic` and
/// the panic's message, the panic is counted as an error, and the records after it, of the
/// same key too, are processed and committed.
async fn a_panicking_processor_dead_letters_the_record(cluster: &impl TestCluster) {
    chatgptd_runtime::telemetry::install_prometheus();
    let (input, output, dead, group) =
        (unique("in"), unique("out"), unique("dlq"), unique("group"));
    for topic in [&input, &output, &dead] {
        cluster.create_topic(topic, 1).await;
    }
    let processor = FnProcessor::new({
        let out = output.clone();
        move |incoming| {
            let out = out.clone();
            async move {
                assert!(
                    incoming.value.step_id != "boom",
                    "the processor blew up on {}",
                    incoming.meta.offset
                );
                Ok(vec![echo(&out, &incoming)])
            }
        }
    });
    let mut options = test_options(&group);
    options.dead_letter_topic = dead.clone();
    let brokers = cluster.brokers();
    let worker = unique("panicky");
    let running = start(&brokers, &worker, options, &input, processor);
    let producer = producer(&brokers);
    for step_id in ["ok-0", "boom", "ok-2"] {
        produce(
            &producer,
            &input,
            Some(0),
            Some(b"one-key"),
            &step("one-key", step_id),
            &[],
        )
        .await;
    }
    let letters = tokio::task::spawn_blocking({
        let (brokers, dead) = (brokers.clone(), dead.clone());
        move || consume(&brokers, &dead, 1, WAIT)
    })
    .await
    .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        header(&letters[0], dlq::ERROR_CLASS).as_deref(),
        Some("panic")
    );
    assert_eq!(
        header(&letters[0], dlq::SOURCE_OFFSET).as_deref(),
        Some("1")
    );
    let reason = header(&letters[0], dlq::ERROR_MESSAGE).unwrap();
    assert!(reason.contains("the processor blew up on 1"), "{reason}");
    let outputs = consume(&brokers, &output, 2, WAIT);
    let steps: Vec<String> = outputs.iter().map(|m| decode_step(m).step_id).collect();
    assert_eq!(steps, ["ok-0", "ok-2"], "the key's lane went on");
    wait_committed(&brokers, &group, &input, 3, "the commit to pass the panic").await;
    assert_eq!(
        metric_sample(&format!(
            "chatgptd_errors_total{{worker=\"{worker}\",error_class=\"panic\",stage=\"process\"}}"
        )),
        1.0,
        "the panic is counted"
    );
    running.stop().await.unwrap();
}

/// A record close to `message.max.bytes` that fails permanently: its dead letter, which adds
/// headers and the error, is refused as too large, so a dead letter without the original
/// value goes instead, saying where the original is, and the partition moves on.
async fn a_dead_letter_too_large_goes_without_the_value(cluster: &impl TestCluster) {
    let (input, output, dead, group) =
        (unique("in"), unique("out"), unique("dlq"), unique("group"));
    for topic in [&input, &output, &dead] {
        cluster.create_topic(topic, 1).await;
    }
    let processor = FnProcessor::new({
        let out = output.clone();
        move |incoming| {
            let out = out.clone();
            async move {
                if incoming.value.step_id == "invalid" {
                    return Err(ProcessError::permanent("validation", "the step is invalid"));
                }
                Ok(vec![echo(&out, &incoming)])
            }
        }
    });
    let mut options = test_options(&group);
    options.dead_letter_topic = dead.clone();
    let brokers = cluster.brokers();
    // Only the worker's producer has the small limit: the input is produced and consumed
    // with librdkafka's defaults.
    const MAX_BYTES: usize = 10_000;
    let mut limited = chatgptd_testkit::kafka::test_kafka_options(&brokers);
    limited
        .properties
        .insert("message.max.bytes".into(), MAX_BYTES.to_string());
    let health = chatgptd_runtime::Health::default();
    let mut context =
        chatgptd_runtime::WorkerContext::new(&limited, &health, &Secrets::env()).unwrap();
    context.kafka = chatgptd_testkit::kafka::test_kafka_options(&brokers);
    let running = start_in(&context, "too-large", options, &input, processor);

    let mut big = step_value("big", "invalid");
    big.input_json = "x".repeat(MAX_BYTES - 150);
    let big = Codec::builtin().encode(&big).unwrap();
    assert!(big.len() < MAX_BYTES, "the record itself fits");
    let producer = producer(&brokers);
    produce(
        &producer,
        &input,
        Some(0),
        Some(b"big"),
        &big,
        &[("origin", b"test")],
    )
    .await;
    produce(
        &producer,
        &input,
        Some(0),
        Some(b"good"),
        &step("good", "plain"),
        &[],
    )
    .await;

    let letters = tokio::task::spawn_blocking({
        let (brokers, dead) = (brokers.clone(), dead.clone());
        move || consume(&brokers, &dead, 1, WAIT)
    })
    .await
    .unwrap();
    assert_eq!(letters.len(), 1);
    let omitted = header(&letters[0], dlq::VALUE_OMITTED).expect("says the value is omitted");
    assert!(omitted.contains(&format!("{input}/0/0")), "{omitted}");
    assert_eq!(
        header(&letters[0], dlq::ERROR_CLASS).as_deref(),
        Some("validation")
    );
    let letter: DeadLetter = Codec::builtin()
        .decode(letters[0].payload().unwrap())
        .unwrap();
    assert_eq!(letter.value, None);
    assert_eq!(letter.source_offset, 0);
    assert_eq!(
        letter.error_message, "the step is invalid",
        "the reason is kept"
    );
    assert_eq!(consume(&brokers, &output, 1, WAIT).len(), 1);
    wait_committed(
        &brokers,
        &group,
        &input,
        2,
        "the commit to pass the dead letter",
    )
    .await;
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

/// Creates the default dead-letter topic, which a consumer needs before it starts.
async fn with_dead_letter_topic(cluster: &impl TestCluster) {
    let default = chatgptd_runtime::ConsumerOptions::default().dead_letter_topic;
    cluster.create_topic(&default, 1).await;
}

macro_rules! on_both_brokers {
    ($($scenario:ident),* $(,)?) => {
        mod mock {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $scenario() {
                    super::init_logging();
                    let cluster = super::MockKafka::start();
                    super::with_dead_letter_topic(&cluster).await;
                    super::$scenario(&cluster).await;
                }
            )*
        }
        mod tansu {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $scenario() {
                    super::init_logging();
                    let cluster = super::Tansu::start(super::Storage::Memory).await;
                    super::with_dead_letter_topic(&cluster).await;
                    super::$scenario(&cluster).await;
                }
            )*
        }
    };
}

on_both_brokers!(
    commits_only_after_processing,
    per_key_order_with_concurrency,
    poison_records_are_dead_lettered,
    rebalance_between_two_consumers,
    shutdown_drains_and_commits,
    backpressure_bounds_in_flight_records,
    missing_topics_are_refused,
    an_outage_is_waited_out_not_dead_lettered,
    a_paused_partition_assigned_back_is_read_again,
    a_panicking_processor_dead_letters_the_record,
    a_dead_letter_too_large_goes_without_the_value,
    an_offset_out_of_range_stops_its_partition,
    a_new_group_reads_from_the_beginning,
);

/// A tansu restart (SQLite storage) while records are in flight loses nothing: every record
/// produced before and after is processed, its output is in the topic, and all is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tansu_restart_loses_nothing() {
    init_logging();
    let mut tansu = Tansu::start(Storage::Sqlite).await;
    let (input, output, group) = (unique("in"), unique("out"), unique("group"));
    tansu.create_topic(&input, 2).await;
    tansu.create_topic(&output, 1).await;
    with_dead_letter_topic(&tansu).await;
    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let started = Arc::new(AtomicUsize::new(0));
    let (gate_tx, gate) = watch::channel(false);
    let processor = FnProcessor::new({
        let (seen, out, started) = (seen.clone(), output.clone(), started.clone());
        move |incoming| {
            let (seen, out, mut gate, started) =
                (seen.clone(), out.clone(), gate.clone(), started.clone());
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                gate.wait_for(|open| *open).await.unwrap();
                seen.lock().unwrap().insert(incoming.value.run_id.clone());
                Ok(vec![echo(&out, &incoming)])
            }
        }
    });
    let brokers = tansu.brokers();
    let mut options = test_options(&group);
    options.process_timeout = Duration::from_secs(60);
    let running = start(&brokers, "restart", options, &input, processor);
    let producer = producer(&brokers);
    produce_runs(&producer, &input, None, 0..50).await;
    wait_until(WAIT, "records in flight", || {
        let n = started.load(Ordering::SeqCst);
        async move { (n >= 10).then_some(()) }
    })
    .await;

    tansu.restart().await;
    gate_tx.send(true).unwrap();
    produce_runs(&producer, &input, None, 50..100).await;
    wait_until(
        Duration::from_secs(90),
        "all 100 records processed across the restart",
        || {
            let n = seen.lock().unwrap().len();
            async move { (n == 100).then_some(()) }
        },
    )
    .await;
    wait_until(WAIT, "all committed", || {
        let offsets = committed(&brokers, &group, &input, 2);
        async move { (offsets.values().sum::<i64>() == 100).then_some(()) }
    })
    .await;
    let outputs = consume(&brokers, &output, 100, WAIT);
    let runs: HashSet<String> = outputs.iter().map(|m| decode_step(m).run_id).collect();
    assert_eq!(runs.len(), 100, "every output survived the restart");
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
    let context =
        chatgptd_runtime::WorkerContext::new(&kafka.options(), &health, &Secrets::env()).unwrap();
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
