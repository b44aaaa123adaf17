//! The ticket pipeline on loopback. `cargo bench --bench pipeline`.
//!
//! The real node (`chatgptd_node::Stack` and `run`, as `chatgptd up` starts them) running the
//! webhook gateway, the enrichment worker and the write-back worker on a mock Kafka cluster
//! with the topics of `topics.yaml`, one SQLite memory (dedupe, model cache, write-back keys),
//! an instant fake OpenAI-compatible model and the fake trackers in its configuration. Every
//! webhook is a distinct signed GitHub `issues.opened` (the octokit example with its own issue
//! number), so keys spread over the partitions.
//!
//! - (a) Acceptance: K concurrent clients post N webhooks; webhooks/s answered 202 (each
//!   only after the broker acknowledged the TicketEvent with acks=all), p50 and p99 of the
//!   202. The consumers are not running in this pass: the figure is the gateway's.
//! - (b) End to end: webhooks sent at a steady, moderate rate (so it measures latency, not
//!   queueing); per ticket, from sending the webhook to the fake GitHub holding the
//!   write-back's comment (polled every 200 µs); p50 and p99. The consumers fetch with the
//!   `fetch.wait.max.ms` that `chatgptd up` sets for its embedded broker (25 ms): the mock
//!   broker holds an empty fetch for the whole wait instead of answering when a record
//!   arrives (as Kafka does), so with librdkafka's 500 ms default each hop costs up to half a
//!   second of the mock's making. That pass is printed too, for comparison.
//! - Baseline, same run: the same work inline without Kafka, one ticket after another: parse
//!   the payload, one model call (the node's client settings and cache, the same prompt and
//!   schema), one comment POST to the fake GitHub; p50 and p99.
//! - Last, the ratio of the pipeline's p50 to the inline p50.
//!
//! `BENCH_WEBHOOKS` (default 2000) scales (a); (b) and the baseline take a tenth of it (at
//! least 50). `BENCH_CLIENTS` (default 16), `BENCH_RATE` (webhooks/s in (b), default 20),
//! `BENCH_FETCH_WAIT_MS` (default: what `chatgptd up` sets, `embedded::FETCH_WAIT_MS`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue};
use chatgptd_model::{
    ChatMessage, ChatRequest, LimitOptions, ModelClient, ModelOptions, ProviderKind,
};
use chatgptd_node::{Config, KafkaMode, Role, Stack};
use chatgptd_runtime::ConsumerOptions;
use chatgptd_testkit::fake_openai::{FakeOpenAi, FakeOptions};
use chatgptd_testkit::fake_trackers::{FakeTrackers, GITHUB_TOKEN};
use chatgptd_testkit::kafka::MockKafka;
use chatgptd_types::Secrets;
use chatgptd_types::topics::TopicsFile;
use chatgptd_worker_enrich::EnrichOptions;
use chatgptd_worker_ingest::Source;
use chatgptd_worker_ingest::parse::{self, Parsed};
use chatgptd_worker_ingest::signature::sign_hex;
use chatgptd_worker_ingest::source::route;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "bench-secret";
const OWNER: &str = "Codertocat";
const REPO: &str = "Hello-World";
/// Requests before each measured pass: connections, metadata, SQLite pages.
const WARMUP_WEBHOOKS: usize = 200;
/// Tickets through the whole pipeline before (b): consumer groups joined, clients warm.
const WARMUP_TICKETS: usize = 10;
/// How often (b) looks at the fake tracker for comments.
const POLL: Duration = Duration::from_micros(200);
/// The enrichment prompt, so the inline baseline sends what the worker sends.
const PROMPT: &str = include_str!("../prompts/enrich_ticket.v1.md");

/// One prepared webhook.
struct Webhook {
    number: u64,
    delivery_id: String,
    signature: String,
    body: Bytes,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

/// The octokit `issues.opened` example, from the shared fixtures or the ingest crate's copy.
fn github_payload() -> Value {
    let bytes = chatgptd_testkit::webhooks::fixture("github/issues.opened.octokit-webhooks.json");
    serde_json::from_slice(&bytes).expect("the fixture is JSON")
}

/// Webhooks about issues `numbers`, signed.
fn webhooks(template: &Value, numbers: std::ops::Range<u64>) -> Vec<Webhook> {
    numbers
        .map(|number| {
            let mut payload = template.clone();
            let issue = &mut payload["issue"];
            issue["number"] = number.into();
            issue["id"] = (444_500_000 + number).into();
            issue["node_id"] = format!("bench-issue-{number}").into();
            issue["title"] = format!("Spelling error in the README file ({number})").into();
            issue["html_url"] = format!("https://github.com/{OWNER}/{REPO}/issues/{number}").into();
            let body = serde_json::to_vec(&payload).expect("serialises");
            Webhook {
                number,
                delivery_id: format!("bench-{number}-{}", uuid::Uuid::new_v4()),
                signature: sign_hex(SECRET.as_bytes(), &body),
                body: Bytes::from(body),
            }
        })
        .collect()
}

/// Posts one webhook; its status.
async fn post(client: &reqwest::Client, url: &str, webhook: &Webhook) -> u16 {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-github-event", "issues")
        .header("x-github-delivery", &webhook.delivery_id)
        .header("x-hub-signature-256", &webhook.signature)
        .body(webhook.body.clone())
        .send()
        .await
        .expect("the gateway answers");
    let status = response.status().as_u16();
    let _ = response.bytes().await;
    status
}

/// librdkafka's `fetch.wait.max.ms` default.
const LIBRDKAFKA_FETCH_WAIT_MS: usize = 500;

/// The enrichment and write-back workers' consumer settings: their group, and
/// `fetch.wait.max.ms` when given, else librdkafka's default, set explicitly because the
/// test cluster's options carry the embedded broker's shorter wait.
fn consumer_options(group: &str, fetch_wait_ms: Option<usize>) -> ConsumerOptions {
    let wait = fetch_wait_ms.unwrap_or(LIBRDKAFKA_FETCH_WAIT_MS);
    let properties = BTreeMap::from([("fetch.wait.max.ms".to_string(), wait.to_string())]);
    ConsumerOptions {
        group_id: group.to_string(),
        properties,
        ..ConsumerOptions::default()
    }
}

/// The node's configuration (its Kafka aside): the fake model with no client-side limits and
/// replies cached in memory as in production, the fixture's repository the only target of
/// the gateway and the write-back, the fake GitHub, the consumers' `fetch_wait_ms`.
fn config(
    data_dir: &Path,
    model: &FakeOpenAi,
    trackers: &FakeTrackers,
    fetch_wait_ms: Option<usize>,
) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    config.model = ModelOptions {
        provider: ProviderKind::OpenAi,
        base_url: model.base_url(),
        api_key_env: String::new(),
        default_limits: LimitOptions {
            requests_per_minute: 0,
            tokens_per_minute: 0,
            max_concurrency: 0,
            ..LimitOptions::default()
        },
        ..ModelOptions::default()
    };
    let repository = format!("{OWNER}/{REPO}");
    let github = &mut config.ingest.github;
    github.requests_per_second = 0;
    github.repositories = vec![repository.clone()];
    github.secret_env = "GITHUB_WEBHOOK_SECRET".into();
    config.enrich.consumer = consumer_options("bench-enrich", fetch_wait_ms);
    config.writeback.consumer = consumer_options("bench-writeback", fetch_wait_ms);
    let github = &mut config.writeback.github;
    github.enabled = true;
    github.api_url = trackers.github_url();
    github.requests_per_second = 0;
    github.repositories = vec![repository];
    config
}

/// The webhook secret and the GitHub token, under the names `config` gives them.
fn secrets(config: &Config) -> Secrets {
    Secrets::from_map([
        (config.ingest.github.secret_env.as_str(), SECRET),
        (config.writeback.github.token_env.as_str(), GITHUB_TOKEN),
    ])
}

/// What runs: the gateway alone, or the whole pipeline.
#[derive(Debug, Clone, Copy)]
enum Mode {
    GatewayOnly,
    /// With the consumers, fetching with this `fetch.wait.max.ms` (`None`: the default).
    Pipeline {
        fetch_wait_ms: Option<usize>,
    },
}

/// The real node, as `chatgptd up` and `chatgptd worker` start it: the gateway alone
/// (`[Role::Ingest]`), or in [`Mode::Pipeline`] with the enrichment and write-back workers.
struct Pipeline {
    gateway_url: String,
    shutdown: CancellationToken,
    running: JoinHandle<anyhow::Result<()>>,
    _kafka: MockKafka,
    _dir: tempfile::TempDir,
}

impl Pipeline {
    async fn start(model: &FakeOpenAi, trackers: &FakeTrackers, mode: Mode) -> Self {
        let kafka = MockKafka::start();
        for topic in TopicsFile::builtin().topics {
            kafka.create_topic(&topic.name, topic.partitions);
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let (roles, fetch_wait_ms) = match mode {
            Mode::GatewayOnly => (vec![Role::Ingest], None),
            Mode::Pipeline { fetch_wait_ms } => (
                vec![Role::Ingest, Role::Enrich, Role::Writeback],
                fetch_wait_ms,
            ),
        };
        let mut config = config(dir.path(), model, trackers, fetch_wait_ms);
        config.kafka = kafka.options();
        let secrets = secrets(&config);
        let stack = Stack::start(config, secrets, KafkaMode::Configured)
            .await
            .expect("the node's stack starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let gateway_url = format!("http://{address}{}", route(Source::GitHub));
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let running =
            tokio::spawn(async move { chatgptd_node::run(&stack, &roles, listener, token).await });
        Pipeline {
            gateway_url,
            shutdown,
            running,
            _kafka: kafka,
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.running
            .await
            .expect("the node's task")
            .expect("the node runs until shutdown");
    }
}

/// (a): every webhook from `clients` concurrent clients; the 202s timed.
async fn acceptance(
    url: &str,
    webhooks: Arc<Vec<Webhook>>,
    clients: usize,
) -> (f64, Histogram<u64>) {
    let client = chatgptd_testkit::http_client();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, next, webhooks, url) = (
            client.clone(),
            next.clone(),
            webhooks.clone(),
            url.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latency_us = histogram();
            while let Some(webhook) = webhooks.get(next.fetch_add(1, Ordering::Relaxed)) {
                let sent = Instant::now();
                let status = post(&client, &url, webhook).await;
                latency_us.saturating_record(sent.elapsed().as_micros() as u64);
                assert_eq!(status, 202, "every webhook is accepted");
            }
            latency_us
        }));
    }
    let mut latency_us = histogram();
    for task in tasks {
        latency_us
            .add(task.await.expect("client"))
            .expect("same bounds");
    }
    let per_second = webhooks.len() as f64 / started.elapsed().as_secs_f64();
    (per_second, latency_us)
}

/// (b): one webhook every `interval`; per ticket, send to comment at the tracker.
async fn end_to_end(
    url: &str,
    trackers: &Arc<FakeTrackers>,
    webhooks: Vec<Webhook>,
    interval: Duration,
) -> Histogram<u64> {
    for webhook in &webhooks {
        trackers.add_github_issue(OWNER, REPO, webhook.number);
    }
    let total = webhooks.len();
    // Tickets sent and not yet commented on: issue number and when its webhook was sent.
    let outstanding: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let poller = {
        let (outstanding, trackers) = (outstanding.clone(), trackers.clone());
        std::thread::spawn(move || {
            let mut latency_us = histogram();
            let deadline = Instant::now() + Duration::from_secs(120);
            while (latency_us.len() as usize) < total {
                assert!(Instant::now() < deadline, "comments missing after 120 s");
                let mut waiting = outstanding.lock().expect("not poisoned");
                waiting.retain(|(number, sent)| {
                    if trackers.github_comments(OWNER, REPO, *number).is_empty() {
                        return true;
                    }
                    latency_us.saturating_record(sent.elapsed().as_micros() as u64);
                    false
                });
                drop(waiting);
                std::thread::sleep(POLL);
            }
            latency_us
        })
    };

    let client = chatgptd_testkit::http_client();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sends = Vec::new();
    for webhook in webhooks {
        ticks.tick().await;
        let (client, url, outstanding) = (client.clone(), url.to_string(), outstanding.clone());
        sends.push(tokio::spawn(async move {
            outstanding
                .lock()
                .expect("not poisoned")
                .push((webhook.number, Instant::now()));
            post(&client, &url, &webhook).await
        }));
    }
    for send in sends {
        assert_eq!(
            send.await.expect("sender"),
            202,
            "every webhook is accepted"
        );
    }
    tokio::task::spawn_blocking(move || poller.join().expect("poller"))
        .await
        .expect("poller thread")
}

/// The baseline: parse, one model call, one comment POST, inline, one ticket after another.
async fn inline(
    model: &ModelClient,
    enrich: &EnrichOptions,
    github_url: &str,
    trackers: &FakeTrackers,
    webhooks: &[Webhook],
) -> Histogram<u64> {
    let system_prompt = PROMPT.replace("{{categories}}", &enrich.categories.join(", "));
    let schema = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["category", "suggested_priority", "sentiment", "language", "summary", "suggested_reply", "labels", "confidence"],
        "properties": {
            "category": {"type": "string", "enum": enrich.categories},
            "suggested_priority": {"type": "string", "enum": ["low", "medium", "high", "critical"]},
            "sentiment": {"type": "string", "enum": ["negative", "neutral", "positive"]},
            "language": {"type": "string"},
            "summary": {"type": "string"},
            "suggested_reply": {"type": "string"},
            "labels": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1}
        }
    });
    let client = chatgptd_testkit::http_client();
    let mut latency_us = histogram();
    for webhook in webhooks {
        trackers.add_github_issue(OWNER, REPO, webhook.number);
        let started = Instant::now();

        let mut headers = HeaderMap::new();
        headers.insert(
            "x-github-delivery",
            HeaderValue::from_str(&webhook.delivery_id).expect("header"),
        );
        headers.insert("x-github-event", HeaderValue::from_static("issues"));
        let parsed = parse::parse_body(
            Source::GitHub,
            &headers,
            &webhook.body,
            chatgptd_types::now_ms(),
            "",
        );
        let Ok(Parsed::Ticket(ticket)) = parsed else {
            panic!("the payload is a ticket");
        };
        let event = ticket.event;

        let mut request = ChatRequest::new(
            "enrich_ticket.bench",
            vec![
                ChatMessage::system(system_prompt.clone()),
                ChatMessage::user(format!(
                    "Ticket {} from {} ({})\nTitle: {}\nDescription: {}\n",
                    event.ticket_key,
                    event.source,
                    event.event_type,
                    event.title,
                    event.description
                )),
            ],
        )
        .with_schema("ticket_enrichment", schema.clone());
        request.temperature = Some(enrich.temperature);
        request.max_completion_tokens = Some(enrich.max_completion_tokens);
        let reply = model.chat(&request).await.expect("model reply");
        let answer = reply.json.expect("structured reply");

        let comment = format!(
            "**chatgptd triage**\n\n- **Category:** {}\n- **Suggested priority:** {}\n\n**Summary**\n\n{}",
            answer["category"], answer["suggested_priority"], answer["summary"]
        );
        let (repository, number) = event.ticket_key.rsplit_once('#').expect("owner/repo#n");
        let response = client
            .post(format!(
                "{github_url}/repos/{repository}/issues/{number}/comments"
            ))
            .bearer_auth(GITHUB_TOKEN)
            .json(&json!({ "body": comment }))
            .send()
            .await
            .expect("the tracker answers");
        assert_eq!(response.status().as_u16(), 201, "the comment is created");
        latency_us.saturating_record(started.elapsed().as_micros() as u64);
    }
    latency_us
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

async fn run() {
    let webhook_count = env_or("BENCH_WEBHOOKS", 2000).max(1);
    let clients = env_or("BENCH_CLIENTS", 16).max(1);
    let rate = env_or("BENCH_RATE", 20).max(1);
    // As `chatgptd up` sets it for its embedded broker.
    let up_fetch_wait_ms = chatgptd_runtime::embedded::FETCH_WAIT_MS
        .parse()
        .expect("a number of milliseconds");
    let fetch_wait_ms = env_or("BENCH_FETCH_WAIT_MS", up_fetch_wait_ms);
    let tickets = (webhook_count / 10).max(50);
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let template = github_payload();

    let model = FakeOpenAi::start_with(FakeOptions {
        log_requests: false,
        ..FakeOptions::default()
    })
    .await;
    let trackers = Arc::new(FakeTrackers::start().await);
    println!(
        "pipeline: signed GitHub webhooks -> gateway -> tickets.events -> enrich (instant fake model) \
         -> tickets.enriched -> write-back -> fake GitHub; one process, mock Kafka cluster, SQLite, loopback"
    );

    // (a) The gateway alone: no consumers competing for the two cores.
    let accepting = Pipeline::start(&model, &trackers, Mode::GatewayOnly).await;
    let warmup = Arc::new(webhooks(&template, 1..1 + WARMUP_WEBHOOKS as u64));
    acceptance(&accepting.gateway_url, warmup, clients).await;
    let first = 1 + WARMUP_WEBHOOKS as u64;
    let measured = Arc::new(webhooks(&template, first..first + webhook_count as u64));
    let (per_second, accepted_us) = acceptance(&accepting.gateway_url, measured, clients).await;
    accepting.stop().await;

    // (b) The whole pipeline, fresh: its own cluster, memory and consumer groups; then the
    // same with librdkafka's default fetch wait.
    let mut next = 1_000_000;
    let mut pass = |count: usize| {
        let numbers = next..next + count as u64;
        next += count as u64;
        webhooks(&template, numbers)
    };
    let mut end_to_end_us = Vec::new();
    for fetch_wait_ms in [Some(fetch_wait_ms), None] {
        let pipeline = Pipeline::start(&model, &trackers, Mode::Pipeline { fetch_wait_ms }).await;
        let url = pipeline.gateway_url.clone();
        end_to_end(&url, &trackers, pass(WARMUP_TICKETS), interval).await;
        end_to_end_us.push(end_to_end(&url, &trackers, pass(tickets), interval).await);
        pipeline.stop().await;
    }
    let (end_to_end_us, default_fetch_us) = (&end_to_end_us[0], &end_to_end_us[1]);

    // Baseline: the node's model client settings and SQLite cache, the same tracker, no Kafka.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(dir.path(), &model, &trackers, None);
    let secrets = secrets(&config);
    let memory = chatgptd_memory::open(&config.memory, &config.data_dir, &secrets)
        .await
        .expect("sqlite memory");
    let inline_model = chatgptd_node::stack::model_client(&config, memory, &secrets)
        .await
        .expect("model client");
    let github_url = trackers.github_url();
    let enrich = &config.enrich;
    inline(
        &inline_model,
        enrich,
        &github_url,
        &trackers,
        &pass(WARMUP_TICKETS),
    )
    .await;
    let inline_us = inline(
        &inline_model,
        enrich,
        &github_url,
        &trackers,
        &pass(tickets),
    )
    .await;

    println!(
        "(a) accepted with broker ack, {webhook_count} webhooks from {clients} clients: \
         {per_second:.0} webhooks/s   p50 {:.2} ms   p99 {:.2} ms",
        ms(&accepted_us, 0.50),
        ms(&accepted_us, 0.99),
    );
    println!(
        "(b) end to end, webhook sent -> comment POST at the tracker, {tickets} tickets at \
         {rate}/s (one every {:.0} ms), fetch.wait.max.ms={fetch_wait_ms}: p50 {:.2} ms   p99 {:.2} ms",
        interval.as_secs_f64() * 1000.0,
        ms(end_to_end_us, 0.50),
        ms(end_to_end_us, 0.99),
    );
    println!(
        "    the same with librdkafka's default fetch.wait.max.ms (500 ms, held in full by the \
         mock broker): p50 {:.2} ms   p99 {:.2} ms",
        ms(default_fetch_us, 0.50),
        ms(default_fetch_us, 0.99),
    );
    println!(
        "baseline inline (parse, model call, comment POST; no Kafka), {tickets} tickets one \
         after another: p50 {:.2} ms   p99 {:.2} ms",
        ms(&inline_us, 0.50),
        ms(&inline_us, 0.99),
    );
    println!(
        "ratio pipeline p50 / inline p50: {:.1}",
        ms(end_to_end_us, 0.50) / ms(&inline_us, 0.50).max(0.001)
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
    runtime.shutdown_timeout(Duration::from_secs(5));
}
