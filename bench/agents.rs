//! Agents and workflows with an instant model. `cargo bench --bench agents`.
//!
//! 1. Agent message round trip, as an API caller sees it: the message produced to Kafka, the
//!    agent worker answering through the model, the answer read from the inbox in memory.
//!    Baseline in the same run: the same model call made directly. Target: p50 below 100 ms.
//! 2. Workflow runs: the research workflow (5 steps, a fan-out of 3 and a fan-in) started
//!    `BENCH_RUNS` times at once (default 200): runs completed per second, and the share done
//!    within the deadline.
//!
//! Embedded broker, SQLite memory, a fake OpenAI-compatible server answering at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatgptd_fleet::{AgentsClient, Brain, BrainContext, Inbox, new_request};
use chatgptd_memory::MemoryOptions;
use chatgptd_model::{ModelClient, ModelOptions, ProviderKind};
use chatgptd_registry::{Registry, Workflows};
use chatgptd_runtime::embedded::EmbeddedKafka;
use chatgptd_runtime::{ConsumerOptions, Health, KafkaOptions, Service, WorkerContext};
use chatgptd_search::Retriever;
use chatgptd_testkit::fake_openai::FakeOpenAi;
use chatgptd_types::Secrets;
use chatgptd_types::topics::{TopicsFile, names};
use chatgptd_worker_agents::{AgentsOptions, AgentsService};
use chatgptd_worker_workflows::{
    RunStatus, RunStore, WorkflowsClient, WorkflowsOptions, WorkflowsService,
};
use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
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

    let kafka_cluster = EmbeddedKafka::start(1).unwrap();
    kafka_cluster.create_topics(&TopicsFile::builtin()).unwrap();
    let mut kafka = KafkaOptions::with_brokers(kafka_cluster.bootstrap_servers());
    kafka.properties.insert("linger.ms".into(), "1".into());
    // As `chatgptd up` sets for its embedded broker (see embedded::FETCH_WAIT_MS).
    let fetch_wait = std::env::var("BENCH_FETCH_WAIT_MS")
        .unwrap_or_else(|_| chatgptd_runtime::embedded::FETCH_WAIT_MS.into());
    kafka
        .properties
        .insert("fetch.wait.max.ms".into(), fetch_wait);
    let data = tempfile::tempdir().unwrap();
    let memory = chatgptd_memory::open(&MemoryOptions::default(), data.path(), &Secrets::env())
        .await
        .unwrap();
    let fake = FakeOpenAi::start().await;
    // Quotas far above what the run needs: this measures the pipeline, not the limiter
    // (whose pacing bench/model.rs measures).
    let mut model_options = ModelOptions {
        provider: ProviderKind::OpenAi,
        base_url: fake.base_url(),
        cache_ttl: Duration::ZERO,
        ..ModelOptions::default()
    };
    model_options.default_limits.requests_per_minute = 1_000_000;
    model_options.default_limits.tokens_per_minute = 1_000_000_000;
    model_options.default_limits.max_concurrency = 256;
    let model = ModelClient::new(
        &model_options,
        Some(memory.clone()),
        &Secrets::from_map([("OPENAI_API_KEY", "sk-bench")]),
    )
    .await
    .unwrap();
    let registry = Arc::new(Registry::builtin());
    let workflows = Arc::new(Workflows::builtin(&registry));
    let context = WorkerContext::new(&kafka, &Health::default(), &Secrets::env()).unwrap();
    let brain = Brain::new(model.clone(), std::path::Path::new("")).unwrap();
    let shutdown = CancellationToken::new();

    let agents_options = AgentsOptions {
        consumer: ConsumerOptions {
            group_id: "bench-agents".into(),
            ..ConsumerOptions::default()
        },
        ..AgentsOptions::default()
    };
    let agents = AgentsService::new(
        &agents_options,
        &context,
        registry.clone(),
        brain.clone(),
        memory.clone(),
        Retriever::None,
    )
    .unwrap();
    let agents = tokio::spawn(agents.run(shutdown.clone()));
    let workflow_options = WorkflowsOptions {
        triggers: false,
        ..WorkflowsOptions::default()
    };
    let engine = WorkflowsService::new(
        &workflow_options,
        &context,
        workflows.clone(),
        registry.clone(),
        brain.clone(),
        memory.clone(),
    )
    .unwrap();
    let engine = tokio::spawn(engine.run(shutdown.clone()));

    let client = AgentsClient::new(
        context.producer.clone(),
        Inbox::new(memory.clone(), Duration::from_secs(3600)),
        names::AGENT_MESSAGES,
    );
    // Warm-up: the consumer joins its group (the embedded broker waits 3 s) and answers once.
    let warm = new_request("bench", "wanderweave", "warm up", None, 0);
    client.send(&warm).await.unwrap();
    client
        .wait(&warm.id, 1, Duration::from_secs(60))
        .await
        .unwrap();

    println!("# 1. agent message round trip, {messages} messages one after another");
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
        let message = new_request(
            "bench",
            "wanderweave",
            &format!("Question {i}: a weekend in Lisbon?"),
            None,
            0,
        );
        let started = Instant::now();
        client.send(&message).await.unwrap();
        let answers = client
            .wait(&message.id, 1, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(answers.len(), 1, "message {i} unanswered");
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
        "through Kafka, worker and inbox:    p50 {:>7.2} ms   p99 {:>7.2} ms   (target p50 < 100 ms)",
        ms(&round_trip, 0.5),
        ms(&round_trip, 0.99)
    );

    println!(
        "\n# 2. {runs} research runs started at once (5 steps each: a fan-out of 3, a fan-in)"
    );
    let store = RunStore::new(memory.clone(), Duration::from_secs(3600));
    let runs_client = WorkflowsClient::new(
        context.producer.clone(),
        store.clone(),
        workflows.clone(),
        names::WORKFLOW_STEPS,
    );
    let started = Instant::now();
    let mut ids = Vec::with_capacity(runs);
    for i in 0..runs {
        ids.push(
            runs_client
                .start(
                    "research",
                    &serde_json::json!({"question": format!("Question {i}?")}),
                    "bench",
                )
                .await
                .unwrap(),
        );
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
    let _ = agents.await;
    let _ = engine.await;
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
