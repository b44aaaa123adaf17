//! What happens to a record that fails: undecodable, of another schema, refused by
//! validation, out of retries, too large an output, a panicking processor, a dead letter
//! too large for the broker; and a dependency that is down, which is waited out instead.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chatgptd_runtime::ProcessError;
use chatgptd_runtime::dead_letter::header as dlq;
use chatgptd_testkit::kafka::{TestCluster, committed, consume, header, produce, producer};
use chatgptd_testkit::records::{step, step_value, ticket};
use chatgptd_testkit::runtime::{FnProcessor, echo, metric_sample, start, start_in, test_options};
use chatgptd_testkit::{unique, wait_until};
use chatgptd_types::avro::Codec;
use chatgptd_types::records::DeadLetter;
use rdkafka::Message;

use crate::{WAIT, decode_step, wait_committed};

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
        chatgptd_runtime::WorkerContext::new(&limited, &health, &chatgptd_types::Secrets::env())
            .unwrap();
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

on_both_brokers!(
    poison_records_are_dead_lettered,
    an_outage_is_waited_out_not_dead_lettered,
    a_panicking_processor_dead_letters_the_record,
    a_dead_letter_too_large_goes_without_the_value,
);
