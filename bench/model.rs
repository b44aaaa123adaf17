//! The model client under rate limits, against the fake OpenAI-compatible server.
//! `cargo bench --bench model`.
//!
//! 1. One client, many keys: the fake answers in 200 ms and allows 600 requests a minute
//!    (counted as 100 per 10 s window, so a run covers several windows). Achieved calls/min
//!    against the limit (goal: at least 95%), and the most requests any sliding window saw
//!    (must never exceed the limit).
//!    The same through a worker: the consumer runtime over one partition of the embedded
//!    broker, records with distinct keys, each calling the model.
//! 2. Three worker processes (this binary re-executed) sharing the limiter in a real
//!    redis-server, against the same limit: their combined rate.
//! 3. Overhead per call: sequential calls through the client (limits far away) against bare
//!    reqwest calls to the same instant fake server.
//!
//! Figures are printed, each scenario's ratio last. `BENCH_SECONDS` sets the length of
//! scenarios 1 and 2 (default 30); `BENCH_CALLS` the calls of scenario 3 (default 2000).

use std::future::Future;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chatgptd_runtime::embedded::EmbeddedKafka;
use chatgptd_runtime::{
    ConsumerOptions, ConsumerRuntime, Health, Incoming, KafkaOptions, OutputRecord, ProcessError,
    Processor, WorkerContext,
};
use chatgptd_types::Secrets;
use chatgptd_types::avro::Codec;
use chatgptd_types::records::WorkflowStep;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use chatgptd_model::{
    ChatMessage, ChatRequest, LimitOptions, ModelClient, ModelOptions, ProviderKind,
};
use chatgptd_testkit::fake_openai::{FakeOpenAi, FakeOptions, LoggedRequest, max_in_any_window};
use chatgptd_testkit::redis::RedisServer;

/// The provider's window in the scaled scenarios, and its limit: 600 a minute.
const WINDOW: Duration = Duration::from_secs(10);
const LIMIT_PER_WINDOW: u32 = 100;
const LIMIT_PER_MINUTE: f64 = 600.0;

/// The fake model's latency in scenarios 1 and 2.
const LATENCY: Duration = Duration::from_millis(200);

/// Concurrent keys of one worker.
const KEYS: usize = 64;

/// Set in the environment of a re-executed child: run as one of scenario 2's workers.
const CHILD_ENV: &str = "CHATGPTD_BENCH_MODEL_CHILD";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if std::env::var_os(CHILD_ENV).is_some() {
        runtime.block_on(child());
        return;
    }
    let seconds = env_number("BENCH_SECONDS", 30);
    let calls = env_number("BENCH_CALLS", 2000);
    runtime.block_on(async {
        one_client(Duration::from_secs(seconds)).await;
        one_worker(Duration::from_secs(seconds)).await;
        three_processes(Duration::from_secs(seconds)).await;
        overhead(calls as usize).await;
    });
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The client options of the rate-limited scenarios.
fn limited_options(base_url: String, redis_url: String) -> ModelOptions {
    ModelOptions {
        provider: ProviderKind::OpenAi,
        base_url,
        api_key_env: String::new(),
        model: "gpt-bench".into(),
        limit_window: WINDOW,
        shared_limits_redis_url: redis_url,
        default_limits: LimitOptions {
            requests_per_minute: LIMIT_PER_WINDOW,
            tokens_per_minute: 0,
            max_concurrency: KEYS as u32,
            burst_fraction: 0.02,
        },
        cache_ttl: Duration::ZERO,
        default_max_completion_tokens: 64,
        ..ModelOptions::default()
    }
}

/// A fake that answers in `LATENCY` and enforces the limit, as a provider would.
async fn limited_fake() -> FakeOpenAi {
    FakeOpenAi::start_with(FakeOptions {
        requests_per_window: Some(LIMIT_PER_WINDOW),
        window: WINDOW,
        latency: LATENCY,
        ..FakeOptions::default()
    })
    .await
}

/// `keys` concurrent loops of calls until `run` is over; successful calls.
async fn drive(client: &ModelClient, keys: usize, run: Duration) -> usize {
    let deadline = Instant::now() + run;
    let tasks: Vec<_> = (0..keys)
        .map(|key| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut succeeded = 0;
                let mut call = 0;
                while Instant::now() < deadline {
                    call += 1;
                    let text = format!("ticket {key}: call {call}");
                    let mut request = ChatRequest::new("bench", vec![ChatMessage::user(text)]);
                    request.cache = false;
                    // A call still queued on the limiter at the deadline is abandoned.
                    let deadline = tokio::time::Instant::from_std(deadline);
                    let call = tokio::time::timeout_at(deadline, client.chat(&request));
                    if matches!(call.await, Ok(Ok(_))) {
                        succeeded += 1;
                    }
                }
                succeeded
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap_or(0);
    }
    total
}

/// Requests the fake counted within `run` of the first, per minute; the most any sliding
/// window saw; and how many it refused.
fn rates(log: &[LoggedRequest], run: Duration) -> (f64, usize, usize) {
    let start = log.first().map(|r| r.at);
    let in_run = log
        .iter()
        .filter(|r| r.status == 200 && start.is_some_and(|s| r.at < s + run))
        .count();
    let per_minute = in_run as f64 * 60.0 / run.as_secs_f64();
    let (max_window, _) = max_in_any_window(log, WINDOW, |_| true);
    let refused = log.iter().filter(|r| r.status == 429).count();
    (per_minute, max_window, refused)
}

async fn one_client(run: Duration) {
    let fake = limited_fake().await;
    let client = ModelClient::new(
        &limited_options(fake.base_url(), String::new()),
        None,
        &Secrets::env(),
    )
    .await
    .expect("client");
    drive(&client, KEYS, run).await;
    let (per_minute, max_window, refused) = rates(&fake.requests(), run);
    println!(
        "1. one client, {KEYS} keys, 200 ms model, {LIMIT_PER_MINUTE} requests/min over {run:?}"
    );
    println!(
        "   limit:            {LIMIT_PER_MINUTE:.0} calls/min ({LIMIT_PER_WINDOW} per {WINDOW:?})"
    );
    println!("   achieved:         {per_minute:.1} calls/min");
    println!("   max in a window:  {max_window} (limit {LIMIT_PER_WINDOW}), 429s: {refused}");
    println!(
        "   ratio:            {:.3} of the limit",
        per_minute / LIMIT_PER_MINUTE
    );
}

/// Calls the model for each record: the step's id as the prompt.
struct ModelCaller {
    client: ModelClient,
}

impl Processor for ModelCaller {
    type Input = WorkflowStep;

    fn process(
        &self,
        record: &Incoming<WorkflowStep>,
    ) -> impl Future<Output = Result<Vec<OutputRecord>, ProcessError>> + Send {
        let mut request = ChatRequest::new(
            "bench",
            vec![ChatMessage::user(format!(
                "ticket {}",
                record.value.step_id
            ))],
        );
        request.cache = false;
        let client = self.client.clone();
        async move {
            client
                .chat(&request)
                .await
                .map_err(|err| ProcessError::retryable("model", err.to_string()))?;
            Ok(Vec::new())
        }
    }
}

async fn one_worker(run: Duration) {
    let fake = limited_fake().await;
    let client = ModelClient::new(
        &limited_options(fake.base_url(), String::new()),
        None,
        &Secrets::env(),
    )
    .await
    .expect("client");
    let cluster = EmbeddedKafka::start(1).expect("embedded broker");
    cluster.create_topic("bench.tickets", 1, 1).expect("topic");
    cluster
        .create_topic("chatgptd.deadletter", 1, 1)
        .expect("topic");
    let brokers = cluster.bootstrap_servers().to_string();
    // More records than the run can call for, each with its own key.
    let records = (LIMIT_PER_MINUTE * run.as_secs_f64() / 60.0) as usize * 2 + KEYS;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let codec = Codec::builtin();
    let sends: Vec<_> = (0..records)
        .map(|i| {
            let step = WorkflowStep {
                run_id: format!("key-{i}"),
                workflow: "bench".into(),
                step_id: format!("step-{i}"),
                kind: "execute".into(),
                agent: None,
                input_json: "{}".into(),
                attempt: 1,
                requested_at_ms: 0,
            };
            let payload = codec.encode(&step).expect("encode");
            let producer = producer.clone();
            async move {
                producer
                    .send(
                        FutureRecord::to("bench.tickets")
                            .key(&step.run_id)
                            .payload(&payload),
                        Duration::from_secs(30),
                    )
                    .await
                    .expect("produce");
            }
        })
        .collect();
    futures::future::join_all(sends).await;

    let mut kafka = KafkaOptions::with_brokers(&brokers);
    kafka.properties.insert(
        "fetch.wait.max.ms".into(),
        chatgptd_runtime::embedded::FETCH_WAIT_MS.into(),
    );
    let context = WorkerContext::new(&kafka, &Health::default(), &Secrets::env()).expect("context");
    let options = ConsumerOptions {
        group_id: "bench-model-worker".into(),
        max_in_flight_per_partition: KEYS,
        ..ConsumerOptions::default()
    };
    let runtime = ConsumerRuntime::new(
        "bench-model",
        &context,
        options,
        vec!["bench.tickets".to_string()],
        ModelCaller { client },
    )
    .expect("runtime");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(runtime.run(shutdown.clone()));
    // Joining the group is not part of the run: it starts with the first call.
    while fake.request_count() == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(run).await;
    shutdown.cancel();
    let _ = running.await;
    let (per_minute, max_window, refused) = rates(&fake.requests(), run);
    println!(
        "1b. one worker: the consumer runtime, 1 partition, {records} records with distinct keys, \
         in-flight bound {KEYS}, over {run:?}"
    );
    println!("   achieved:         {per_minute:.1} calls/min");
    println!("   max in a window:  {max_window} (limit {LIMIT_PER_WINDOW}), 429s: {refused}");
    println!(
        "   ratio:            {:.3} of the limit",
        per_minute / LIMIT_PER_MINUTE
    );
}

async fn three_processes(run: Duration) {
    let redis = RedisServer::start().await;
    let fake = limited_fake().await;
    let exe = std::env::current_exe().expect("bench executable");
    let children: Vec<_> = (0..3)
        .map(|_| {
            Command::new(&exe)
                .env(CHILD_ENV, "1")
                .env("BENCH_BASE_URL", fake.base_url())
                .env("BENCH_REDIS_URL", redis.url())
                .env("BENCH_RUN_MS", run.as_millis().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn a worker process")
        })
        .collect();
    let mut per_child = Vec::new();
    for child in children {
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .expect("join")
            .expect("worker process");
        let count: usize = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        per_child.push(count);
    }
    let (per_minute, max_window, refused) = rates(&fake.requests(), run);
    println!("2. three processes sharing the redis limiter, {KEYS} keys each, over {run:?}");
    println!(
        "   limit:            {LIMIT_PER_MINUTE:.0} calls/min ({LIMIT_PER_WINDOW} per {WINDOW:?})"
    );
    println!("   calls by process: {per_child:?}");
    println!("   combined:         {per_minute:.1} calls/min");
    println!("   max in a window:  {max_window} (limit {LIMIT_PER_WINDOW}), 429s: {refused}");
    println!(
        "   ratio:            {:.3} of the limit",
        per_minute / LIMIT_PER_MINUTE
    );
}

/// One of scenario 2's worker processes: prints its successful calls.
async fn child() {
    let base_url = std::env::var("BENCH_BASE_URL").expect("BENCH_BASE_URL");
    let redis_url = std::env::var("BENCH_REDIS_URL").expect("BENCH_REDIS_URL");
    let run = Duration::from_millis(env_number("BENCH_RUN_MS", 30_000));
    let client = ModelClient::new(&limited_options(base_url, redis_url), None, &Secrets::env())
        .await
        .expect("client");
    println!("{}", drive(&client, KEYS, run).await);
}

async fn overhead(calls: usize) {
    let fake = FakeOpenAi::start_with(FakeOptions {
        log_requests: false,
        ..FakeOptions::default()
    })
    .await;
    let options = ModelOptions {
        default_limits: LimitOptions {
            requests_per_minute: 1_000_000_000,
            tokens_per_minute: u32::MAX,
            max_concurrency: 1024,
            burst_fraction: 0.02,
        },
        limit_window: Duration::from_secs(60),
        ..limited_options(fake.base_url(), String::new())
    };
    let client = ModelClient::new(&options, None, &Secrets::env())
        .await
        .expect("client");
    let request = |i: usize| {
        let mut request = ChatRequest::new("bench", vec![ChatMessage::user(format!("ticket {i}"))]);
        request.cache = false;
        request
    };

    // Bare reqwest: a body serialized once, the reply read as bytes: the HTTP round trip
    // alone, the floor under any client.
    chatgptd_model::install_crypto_provider();
    let http = reqwest::Client::new();
    let url = format!("{}/chat/completions", fake.base_url());
    let body = serde_json::to_vec(&serde_json::json!({
        "model": "gpt-bench",
        "messages": [{"role": "user", "content": "ticket 0"}],
        "max_completion_tokens": 64,
    }))
    .expect("bare body");
    let bare_call = || {
        let sent = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send();
        async move {
            let reply = sent.await.expect("bare call");
            assert!(reply.status().is_success());
            reply.bytes().await.expect("bare reply");
        }
    };

    for i in 0..100 {
        bare_call().await;
        client.chat(&request(i)).await.expect("warm-up call");
    }
    // Alternating batches, so drift (other load, CPU frequency) hits both alike.
    let rounds = 4;
    let per_round = (calls / rounds).max(1);
    let (mut bare_total, mut client_total) = (Duration::ZERO, Duration::ZERO);
    for round in 0..rounds {
        let started = Instant::now();
        for _ in 0..per_round {
            bare_call().await;
        }
        bare_total += started.elapsed();
        let started = Instant::now();
        for i in 0..per_round {
            client
                .chat(&request(round * per_round + i))
                .await
                .expect("client call");
        }
        client_total += started.elapsed();
    }
    let calls = rounds * per_round;
    let bare = bare_total / calls as u32;
    let through_client = client_total / calls as u32;

    println!("3. overhead per call, {calls} sequential calls to an instant fake");
    println!("   bare reqwest:     {bare:?}");
    println!("   model client:     {through_client:?} (serde, limiter, retries, metrics)");
    println!(
        "   overhead:         {:?}",
        through_client.saturating_sub(bare)
    );
    println!(
        "   ratio:            {:.2}x bare reqwest",
        through_client.as_secs_f64() / bare.as_secs_f64()
    );
}
