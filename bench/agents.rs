//! Agents and workflows with an instant model. `cargo bench --bench agents`.
//!
//! 1. Agent message round trip, as an API caller sees it: `POST /agents/{id}/messages`
//!    waiting for the answer, the message produced to Kafka, the agent worker answering
//!    through the model, the answer read from the inbox in memory. Baseline in the same run:
//!    the same model call made directly. Target: p50 below 100 ms.
//! 2. Workflow runs: the research workflow (5 steps, a fan-out of 3 and a fan-in) started
//!    `BENCH_RUNS` times at once (default 200) with `POST /workflows/research/runs`: runs
//!    completed per second, and the share done within the deadline.
//!
//! The real node (`chatgptd_node`, as `chatgptd up` runs it: its embedded broker, SQLite
//! memory) with the agents and workflows roles, and a fake OpenAI-compatible server
//! answering at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatgptd_fleet::BrainContext;
use chatgptd_model::ProviderKind;
use chatgptd_node::{Config, KafkaMode, Role, Stack};
use chatgptd_testkit::fake_openai::FakeOpenAi;
use chatgptd_types::Secrets;
use chatgptd_worker_workflows::{RunStatus, RunStore};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

/// POSTs `body` to `url`; the status and the JSON answer.
async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let response = client.post(url).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let messages: usize = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);

    let data = tempfile::tempdir().unwrap();
    let fake = FakeOpenAi::start().await;
    let mut config = Config {
        data_dir: data.path().to_path_buf(),
        ..Config::default()
    };
    config
        .kafka
        .properties
        .insert("linger.ms".into(), "1".into());
    // The node gives the embedded broker's clients embedded::FETCH_WAIT_MS, as `chatgptd up`
    // does, unless this sets another.
    if let Ok(fetch_wait) = std::env::var("BENCH_FETCH_WAIT_MS") {
        config
            .kafka
            .properties
            .insert("fetch.wait.max.ms".into(), fetch_wait);
    }
    // Quotas far above what the run needs: this measures the pipeline, not the limiter
    // (whose pacing bench/model.rs measures).
    config.model.provider = ProviderKind::OpenAi;
    config.model.base_url = fake.base_url();
    config.model.cache_ttl = Duration::ZERO;
    config.model.default_limits.requests_per_minute = 1_000_000;
    config.model.default_limits.tokens_per_minute = 1_000_000_000;
    config.model.default_limits.max_concurrency = 256;
    config.workflows.triggers = false;
    // `BENCH_EMBEDDED=memory`: the mock cluster instead of `up`'s durable broker, to compare.
    if std::env::var("BENCH_EMBEDDED").as_deref() == Ok("memory") {
        config.embedded.storage = chatgptd_node::config::EmbeddedStorage::Memory;
    }
    let secrets = [(config.model.api_key_env.clone(), "sk-bench".to_string())];
    let stack = Stack::start(
        config,
        Secrets::from_map(secrets),
        KafkaMode::EmbeddedUnlessConfigured,
    )
    .await
    .unwrap();
    let stack = Arc::new(stack);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener_address = listener.local_addr().unwrap();
    let url = format!("http://{listener_address}");
    let shutdown = CancellationToken::new();
    let node = tokio::spawn({
        let (stack, shutdown) = (stack.clone(), shutdown.clone());
        async move {
            let roles = [Role::Agents, Role::Workflows];
            chatgptd_node::run(&stack, &roles, listener, shutdown).await
        }
    });
    let address = listener_address;
    let tokens = chatgptd_node::auth::tokens(&stack.config, &stack.secrets, address).unwrap();
    let token = chatgptd_node::auth::read_token_file(tokens.generated().unwrap()).unwrap();
    let http = chatgptd_testkit::http_client_with_token(&token);
    let ask = |body: String| {
        let request = json!({"body": body, "from": "bench", "timeout_ms": 30_000});
        post(&http, format!("{url}/agents/wanderweave/messages"), request)
    };

    tokio::time::sleep(Duration::from_millis(500)).await;
    if node.is_finished() {
        panic!("the node stopped: {:?}", node.await);
    }
    // Warm-up: the consumer joins its group (the embedded broker waits 3 s) and answers once.
    let (status, answer) = ask("warm up".into()).await;
    assert_eq!(status, 200, "the warm-up is answered: {answer}");

    println!("# 1. agent message round trip, {messages} messages one after another");
    let brain = stack.brain().await.unwrap();
    let (registry, _) = stack.definitions().unwrap();
    let agent = registry.get("wanderweave").unwrap();
    let mut direct = Histogram::<u64>::new(3).unwrap();
    for i in 0..messages {
        let request = brain.request(
            agent,
            BrainContext::default(),
            "bench",
            &format!("Question {i}: a weekend in Lisbon?"),
        );
        let started = Instant::now();
        brain.answer(&request).await.unwrap();
        direct.record(started.elapsed().as_micros() as u64).unwrap();
    }
    let mut round_trip = Histogram::<u64>::new(3).unwrap();
    for i in 0..messages {
        let started = Instant::now();
        let (status, answer) = ask(format!("Question {i}: a weekend in Lisbon?")).await;
        assert_eq!(status, 200, "message {i} unanswered: {answer}");
        assert_eq!(answer["answers"].as_array().map(Vec::len), Some(1));
        round_trip
            .record(started.elapsed().as_micros() as u64)
            .unwrap();
    }
    println!(
        "direct model call (baseline):       p50 {:>7.2} ms   p99 {:>7.2} ms",
        ms(&direct, 0.5),
        ms(&direct, 0.99)
    );
    println!(
        "through HTTP, Kafka, worker, inbox: p50 {:>7.2} ms   p99 {:>7.2} ms   (target p50 < 100 ms)",
        ms(&round_trip, 0.5),
        ms(&round_trip, 0.99)
    );

    println!(
        "\n# 2. {runs} research runs started at once (5 steps each: a fan-out of 3, a fan-in)"
    );
    // Runs are watched in the memory they are recorded in, not through the API: the
    // watching must not slow what it measures.
    let store = RunStore::new(stack.memory().await.unwrap(), Duration::from_secs(3600));
    let started = Instant::now();
    let mut ids = Vec::with_capacity(runs);
    for i in 0..runs {
        let input = json!({"question": format!("Question {i}?")});
        let url = format!("{url}/workflows/research/runs");
        let (status, body) = post(&http, url, json!({ "input": input })).await;
        assert_eq!(status, 202, "run {i} started: {body}");
        ids.push(body["run_id"].as_str().unwrap().to_string());
    }
    let deadline = Duration::from_secs(120);
    let mut done = 0;
    let mut last_done_at = started.elapsed();
    while started.elapsed() < deadline {
        done = 0;
        for id in &ids {
            if let Ok(Some(run)) = store.run(id).await
                && run.status == RunStatus::Succeeded
            {
                done += 1;
            }
        }
        if done == runs {
            last_done_at = started.elapsed();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        last_done_at = started.elapsed();
    }
    let rate = done as f64 / last_done_at.as_secs_f64();
    println!(
        "completed {done}/{runs} in {:.1} s: {rate:.1} runs/s, {:.1} steps/s",
        last_done_at.as_secs_f64(),
        rate * 5.0
    );

    shutdown.cancel();
    node.await.unwrap().unwrap();
    println!();
    println!(
        "ratio round trip p50 / direct call p50:  {:>7.2}",
        ms(&round_trip, 0.5) / ms(&direct, 0.5)
    );
    println!(
        "share of runs completed:                 {:>7.3}",
        done as f64 / runs as f64
    );
}
