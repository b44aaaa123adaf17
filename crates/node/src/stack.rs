//! What the workers of one process share, opened once: Kafka and the producer at start, the
//! memory backend, the model client, the registry and the search index on first need.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};
use chatgptd_fleet::{Brain, LiveRegistry};
use chatgptd_memory::Memory;
use chatgptd_model::ModelClient;
use chatgptd_registry::{Registry, Workflows};
use chatgptd_runtime::embedded::EmbeddedKafka;
use chatgptd_runtime::{Health, KafkaOptions, WorkerContext};
use chatgptd_search::{Remote, Retriever, SearchService};
use chatgptd_types::Secrets;
use tokio::sync::OnceCell;

use crate::config::{Config, EmbeddedStorage};
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
    /// Where secrets come from: the environment in a process, a map in a test.
    pub secrets: Secrets,
    /// Opened by the first worker that needs each, then shared.
    memory: OnceCell<Arc<dyn Memory>>,
    model: OnceCell<ModelClient>,
    definitions: OnceLock<(Arc<Registry>, Arc<Workflows>)>,
    /// The registry with the run-time registrations over it, read to the topic's end once.
    live_registry: OnceCell<Arc<LiveRegistry>>,
    search: OnceLock<Arc<SearchService>>,
    /// The embedded broker, when this process runs one; dropped last.
    embedded: Option<Embedded>,
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
    /// Connects to (or starts) Kafka and creates the shared producer. Secrets the
    /// configuration names are looked up in `secrets`.
    pub async fn start(config: Config, secrets: Secrets, mode: KafkaMode) -> anyhow::Result<Stack> {
        let (kafka, embedded) = resolve_kafka(&config, mode).await?;
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
            memory: OnceCell::new(),
            model: OnceCell::new(),
            live_registry: OnceCell::new(),
            definitions: OnceLock::new(),
            search: OnceLock::new(),
            embedded,
        })
    }

    /// The embedded broker, when this process runs one.
    pub fn embedded(&self) -> Option<&Embedded> {
        self.embedded.as_ref()
    }

    /// The memory backend, opened on first use and reported on `/readyz`.
    pub async fn memory(&self) -> anyhow::Result<Arc<dyn Memory>> {
        self.memory
            .get_or_try_init(|| open_memory(&self.config, &self.health, &self.secrets))
            .await
            .cloned()
    }

    /// The model client, created on first use; it caches replies in the memory backend.
    pub async fn model(&self) -> anyhow::Result<ModelClient> {
        self.model
            .get_or_try_init(|| async {
                model_client(&self.config, self.memory().await?, &self.secrets).await
            })
            .await
            .cloned()
    }

    /// The brain agents and workflow steps think with (`agents.prompt_file`).
    pub async fn brain(&self) -> anyhow::Result<Brain> {
        Brain::new(self.model().await?, &self.config.agents.prompt_file)
            .context("loading the agent prompt")
    }

    /// The agent registry and the workflow definitions, loaded on first use.
    pub fn definitions(&self) -> anyhow::Result<(Arc<Registry>, Arc<Workflows>)> {
        if let Some(loaded) = self.definitions.get() {
            return Ok(loaded.clone());
        }
        let registry = self
            .config
            .registry()
            .context("loading the agent registry")?;
        let workflows = self
            .config
            .workflow_definitions(&registry)
            .context("loading the workflows")?;
        Ok(self
            .definitions
            .get_or_init(|| (Arc::new(registry), Arc::new(workflows)))
            .clone())
    }

    /// The registry with the agents registered at run time over it: `agents.registry_topic`
    /// read to its end on first use, then followed.
    pub async fn live_registry(&self) -> anyhow::Result<Arc<LiveRegistry>> {
        let (registry, _) = self.definitions()?;
        self.live_registry
            .get_or_try_init(|| async {
                LiveRegistry::open(
                    registry,
                    &self.context.kafka,
                    &self.secrets,
                    self.context.producer.clone(),
                    &self.config.agents.registry_topic,
                )
                .await
                .context("reading the run-time agent registrations")
            })
            .await
            .cloned()
    }

    /// Search over the index of the configured memory topic (the indexer's own).
    pub fn search(&self) -> Arc<SearchService> {
        self.search
            .get_or_init(|| Arc::new(SearchService::new(&self.index_dir())))
            .clone()
    }

    /// Makes `search` (an indexer's reader of its own shards) the one this process's
    /// prompts search through, unless one is already in use.
    pub fn share_search(&self, search: Arc<SearchService>) {
        let _ = self.search.set(search);
    }

    fn index_dir(&self) -> std::path::PathBuf {
        chatgptd_search::topic_dir(&self.config.index_root(), &self.config.indexer.topic)
    }

    /// Where `worker`'s prompts find relevant memory: an indexer's `/search` when
    /// `search_url` is set (several replicas separated by commas: see [`Remote`]),
    /// with the API token in the secret `token_env` if named; else this process's index (its
    /// own, or one in the data directory).
    pub fn retriever(&self, worker: &str, search_url: &str, token_env: &str) -> Retriever {
        if !search_url.is_empty() {
            chatgptd_model::install_crypto_provider();
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                // A replica whose host is gone must not hold a search for the whole timeout.
                .connect_timeout(std::time::Duration::from_secs(1))
                .default_headers(crate::auth::bearer_headers(
                    worker,
                    &self.secrets,
                    token_env,
                ))
                .build();
            return match client
                .ok()
                .and_then(|client| Remote::new(client, search_url))
            {
                Some(replicas) => Retriever::Remote(Arc::new(replicas)),
                None => Retriever::None,
            };
        }
        if self.search.get().is_some() || self.index_dir().exists() {
            return Retriever::Local(self.search());
        }
        // Prompts then carry no memory: say so, since nothing else would show it.
        tracing::warn!(
            worker,
            index = %self.index_dir().display(),
            "no search index in this process and no search_url: prompts get no relevant memory; \
             set {worker}.search_url to an indexer's address"
        );
        Retriever::None
    }
}

async fn resolve_kafka(
    config: &Config,
    mode: KafkaMode,
) -> anyhow::Result<(KafkaOptions, Option<Embedded>)> {
    if mode != KafkaMode::EmbeddedUnlessConfigured || !config.kafka.brokers.trim().is_empty() {
        return Ok((resolve_brokers(config, mode)?, None));
    }
    let topics = config.topics()?;
    let embedded = match config.embedded.storage {
        EmbeddedStorage::Durable => {
            let dir = config.data_dir.join("broker");
            let broker = chatgptd_broker::Broker::start(
                &dir,
                config.embedded.listen,
                chatgptd_broker::Members::Forget,
            )
            .await
            .context("starting the embedded broker")?;
            chatgptd_broker::create_topics(broker.bootstrap_servers(), &topics)
                .await
                .context("creating the topics of topics.yaml")?;
            Embedded::Durable(broker)
        }
        EmbeddedStorage::Memory => {
            let cluster = EmbeddedKafka::start(1).context("starting the embedded broker")?;
            cluster
                .create_topics(&topics)
                .context("creating the topics of topics.yaml")?;
            Embedded::Memory(cluster)
        }
    };
    let mut kafka = KafkaOptions {
        brokers: embedded.bootstrap_servers().to_string(),
        ..config.kafka.clone()
    };
    tune_for_embedded(&mut kafka);
    Ok((kafka, Some(embedded)))
}

/// The embedded broker of a `chatgptd up`.
pub enum Embedded {
    /// tansu with SQLite under the data directory.
    Durable(chatgptd_broker::Broker),
    /// librdkafka's mock cluster.
    Memory(EmbeddedKafka),
}

impl Embedded {
    /// `host:port` of the broker.
    pub fn bootstrap_servers(&self) -> &str {
        match self {
            Embedded::Durable(broker) => broker.bootstrap_servers(),
            Embedded::Memory(cluster) => cluster.bootstrap_servers(),
        }
    }

    /// Whether what the broker holds survives a restart.
    pub fn is_durable(&self) -> bool {
        matches!(self, Embedded::Durable(_))
    }
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
