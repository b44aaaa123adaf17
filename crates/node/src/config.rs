//! The configuration: one TOML file, then `CHATGPTD_*` environment variables, then flags, in
//! rising precedence. Every section is the `Options` of the part it configures; every field is
//! documented where it is declared. An unknown key is an error naming the key and its source.
//!
//! Environment variables use `__` between levels: `CHATGPTD_KAFKA__BROKERS=host:9092` sets
//! `kafka.brokers`. Secrets never live here: fields such as `model.api_key_env` name the
//! environment variable that holds them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chatgptd_memory::MemoryOptions;
use chatgptd_model::ModelOptions;
use chatgptd_runtime::http::{AuthMode, TokenOptions};
use chatgptd_runtime::{ConsumerOptions, KafkaOptions};
use chatgptd_types::topics::TopicsFile;
use chatgptd_worker_agents::AgentsOptions;
use chatgptd_worker_enrich::EnrichOptions;
use chatgptd_worker_indexer::IndexerWorkerOptions;
use chatgptd_worker_ingest::IngestOptions;
use chatgptd_worker_memory_writer::MemoryWriterOptions;
use chatgptd_worker_subscriptions::SubscriptionsOptions;
use chatgptd_worker_workflows::WorkflowsOptions;
use chatgptd_worker_writeback::WritebackOptions;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "chatgptd.toml";

/// Everything chatgptd can be configured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the embedded stack keeps its files: the SQLite memory, the search index, and
    /// `embedded.json`, through which `produce`/`tail` find a running `chatgptd up`.
    pub data_dir: PathBuf,

    /// The topics file; empty means the `topics.yaml` compiled into the binary.
    pub topics_file: PathBuf,

    /// A directory of `.avsc` schemas for `config check` to validate against the ones compiled
    /// into the binary; empty skips that comparison.
    pub schemas_dir: PathBuf,

    /// The search index root; empty means `<data_dir>/index`. The indexer writes one shard
    /// per memory-topic partition under `<index_dir>/<topic>/<partition>`.
    pub index_dir: PathBuf,

    /// Kafka connection. Empty `brokers` makes `chatgptd up` start its embedded broker.
    pub kafka: KafkaOptions,

    /// The embedded broker of `chatgptd up`, when `kafka.brokers` is empty.
    pub embedded: EmbeddedOptions,

    /// The memory backend: Redis when `redis_url` is set, else SQLite in the data directory.
    pub memory: MemoryOptions,

    /// The model provider: OpenAI-compatible when a base URL or API key is configured, else
    /// the built-in offline model.
    pub model: ModelOptions,

    /// The HTTP server: webhooks, the API, `/metrics`, `/healthz`, `/readyz`.
    pub http: HttpOptions,

    /// Logging.
    pub log: LogOptions,

    /// The memory writer (`chatgptd worker memory-writer`).
    pub memory_writer: MemoryWriterOptions,

    /// The indexer (`chatgptd worker indexer`).
    pub indexer: IndexerWorkerOptions,

    /// The webhook gateway (`chatgptd worker ingest`; part of every `chatgptd up`).
    pub ingest: IngestOptions,

    /// The enrichment worker (`chatgptd worker enrich`).
    pub enrich: EnrichOptions,

    /// The write-back worker (`chatgptd worker writeback`).
    pub writeback: WritebackOptions,

    /// The agent worker (`chatgptd worker agents`) and the agent registry.
    pub agents: AgentsOptions,

    /// The workflow engine (`chatgptd worker workflows`) and the workflow definitions.
    pub workflows: WorkflowsOptions,

    /// The dead-letter replayer's consumer (`chatgptd dlq replay`).
    pub dlq_replay: ConsumerOptions,

    /// Webhook subscriptions (`chatgptd worker subscriptions`): records out to subscribers.
    pub subscriptions: SubscriptionsOptions,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            topics_file: PathBuf::new(),
            schemas_dir: PathBuf::new(),
            index_dir: PathBuf::new(),
            kafka: KafkaOptions::default(),
            embedded: EmbeddedOptions::default(),
            memory: MemoryOptions::default(),
            model: ModelOptions::default(),
            http: HttpOptions::default(),
            log: LogOptions::default(),
            memory_writer: MemoryWriterOptions::default(),
            indexer: IndexerWorkerOptions::default(),
            ingest: IngestOptions::default(),
            enrich: EnrichOptions::default(),
            writeback: WritebackOptions::default(),
            agents: AgentsOptions::default(),
            workflows: WorkflowsOptions::default(),
            dlq_replay: ConsumerOptions::default(),
            subscriptions: SubscriptionsOptions::default(),
        }
    }
}

/// The embedded broker of `chatgptd up`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedOptions {
    /// `durable` (the default): tansu inside the process, its storage in SQLite under
    /// `<data_dir>/broker`, so the topics' records and the groups' offsets survive a
    /// restart and nothing is dropped for size. `memory`: librdkafka's mock cluster, gone at
    /// exit and at most about 5 MiB per partition; for throwaway runs and benchmarks.
    pub storage: EmbeddedStorage,
    /// Where the broker listens; port 0 picks a free port. Tools find it through
    /// `<data_dir>/embedded.json`.
    pub listen: SocketAddr,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            storage: EmbeddedStorage::Durable,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// Where the embedded broker keeps records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddedStorage {
    /// SQLite under the data directory: survives a restart.
    Durable,
    /// librdkafka's mock cluster, in memory.
    Memory,
}

/// The HTTP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpOptions {
    /// Address to listen on; port 0 picks a free port (printed at start).
    pub listen: SocketAddr,
    /// Open event streams (`GET /events`, `GET /runs/{id}/events`) at most; each holds a
    /// Kafka consumer and a thread. One more gets 503.
    pub max_event_subscribers: usize,
    /// `tokens` (default): every route but the public ones and the webhooks needs an API
    /// token. `none`: no checks, anyone who reaches the port may do anything (a warning at
    /// every start); required to listen beyond loopback without `tokens`.
    pub auth: AuthMode,
    /// The API tokens, by name (`[http.tokens.ci]`): `scopes` (`read`, `send`, `approve`,
    /// `admin`) and the secret's `sha256` in hex, or `secret_env` naming the variable that
    /// holds it. None configured, a loopback listener keeps an admin token of its own in
    /// `<data_dir>/api-token`; any other listener refuses to start.
    pub tokens: BTreeMap<String, TokenOptions>,
    /// Paths served without a token (exact paths).
    pub public: Vec<String>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_event_subscribers: 64,
            auth: AuthMode::Tokens,
            tokens: BTreeMap::new(),
            public: ["/healthz", "/readyz", "/metrics"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogOptions {
    /// `text` for people, `json` for log collectors.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `info,chatgptd_runtime=debug`; `RUST_LOG` overrides it.
    pub filter: String,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            format: LogFormat::Text,
            filter: "info,librdkafka=warn,rdkafka=warn".to_string(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Values given on the command line; they win over the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub brokers: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub http_listen: Option<SocketAddr>,
    pub log_format: Option<LogFormat>,
}

/// Where the configuration came from, for messages.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The file read, if any.
    pub file: Option<PathBuf>,
}

/// Loads the configuration: defaults, the file (`path`, or `chatgptd.toml` if present), the
/// environment, then `overrides`.
pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Loaded, Box<figment::Error>> {
    let file = match path {
        Some(path) => Some(path.to_path_buf()),
        None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.exists()),
    };
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(file) = &file {
        if !file.exists() {
            let message = format!("config file {} does not exist", file.display());
            return Err(Box::new(figment::Error::from(message)));
        }
        figment = figment.merge(Toml::file_exact(file));
    }
    // CHATGPTD_CONFIG names the file; it is not a setting.
    figment = figment.merge(Env::prefixed("CHATGPTD_").split("__").ignore(&["config"]));
    if let Some(brokers) = &overrides.brokers {
        figment = figment.merge(Serialized::default("kafka.brokers", brokers));
    }
    if let Some(data_dir) = &overrides.data_dir {
        figment = figment.merge(Serialized::default("data_dir", data_dir));
    }
    if let Some(listen) = &overrides.http_listen {
        figment = figment.merge(Serialized::default("http.listen", listen));
    }
    if let Some(format) = &overrides.log_format {
        figment = figment.merge(Serialized::default("log.format", format));
    }
    let config: Config = figment.extract().map_err(Box::new)?;
    Ok(Loaded { config, file })
}

impl Config {
    /// Every worker's consumer settings, by config section, for validation.
    pub fn consumers(&self) -> Vec<(&'static str, &ConsumerOptions)> {
        vec![
            ("memory_writer.consumer", &self.memory_writer.consumer),
            ("indexer.consumer", &self.indexer.consumer),
            ("enrich.consumer", &self.enrich.consumer),
            ("writeback.consumer", &self.writeback.consumer),
            (
                "writeback.actions_consumer",
                &self.writeback.actions_consumer,
            ),
            ("agents.consumer", &self.agents.consumer),
            ("workflows.consumer", &self.workflows.consumer),
            (
                "workflows.trigger_consumer",
                &self.workflows.trigger_consumer,
            ),
            ("dlq_replay", &self.dlq_replay),
            ("subscriptions.consumer", &self.subscriptions.consumer),
        ]
    }

    /// The agent registry: from `agents.registry_dir`, or the one compiled into the binary.
    pub fn registry(&self) -> Result<chatgptd_registry::Registry, chatgptd_registry::Error> {
        if self.agents.registry_dir.as_os_str().is_empty() {
            Ok(chatgptd_registry::Registry::builtin())
        } else {
            chatgptd_registry::Registry::load(&self.agents.registry_dir)
        }
    }

    /// The workflow definitions: from `workflows.workflows_dir`, or the built-in ones.
    pub fn workflow_definitions(
        &self,
        registry: &chatgptd_registry::Registry,
    ) -> Result<chatgptd_registry::Workflows, chatgptd_registry::Error> {
        if self.workflows.workflows_dir.as_os_str().is_empty() {
            Ok(chatgptd_registry::Workflows::builtin(registry))
        } else {
            chatgptd_registry::Workflows::load(&self.workflows.workflows_dir, registry)
        }
    }

    /// The search index root in effect.
    pub fn index_root(&self) -> PathBuf {
        if self.index_dir.as_os_str().is_empty() {
            self.data_dir.join("index")
        } else {
            self.index_dir.clone()
        }
    }

    /// The topics file in effect.
    pub fn topics(&self) -> Result<TopicsFile, chatgptd_types::Error> {
        if self.topics_file.as_os_str().is_empty() {
            Ok(TopicsFile::builtin())
        } else {
            TopicsFile::load(&self.topics_file)
        }
    }

    /// The configuration as TOML, secrets excluded by construction (only env var names are
    /// ever in it). For `config check --show`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|err| format!("# cannot render: {err}"))
    }
}

/// All errors of a figment extraction, one per line, each naming its key and source.
pub fn describe_error(error: &figment::Error) -> String {
    error
        .clone()
        .into_iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

// figment's Jail API dictates closures returning its (large) error type.
#[allow(clippy::result_large_err)]
#[cfg(test)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn file_then_environment_then_flags() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "data_dir = \"from-file\"\n[kafka]\nbrokers = \"file:9092\"\n",
            )?;
            jail.set_env("CHATGPTD_KAFKA__BROKERS", "env:9092");
            let loaded = load(Some(Path::new("c.toml")), &Overrides::default()).unwrap();
            assert_eq!(loaded.config.kafka.brokers, "env:9092");
            assert_eq!(loaded.config.data_dir, PathBuf::from("from-file"));

            let flags = Overrides {
                brokers: Some("flag:9092".into()),
                ..Default::default()
            };
            let loaded = load(Some(Path::new("c.toml")), &flags).unwrap();
            assert_eq!(loaded.config.kafka.brokers, "flag:9092");
            Ok(())
        });
    }

    /// docker-compose's full-copy indexers: a group id of its own per replica, and the
    /// workers' list of replicas, both from the environment.
    #[test]
    fn compose_configures_search_replicas_from_the_environment() {
        Jail::expect_with(|jail| {
            let urls = "http://indexer:8080,http://indexer-b:8080";
            jail.set_env("CHATGPTD_AGENTS__SEARCH_URL", urls);
            jail.set_env("CHATGPTD_ENRICH__SEARCH_URL", urls);
            jail.set_env("CHATGPTD_INDEXER__CONSUMER__GROUP_ID", "chatgptd-indexer-b");
            let loaded = load(None, &Overrides::default()).unwrap();
            assert_eq!(loaded.config.agents.search_url, urls);
            assert_eq!(loaded.config.enrich.search_url, urls);
            let consumer = &loaded.config.indexer.consumer;
            assert_eq!(consumer.group_id, "chatgptd-indexer-b");
            assert_eq!(
                consumer.max_in_flight_per_partition, 4096,
                "the rest stays default"
            );
            Ok(())
        });
    }

    #[test]
    fn the_readme_demo_configures_ingest_from_the_environment() {
        Jail::expect_with(|jail| {
            jail.set_env("CHATGPTD_INGEST__JIRA__SECRET_ENV", "JIRA_WEBHOOK_SECRET");
            jail.set_env("CHATGPTD_INGEST__JIRA__PROJECTS", r#"["*"]"#);
            jail.set_env("CHATGPTD_INGEST__GITHUB__ALLOW_UNSIGNED", "true");
            let loaded = load(None, &Overrides::default()).unwrap();
            let ingest = &loaded.config.ingest;
            assert_eq!(ingest.jira.secret_env, "JIRA_WEBHOOK_SECRET");
            assert_eq!(ingest.jira.projects, ["*"]);
            assert!(ingest.github.allow_unsigned && !ingest.jira.allow_unsigned);
            Ok(())
        });
    }

    #[test]
    fn an_unknown_key_names_the_key_and_the_file() {
        Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[kafka]\nbrokerz = \"x\"\n")?;
            let err = load(Some(Path::new("c.toml")), &Overrides::default()).unwrap_err();
            let text = describe_error(&err);
            assert!(
                text.contains("brokerz") && text.contains("c.toml"),
                "{text}"
            );
            Ok(())
        });
    }

    #[test]
    fn an_unknown_environment_key_is_an_error_too() {
        Jail::expect_with(|jail| {
            jail.set_env("CHATGPTD_KAFKA__BROKERZ", "x");
            let err = load(None, &Overrides::default()).unwrap_err();
            assert!(describe_error(&err).contains("brokerz"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_default_file_is_optional_and_defaults_apply() {
        Jail::expect_with(|_| {
            let loaded = load(None, &Overrides::default()).unwrap();
            assert!(loaded.file.is_none());
            assert_eq!(loaded.config, Config::default());
            Ok(())
        });
    }

    #[test]
    fn the_example_file_is_valid() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../chatgptd.example.toml");
        Jail::expect_with(|_| {
            let loaded = load(Some(&example), &Overrides::default()).unwrap();
            assert_eq!(
                loaded.config.memory.ttl_for("ticket"),
                std::time::Duration::from_secs(90 * 86_400)
            );
            assert!(!loaded.config.writeback.jira.enabled);
            // Secure by default: the example accepts no unsigned webhook.
            let ingest = &loaded.config.ingest;
            assert!(!ingest.jira.allow_unsigned && !ingest.github.allow_unsigned);
            assert!(!ingest.servicenow.allow_unsigned);
            Ok(())
        });
    }

    #[test]
    fn a_missing_explicit_file_is_an_error() {
        Jail::expect_with(|_| {
            let err = load(Some(Path::new("nope.toml")), &Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("nope.toml"));
            Ok(())
        });
    }
}
