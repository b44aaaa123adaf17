//! Ingest gateway throughput on loopback. `cargo bench --bench ingest`.
//!
//! K concurrent clients post N signed GitHub `issues` webhooks (distinct delivery ids and
//! issues, so keys spread over the partitions) to the gateway, which checks the signature,
//! parses, claims the delivery in SQLite memory, produces the TicketEvent with acks=all to a
//! mock Kafka cluster and answers 202 only after the ack. The baseline, in the same run: the
//! same requests against an axum handler that reads the body and answers 202 without
//! producing. Figures: accepted webhooks/s, p50 and p99 latency, the ratio last.
//!
//! `BENCH_WEBHOOKS` (default 5000) and `BENCH_CLIENTS` (default 32) scale it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use chatgptd_broker::{Broker, Members, create_topics};
use chatgptd_memory::SqliteMemory;
use chatgptd_runtime::{Health, WorkerContext};
use chatgptd_testkit::kafka::MockKafka;
use chatgptd_types::Secrets;
use chatgptd_types::topics::names;
use chatgptd_worker_ingest::signature::sign_hex;
use chatgptd_worker_ingest::{Ingest, IngestOptions};
use hdrhistogram::Histogram;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

const SECRET: &str = "bench-secret";
const PARTITIONS: i32 = 3;
const WARMUP: usize = 200;

/// One prepared request.
struct Request {
    body: Bytes,
    delivery_id: String,
    signature: String,
}

/// What one pass measured.
struct Pass {
    elapsed: Duration,
    accepted: usize,
    latency_us: Histogram<u64>,
}

impl Pass {
    fn per_second(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self, name: &str) {
        println!(
            "{name:<44} {:>9.0} webhooks/s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({} accepted in {:.2} s)",
            self.per_second(),
            self.latency_us.value_at_quantile(0.50) as f64 / 1000.0,
            self.latency_us.value_at_quantile(0.99) as f64 / 1000.0,
            self.accepted,
            self.elapsed.as_secs_f64(),
        );
    }
}

/// The octokit `issues.opened` example, found from the root package or the ingest crate.
fn github_payload() -> serde_json::Value {
    let fixture = "tests/fixtures/github/issues.opened.octokit-webhooks.json";
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    for candidate in [
        manifest.join("workers/ingest").join(fixture),
        manifest.join(fixture),
    ] {
        if let Ok(bytes) = std::fs::read(&candidate) {
            return serde_json::from_slice(&bytes).expect("the fixture is JSON");
        }
    }
    panic!("{fixture} not found from {}", manifest.display());
}

/// `count` webhooks, each about another issue, signed.
fn requests(template: &serde_json::Value, prefix: &str, count: usize) -> Vec<Request> {
    (0..count)
        .map(|i| {
            let mut payload = template.clone();
            payload["issue"]["number"] = (i + 1).into();
            payload["issue"]["id"] = (444_500_041 + i as u64).into();
            payload["issue"]["node_id"] = format!("bench-issue-{i}").into();
            let body = serde_json::to_vec(&payload).expect("serialises");
            Request {
                signature: sign_hex(SECRET.as_bytes(), &body),
                delivery_id: format!("{prefix}-{i}-{}", uuid::Uuid::new_v4()),
                body: Bytes::from(body),
            }
        })
        .collect()
}

/// Posts every request from `clients` concurrent clients; times each.
async fn run(url: &str, requests: Arc<Vec<Request>>, clients: usize) -> Pass {
    let client = chatgptd_testkit::http_client();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, next, requests, url) = (
            client.clone(),
            next.clone(),
            requests.clone(),
            url.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latency_us = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let mut accepted = 0;
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(request) = requests.get(index) else {
                    break;
                };
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-github-event", "issues")
                    .header("x-github-delivery", &request.delivery_id)
                    .header("x-hub-signature-256", &request.signature)
                    .body(request.body.clone())
                    .send()
                    .await
                    .expect("the request is answered");
                let status = response.status();
                let _ = response.bytes().await;
                latency_us.saturating_record(sent.elapsed().as_micros() as u64);
                if status == StatusCode::ACCEPTED {
                    accepted += 1;
                } else {
                    eprintln!("unexpected answer {status}");
                }
            }
            (accepted, latency_us)
        }));
    }
    let mut pass = Pass {
        elapsed: Duration::ZERO,
        accepted: 0,
        latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).unwrap(),
    };
    for task in tasks {
        let (accepted, latency_us) = task.await.unwrap();
        pass.accepted += accepted;
        pass.latency_us.add(latency_us).unwrap();
    }
    pass.elapsed = started.elapsed();
    pass
}

/// Serves `router` on a loopback port; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

/// Records on the topic: every 202 must be there.
fn records_on_topic(brokers: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    (0..PARTITIONS)
        .map(|partition| {
            consumer
                .fetch_watermarks(names::TICKET_EVENTS, partition, Duration::from_secs(10))
                .unwrap()
                .1
        })
        .sum()
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let webhooks = env_or("BENCH_WEBHOOKS", 5000);
    let clients = env_or("BENCH_CLIENTS", 32);
    println!(
        "ingest: {webhooks} signed GitHub webhooks from {clients} concurrent clients, loopback"
    );

    // `BENCH_EMBEDDED=durable`: the broker `chatgptd up` embeds (tansu, SQLite), where a
    // 202 waits for a committed SQLite transaction; else the in-memory mock cluster.
    let dir = tempfile::tempdir().unwrap();
    let durable = std::env::var("BENCH_EMBEDDED").as_deref() == Ok("durable");
    let (_mock, _durable, brokers) = if durable {
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let broker = Broker::start(&dir.path().join("broker"), listen, Members::Forget)
            .await
            .unwrap();
        let topics = chatgptd_types::topics::TopicsFile::parse(
            &format!(
                "topics:\n  - name: {}\n    partitions: {PARTITIONS}\n    \
                 replication_factor: 1\n    retention: 7d\n    cleanup_policy: delete\n    \
                 key: k\n    value_schema: chatgptd.TicketEvent\n",
                names::TICKET_EVENTS
            ),
            "bench topics",
        )
        .unwrap();
        create_topics(broker.bootstrap_servers(), &topics)
            .await
            .unwrap();
        let brokers = broker.bootstrap_servers().to_string();
        (None, Some(broker), brokers)
    } else {
        let kafka = MockKafka::start();
        kafka.create_topic(names::TICKET_EVENTS, PARTITIONS);
        let brokers = kafka.brokers();
        (Some(kafka), None, brokers)
    };
    println!(
        "broker: {}",
        if durable {
            "tansu, SQLite (durable)"
        } else {
            "mock cluster (memory)"
        }
    );
    let mut kafka_options = chatgptd_testkit::kafka::test_kafka_options(&brokers);
    kafka_options.properties.insert(
        "fetch.wait.max.ms".into(),
        chatgptd_runtime::embedded::FETCH_WAIT_MS.into(),
    );
    let memory = SqliteMemory::open(&dir.path().join("memory.db"), "bench")
        .await
        .unwrap();
    let context = WorkerContext::new(&kafka_options, &Health::default(), &Secrets::env()).unwrap();
    context
        .producer
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    let mut options = IngestOptions::default();
    options.github.requests_per_second = 0;
    // The fixture's repository: the gateway accepts only listed targets.
    options.github.repositories = vec!["Codertocat/Hello-World".into()];
    options.github.secret_env = "GITHUB_WEBHOOK_SECRET".into();
    let secrets = Secrets::from_map([("GITHUB_WEBHOOK_SECRET", SECRET)]);
    let ingest = Ingest::new(options, &context, Arc::new(memory), &secrets).unwrap();
    let gateway_url = format!("{}/webhooks/github", serve(ingest.router()).await);
    let baseline_router = Router::new().route(
        "/webhooks/github",
        post(|_body: Bytes| async { StatusCode::ACCEPTED }),
    );
    let baseline_url = format!("{}/webhooks/github", serve(baseline_router).await);

    let template = github_payload();
    let warmup = Arc::new(requests(&template, "warmup", WARMUP));
    let measured = Arc::new(requests(&template, "bench", webhooks));

    // Connections, topic metadata and SQLite pages warm up outside the measurement.
    run(&baseline_url, warmup.clone(), clients).await;
    let baseline = run(&baseline_url, measured.clone(), clients).await;
    run(&gateway_url, warmup.clone(), clients).await;
    let gateway = run(&gateway_url, measured.clone(), clients).await;

    let brokers = brokers.clone();
    let on_topic = tokio::task::spawn_blocking(move || records_on_topic(&brokers))
        .await
        .unwrap();
    assert_eq!(
        on_topic,
        (WARMUP + gateway.accepted) as i64,
        "every 202 is on the topic"
    );

    baseline.print("baseline (axum handler, 202, no produce)");
    gateway.print("gateway (verify, dedupe, produce, ack)");
    println!(
        "ratio gateway/baseline: {:.3} of the throughput, p99 x{:.1}",
        gateway.per_second() / baseline.per_second(),
        gateway.latency_us.value_at_quantile(0.99) as f64
            / baseline.latency_us.value_at_quantile(0.99).max(1) as f64,
    );
}
