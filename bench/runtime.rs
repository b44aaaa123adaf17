//! Runtime throughput, against raw rdkafka in the same run. `cargo bench --bench runtime`.
//!
//! 1. A pass-through processor (decode, re-encode, produce, wait for the ack, store the
//!    offset) vs a hand-written rdkafka loop that consumes and produces the same records
//!    without acknowledgement tracking: what at-least-once bookkeeping costs.
//! 2. A processor that sleeps 100 ms, one partition, 1,000 distinct keys: the runtime keeps
//!    `max_in_flight_per_partition` records in flight, so it should approach bound / 0.1 s.
//!
//! Figures are printed, the ratio last, with the process's resident memory (it holds the
//! broker too, when embedded). `BENCH_RECORDS` scales scenario 1 (default 50000),
//! `BENCH_IN_FLIGHT` sets its in-flight bound per partition (default 64, as configured).
//! The broker is the mock cluster with the fetch wait `chatgptd up` gave it before it
//! embedded tansu; `BENCH_EMBEDDED=durable` runs against the broker `chatgptd up` embeds now
//! (tansu, SQLite, in this process) with librdkafka's default fetch wait;
//! `BENCH_BROKERS=host:port` runs against an external one instead, and
//! `BENCH_FETCH_WAIT_MS` overrides `fetch.wait.max.ms`.

use std::future::Future;
use std::time::{Duration, Instant};

use chatgptd_runtime::embedded::EmbeddedKafka;
use chatgptd_runtime::{
    ConsumerOptions, ConsumerRuntime, Health, Incoming, KafkaOptions, OutputRecord, ProcessError,
    Processor, WorkerContext,
};
use chatgptd_types::Secrets;
use chatgptd_types::avro::Codec;
use chatgptd_types::records::WorkflowStep;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{ClientConfig, Message};
use tokio_util::sync::CancellationToken;

/// Re-encodes each step to `output`, or sleeps first.
struct PassThrough {
    output: String,
    sleep: Option<Duration>,
    codec: Codec,
}

impl Processor for PassThrough {
    type Input = WorkflowStep;

    fn process(
        &self,
        record: &Incoming<WorkflowStep>,
    ) -> impl Future<Output = Result<Vec<OutputRecord>, ProcessError>> + Send {
        let output = OutputRecord::avro(
            &self.codec,
            &self.output,
            record.value.run_id.clone(),
            &record.value,
        );
        let sleep = self.sleep;
        async move {
            if let Some(sleep) = sleep {
                tokio::time::sleep(sleep).await;
            }
            Ok(vec![output?])
        }
    }
}

fn step(i: usize, keys: usize) -> (String, Vec<u8>) {
    let run_id = format!("run-{}", i % keys);
    let step = WorkflowStep {
        run_id: run_id.clone(),
        workflow: "bench".into(),
        step_id: format!("step-{i}"),
        kind: "execute".into(),
        agent: Some("atlas-sentinel".into()),
        input_json: r#"{"topic":"throughput","detail":"a small but realistic input"}"#.into(),
        attempt: 1,
        requested_at_ms: 0,
    };
    (run_id, Codec::builtin().encode(&step).unwrap())
}

async fn fill(brokers: &str, topic: &str, records: usize, keys: usize) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let mut pending = Vec::with_capacity(records);
    for i in 0..records {
        let (key, payload) = step(i, keys);
        pending.push(
            producer
                .send_result(FutureRecord::to(topic).key(&key).payload(&payload))
                .unwrap(),
        );
    }
    for delivery in pending {
        delivery.await.unwrap().unwrap();
    }
}

/// Sums the ends (high watermarks) of `topic`'s partitions.
fn end_offset_sum(client: &BaseConsumer, topic: &str, partitions: i32) -> i64 {
    (0..partitions)
        .map(|p| {
            client
                .fetch_watermarks(topic, p, Duration::from_secs(5))
                .map(|(_, high)| high)
                .unwrap_or(0)
        })
        .sum()
}

/// Waits until `topic` holds at least `expected` records; returns how many it holds then.
/// One client for every check: a client made per check (threads, a connection, metadata)
/// would take CPU from the runtime being measured, which the raw loop never pays.
async fn wait_for_outputs(brokers: &str, topic: &str, partitions: i32, expected: i64) -> i64 {
    let client: std::sync::Arc<BaseConsumer> = std::sync::Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .unwrap(),
    );
    loop {
        let (client, topic) = (client.clone(), topic.to_string());
        let done = tokio::task::spawn_blocking(move || end_offset_sum(&client, &topic, partitions))
            .await
            .unwrap();
        if done >= expected {
            return done;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The baseline: consume everything, produce each payload, flush. No ack tracking, no
/// offsets stored, no decoding.
fn raw_consume_produce(brokers: &str, input: &str, output: &str, records: usize) -> Duration {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("raw-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let producer: rdkafka::producer::BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    consumer.subscribe(&[input]).unwrap();
    // Joining the group is not part of the measurement.
    let first = loop {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            break message.detach();
        }
    };
    let started = Instant::now();
    let send = |message: &rdkafka::message::OwnedMessage| {
        let mut record = rdkafka::producer::BaseRecord::to(output)
            .key(message.key().unwrap_or_default())
            .payload(message.payload().unwrap_or_default());
        while let Err((err, returned)) = producer.send(record) {
            assert!(matches!(
                err,
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull
                )
            ));
            producer.poll(Duration::from_millis(1));
            record = returned;
        }
    };
    send(&first);
    let mut consumed = 1;
    while consumed < records {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            send(&message.detach());
            consumed += 1;
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    started.elapsed()
}

async fn through_runtime(
    kafka: &KafkaOptions,
    input: &str,
    output: &str,
    partitions: i32,
    records: usize,
    sleep: Option<Duration>,
    max_in_flight: usize,
) -> (usize, Duration) {
    let health = Health::default();
    let context = WorkerContext::new(kafka, &health, &Secrets::env()).unwrap();
    let options = ConsumerOptions {
        group_id: format!("bench-{}", uuid::Uuid::new_v4()),
        max_in_flight_per_partition: max_in_flight,
        ..ConsumerOptions::default()
    };
    let processor = PassThrough {
        output: output.to_string(),
        sleep,
        codec: Codec::builtin(),
    };
    let runtime = ConsumerRuntime::new(
        "bench",
        &context,
        options,
        vec![input.to_string()],
        processor,
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let mut running = tokio::spawn(runtime.run(shutdown.clone()));
    // Joining the group (the mock cluster waits 3 s before the first rebalance) is not part
    // of the measurement: time starts when outputs are first seen, and what was already
    // there by then is not counted. A runtime that stops before (a missing topic) ends the
    // bench instead of leaving it waiting.
    let seen = tokio::select! {
        seen = wait_for_outputs(&kafka.brokers, output, partitions, 1) => seen,
        ended = &mut running => panic!("the runtime stopped before its first output: {ended:?}"),
    };
    let started = Instant::now();
    wait_for_outputs(&kafka.brokers, output, partitions, records as i64).await;
    let elapsed = started.elapsed();
    shutdown.cancel();
    running.await.unwrap().unwrap();
    let counted = records - seen as usize;
    assert!(
        counted >= records / 2,
        "{seen} of {records} outputs were there before the clock started: raise BENCH_RECORDS"
    );
    (counted, elapsed)
}

/// The process's resident memory now and at its peak, from `/proc/self/status`.
fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map_or("?".to_string(), |v| v.trim().to_string())
    };
    format!("RSS {}, peak RSS {}", field("VmRSS:"), field("VmHWM:"))
}

/// Creates a topic on an external broker, waiting for the answer.
fn create_external_topic(brokers: &str, name: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let created =
        futures::executor::block_on(admin.create_topics([&topic], &AdminOptions::new())).unwrap();
    for result in created {
        result.unwrap();
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // Logs only when asked (`RUST_LOG=debug`), so they do not skew the figures.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let records: usize = std::env::var("BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    // `BENCH_BROKERS` runs against a real broker (tansu) instead of the embedded one.
    let dir = tempfile::tempdir().unwrap();
    let durable = match std::env::var("BENCH_EMBEDDED").as_deref() {
        Ok("durable") => Some(
            chatgptd_broker::Broker::start(
                &dir.path().join("broker"),
                std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                chatgptd_broker::Members::Forget,
            )
            .await
            .unwrap(),
        ),
        _ => None,
    };
    let external = std::env::var("BENCH_BROKERS")
        .ok()
        .or_else(|| durable.as_ref().map(|b| b.bootstrap_servers().to_string()));
    let embedded = match external {
        Some(_) => None,
        None => Some(EmbeddedKafka::start(1).unwrap()),
    };
    let brokers = match (&external, &embedded) {
        (Some(brokers), _) => brokers.clone(),
        (None, Some(cluster)) => cluster.bootstrap_servers().to_string(),
        (None, None) => unreachable!(),
    };
    let mut kafka = KafkaOptions::with_brokers(&brokers);
    if embedded.is_some() {
        // What `chatgptd up` sets for its embedded broker (see `embedded::FETCH_WAIT_MS`).
        kafka.properties.insert(
            "fetch.wait.max.ms".into(),
            chatgptd_runtime::embedded::FETCH_WAIT_MS.into(),
        );
    }
    if let Ok(wait) = std::env::var("BENCH_FETCH_WAIT_MS") {
        kafka.properties.insert("fetch.wait.max.ms".into(), wait);
    }
    let create_topic = |name: &str, partitions: i32| match &embedded {
        Some(cluster) => cluster.create_topic(name, partitions, 1).unwrap(),
        None => create_external_topic(&brokers, name, partitions),
    };
    let partitions = 6;
    for topic in ["in", "out-raw", "out-runtime"] {
        create_topic(topic, partitions);
    }
    // A consumer refuses to start without its dead-letter topic.
    create_topic(&ConsumerOptions::default().dead_letter_topic, 1);
    let broker_name = if embedded.is_some() {
        "mock cluster"
    } else if durable.is_some() {
        "embedded tansu, SQLite"
    } else {
        "external broker"
    };
    let fetch_wait = kafka
        .properties
        .get("fetch.wait.max.ms")
        .map_or("500 (default)", String::as_str);
    println!(
        "# runtime throughput ({broker_name}, fetch.wait.max.ms {fetch_wait}, {partitions} partitions, {records} records)"
    );
    fill(&brokers, "in", records, records).await;

    let raw = tokio::task::spawn_blocking({
        let brokers = brokers.clone();
        move || raw_consume_produce(&brokers, "in", "out-raw", records)
    })
    .await
    .unwrap();
    let raw_rate = records as f64 / raw.as_secs_f64();
    println!(
        "raw rdkafka consume-then-produce: {raw_rate:>9.0} records/s ({:.2} s)",
        raw.as_secs_f64()
    );

    let in_flight: usize = std::env::var("BENCH_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let (counted, runtime) = through_runtime(
        &kafka,
        "in",
        "out-runtime",
        partitions,
        records,
        None,
        in_flight,
    )
    .await;
    let runtime_rate = counted as f64 / runtime.as_secs_f64();
    println!(
        "runtime, pass-through processor:  {runtime_rate:>9.0} records/s ({:.2} s)",
        runtime.as_secs_f64()
    );
    println!("memory after pass-through:        {}", memory());

    println!();
    let slow_records = 3_000;
    let bound = 64;
    println!(
        "# slow processor: 100 ms per record, 1 partition, 1000 keys, {slow_records} records, bound {bound}"
    );
    create_topic("slow-in", 1);
    create_topic("slow-out", 1);
    fill(&brokers, "slow-in", slow_records, 1000).await;
    let (slow_counted, slow) = through_runtime(
        &kafka,
        "slow-in",
        "slow-out",
        1,
        slow_records,
        Some(Duration::from_millis(100)),
        bound,
    )
    .await;
    let slow_rate = slow_counted as f64 / slow.as_secs_f64();
    let ideal = bound as f64 / 0.1;
    println!(
        "runtime:                          {slow_rate:>9.0} records/s ({:.2} s)",
        slow.as_secs_f64()
    );
    println!(
        "ideal (bound / 0.1 s):            {ideal:>9.0} records/s; one at a time would be 10/s"
    );
    println!("memory after the slow run:        {}", memory());

    println!();
    println!(
        "ratio runtime / raw rdkafka:      {:>9.3}",
        runtime_rate / raw_rate
    );
    println!(
        "ratio slow processor / ideal:     {:>9.3}",
        slow_rate / ideal
    );
}
