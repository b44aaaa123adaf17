//! The real node, started as `chatgptd up` and `chatgptd worker` start it: a configuration
//! with fakes in it, a map of secrets, the roles to run, HTTP on 127.0.0.1. Several nodes on
//! one cluster are several processes of one deployment (with a redis-server as their memory,
//! `config.memory.redis_url`, as docker-compose deploys them).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chatgptd_memory::Memory;
use chatgptd_node::{Config, KafkaMode, Role, Stack};
use chatgptd_runtime::http::Declared;
use chatgptd_testkit::kafka::MockKafka;
use chatgptd_types::Secrets;
use chatgptd_types::topics::TopicsFile;
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::test_options;

/// How long [`records`] waits for the records it expects, and metadata requests for answers.
const WAIT: Duration = Duration::from_secs(30);

/// No secrets, for [`Node::start`].
pub const NO_SECRETS: [(&str, &str); 0] = [];

/// The mock cluster with every topic of `topics.yaml`.
pub fn kafka() -> MockKafka {
    let kafka = MockKafka::start();
    for topic in TopicsFile::builtin().topics {
        kafka.create_topic(&topic.name, topic.partitions);
    }
    kafka
}

/// A configuration for a node on `kafka` keeping its files in `data_dir`: the test Kafka
/// settings, and every worker's consumer in a group of its own with the tests' short
/// timeouts and quick retries (`tag` keeps the groups of two tests apart).
pub fn config(kafka: &MockKafka, data_dir: &std::path::Path, tag: &str) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        kafka: kafka.options(),
        ..Config::default()
    };
    config.memory_writer.consumer = test_options(&format!("{tag}-memory-writer"));
    config.indexer.consumer = test_options(&format!("{tag}-indexer"));
    config.enrich.consumer = test_options(&format!("{tag}-enrich"));
    config.writeback.consumer = test_options(&format!("{tag}-writeback"));
    config.agents.consumer = test_options(&format!("{tag}-agents"));
    config.workflows.consumer = test_options(&format!("{tag}-workflows"));
    config.workflows.trigger_consumer = test_options(&format!("{tag}-triggers"));
    config.subscriptions.consumer = test_options(&format!("{tag}-subscriptions"));
    config
}

/// `config` with the settings of `toml` (a fragment of a `chatgptd.toml`, as a user writes
/// it) over it; a key the configuration does not know is an error, as in the file.
pub fn with_toml(config: Config, toml: &str) -> Config {
    Figment::from(Serialized::defaults(config))
        .merge(Toml::string(toml))
        .extract()
        .unwrap_or_else(|err| panic!("the node's configuration: {err}\n{toml}"))
}

/// A running node.
pub struct Node {
    pub stack: Arc<Stack>,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The admin token the node keeps in its data directory (none when the configuration
    /// names tokens or turns the check off).
    pub token: Option<String>,
    /// Every route the node serves, and what each requires.
    pub routes: Vec<Declared>,
    shutdown: CancellationToken,
    running: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Node {
    /// Starts `roles` on `config`'s brokers, with `secrets`, serving HTTP on a free port.
    pub async fn start<K, V>(
        config: Config,
        secrets: impl IntoIterator<Item = (K, V)>,
        roles: &[Role],
    ) -> Node
    where
        K: Into<String>,
        V: Into<String>,
    {
        chatgptd_testkit::init_logging();
        let stack = Stack::start(config, Secrets::from_map(secrets), KafkaMode::Configured)
            .await
            .expect("the node's stack starts");
        let stack = Arc::new(stack);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let tokens = chatgptd_node::auth::tokens(&stack.config, &stack.secrets, addr)
            .expect("the node's API tokens");
        let token = match tokens.generated() {
            Some(file) => Some(chatgptd_node::auth::read_token_file(file).unwrap()),
            None => admin_secret(&stack),
        };
        let shutdown = CancellationToken::new();
        // A node whose workers cannot be built stops at once with the error, as `run` does.
        let (routes, running) = match chatgptd_node::prepare(&stack, roles, shutdown.clone()).await
        {
            Ok(prepared) => {
                let routes = prepared.declared().to_vec();
                let running = tokio::spawn({
                    let (stack, shutdown) = (stack.clone(), shutdown.clone());
                    async move { prepared.serve(&stack, tokens, listener, shutdown).await }
                });
                (routes, running)
            }
            Err(err) => (Vec::new(), tokio::spawn(async move { Err(err) })),
        };
        Node {
            stack,
            url,
            token,
            routes,
            shutdown,
            running: Some(running),
        }
    }

    /// An HTTP client that sends the node's own admin token.
    pub fn client(&self) -> reqwest::Client {
        match &self.token {
            Some(token) => chatgptd_testkit::http_client_with_token(token),
            None => chatgptd_testkit::http_client(),
        }
    }

    /// `path` on this node's HTTP server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The node's memory backend (SQLite in its data directory, or its Redis).
    pub async fn memory(&self) -> Arc<dyn Memory> {
        self.stack.memory().await.expect("the node's memory opens")
    }

    /// The node's brokers.
    pub fn brokers(&self) -> String {
        self.stack.context.kafka.brokers.clone()
    }

    /// Stops the node gracefully (in-flight work drains) and returns what `run` returned.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let running = self.running.take().expect("running");
        running.await.expect("the node's task")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The secret of the first `admin` token the node's configuration names (by `secret_env`).
fn admin_secret(stack: &Stack) -> Option<String> {
    stack
        .config
        .http
        .tokens
        .values()
        .filter(|token| token.scopes.contains(&chatgptd_runtime::http::Scope::Admin))
        .find_map(|token| stack.secrets.get(&token.secret_env))
}

/// A client of `brokers` for metadata, watermarks and committed offsets.
fn client(brokers: &str) -> BaseConsumer {
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", brokers).create().unwrap()
}

/// How many partitions `topic` has.
fn partitions(client: &BaseConsumer, topic: &str) -> i32 {
    let metadata = client.fetch_metadata(Some(topic), WAIT).unwrap();
    metadata.topics()[0].partitions().len() as i32
}

/// The end (high watermark) of each partition of `topic` at `brokers`.
pub async fn ends(brokers: &str, topic: &str) -> HashMap<i32, i64> {
    let (brokers, topic) = (brokers.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let client = client(&brokers);
        let high = |partition| client.fetch_watermarks(&topic, partition, WAIT).unwrap().1;
        (0..partitions(&client, &topic))
            .map(|partition| (partition, high(partition)))
            .collect()
    })
    .await
    .unwrap()
}

/// Records on `topic` at `brokers` so far: the sum of its partitions' ends (exact at once
/// for records whose producer has its acknowledgement).
pub async fn count(brokers: &str, topic: &str) -> i64 {
    ends(brokers, topic).await.values().sum()
}

/// Waits for `count` records on `topic` at `brokers` (read from the beginning) and returns
/// them.
pub async fn records(brokers: &str, topic: &str, count: usize) -> Vec<OwnedMessage> {
    let (brokers, owned) = (brokers.to_string(), topic.to_string());
    let records = tokio::task::spawn_blocking(move || {
        chatgptd_testkit::kafka::consume(&brokers, &owned, count, WAIT)
    })
    .await
    .unwrap();
    assert_eq!(records.len(), count, "records on {topic}");
    records
}

/// The offsets `group` committed on the partitions of `topic` (absent: none committed).
pub async fn committed(brokers: &str, group: &str, topic: &str) -> HashMap<i32, i64> {
    let (brokers, group, topic) = (brokers.to_string(), group.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let partitions = partitions(&client(&brokers), &topic);
        chatgptd_testkit::kafka::committed(&brokers, &group, &topic, partitions)
    })
    .await
    .unwrap()
}
