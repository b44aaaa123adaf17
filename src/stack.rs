//! One process's composition: the shared parts (Kafka, producer, health) built once, then
//! the workers and the HTTP server run side by side until shutdown.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use std::sync::Arc;

use anyhow::{Context, bail};
use chatgptd_memory::Memory;
use chatgptd_model::ModelClient;
use chatgptd_runtime::embedded::EmbeddedKafka;
use chatgptd_runtime::{Health, KafkaOptions, WorkerContext};
use chatgptd_types::Secrets;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::config::Config;
use crate::discovery;

/// How long to wait for the first broker connection at start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Where Kafka comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaMode {
    /// `chatgptd up`: the embedded broker unless brokers are configured.
    EmbeddedUnlessConfigured,
    /// `chatgptd worker`: configured brokers only.
    Configured,
    /// Tools (`produce`, `tail`, `topics`, `dlq`): configured brokers, else a running
    /// `chatgptd up` found through its data directory.
    ConfiguredOrRunning,
}

/// The parts every worker of a process shares.
pub struct Stack {
    pub config: Config,
    pub context: WorkerContext,
    pub health: Health,
    /// Where every part of the process looks its secrets up (the environment, from the CLI).
    pub secrets: Secrets,
    /// The embedded broker, when this process runs one; dropped last.
    pub embedded: Option<EmbeddedKafka>,
}

/// How often `/readyz` asks the memory backend whether it answers; sooner while it does
/// not, since each ping may land on another pooled connection that has yet to reconnect.
const MEMORY_PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
const MEMORY_PING_INTERVAL_DOWN: std::time::Duration = std::time::Duration::from_millis(500);

/// Opens the memory backend (Redis if configured, else SQLite in the data directory) and
/// reports it on `/readyz`, pinging it every few seconds: a Redis that went away makes the
/// process not ready (its records wait) until it is back. Redis's password comes from
/// `secrets`.
pub async fn open_memory(
    config: &Config,
    health: &Health,
    secrets: &Secrets,
) -> anyhow::Result<Arc<dyn Memory>> {
    let memory = chatgptd_memory::open(&config.memory, &config.data_dir, secrets)
        .await
        .context("opening the memory backend")?;
    let readiness = health.register(format!("memory:{}", memory.backend()));
    readiness.set(true, "open");
    let pinged = Arc::downgrade(&memory);
    tokio::spawn(async move {
        let mut pause = MEMORY_PING_INTERVAL;
        loop {
            tokio::time::sleep(pause).await;
            // Ends with the process's last handle on the backend.
            let Some(memory) = pinged.upgrade() else {
                return;
            };
            pause = match memory.ping().await {
                Ok(()) => {
                    readiness.set(true, "answers");
                    MEMORY_PING_INTERVAL
                }
                Err(err) => {
                    readiness.set(false, &format!("does not answer: {err}"));
                    MEMORY_PING_INTERVAL_DOWN
                }
            };
        }
    });
    Ok(memory)
}

/// The model client: the configured OpenAI-compatible provider, or the offline model when
/// neither a base URL nor an API key is configured. Replies are cached in `memory`; the key
/// and other secrets come from `secrets`.
pub async fn model_client(
    config: &Config,
    memory: Arc<dyn Memory>,
    secrets: &Secrets,
) -> anyhow::Result<ModelClient> {
    ModelClient::new(&config.model, Some(memory), secrets)
        .await
        .context("creating the model client")
}

impl Stack {
    /// Connects to (or starts) Kafka and creates the shared producer. Every secret of the
    /// process is looked up in `secrets`.
    pub async fn start(config: Config, mode: KafkaMode, secrets: Secrets) -> anyhow::Result<Stack> {
        let (kafka, embedded) = resolve_kafka(&config, mode)?;
        let health = Health::default();
        let context = WorkerContext::new(&kafka, &health, &secrets)?;
        context
            .producer
            .wait_connected(CONNECT_TIMEOUT)
            .await
            .with_context(|| format!("connecting to Kafka at {}", kafka.brokers))?;
        Ok(Stack {
            config,
            context,
            health,
            secrets,
            embedded,
        })
    }

    /// Whether Kafka is the embedded broker.
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }
}

fn resolve_kafka(
    config: &Config,
    mode: KafkaMode,
) -> anyhow::Result<(KafkaOptions, Option<EmbeddedKafka>)> {
    if mode != KafkaMode::EmbeddedUnlessConfigured || !config.kafka.brokers.trim().is_empty() {
        return Ok((resolve_brokers(config, mode)?, None));
    }
    let embedded = EmbeddedKafka::start(1).context("starting the embedded broker")?;
    let topics = config.topics()?;
    embedded
        .create_topics(&topics)
        .context("creating the topics of topics.yaml")?;
    let mut kafka = KafkaOptions {
        brokers: embedded.bootstrap_servers().to_string(),
        ..config.kafka.clone()
    };
    tune_for_embedded(&mut kafka);
    Ok((kafka, Some(embedded)))
}

/// Client settings for the embedded broker (see `embedded::FETCH_WAIT_MS`), unless the
/// configuration sets them.
fn tune_for_embedded(kafka: &mut KafkaOptions) {
    kafka
        .properties
        .entry("fetch.wait.max.ms".to_string())
        .or_insert_with(|| chatgptd_runtime::embedded::FETCH_WAIT_MS.to_string());
}

/// Kafka options with brokers: the configured ones, else (for tools) those of a running
/// `chatgptd up` found through the data directory.
pub fn resolve_brokers(config: &Config, mode: KafkaMode) -> anyhow::Result<KafkaOptions> {
    let mut kafka = config.kafka.clone();
    if !kafka.brokers.trim().is_empty() {
        return Ok(kafka);
    }
    if mode == KafkaMode::ConfiguredOrRunning
        && let Some(info) = discovery::read(&config.data_dir)
    {
        eprintln!(
            "using the embedded broker of `chatgptd up` at {}",
            info.brokers
        );
        kafka.brokers = info.brokers;
        tune_for_embedded(&mut kafka);
        return Ok(kafka);
    }
    match mode {
        KafkaMode::ConfiguredOrRunning => bail!(
            "no Kafka brokers configured and no running `chatgptd up` found in {}: \
             pass --brokers HOST:PORT, or start `chatgptd up` (with the same --data-dir)",
            config.data_dir.display()
        ),
        _ => bail!(
            "no Kafka brokers configured: set kafka.brokers in the config file, \
             CHATGPTD_KAFKA__BROKERS, or --brokers (or use `chatgptd up` for the embedded stack)"
        ),
    }
}

/// Something a process runs until shutdown: a worker or the HTTP server.
pub type Task = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// Runs `tasks` until `shutdown` is cancelled and all have stopped. If one fails, the others
/// are shut down too and its error is returned: a process is not healthy with a dead worker.
pub async fn run_tasks(
    tasks: Vec<(String, Task)>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut set = JoinSet::new();
    for (name, task) in tasks {
        set.spawn(async move { (name, task.await) });
    }
    let mut first_error = None;
    while let Some(joined) = set.join_next().await {
        let (name, result) = match joined {
            Ok(done) => done,
            Err(err) => ("task".to_string(), Err(anyhow::anyhow!("panicked: {err}"))),
        };
        match result {
            Ok(()) => info!(task = %name, "stopped"),
            Err(err) => {
                error!(task = %name, error = %format!("{err:#}"), "failed; stopping the process");
                if first_error.is_none() {
                    first_error = Some(err.context(format!("{name} failed")));
                }
                shutdown.cancel();
            }
        }
    }
    match first_error {
        Some(err) => Err(err),
        None => Ok(()),
    }
}
