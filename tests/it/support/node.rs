//! The real node, started as `chatgptd up` and `chatgptd worker` start it: a configuration
//! with fakes in it, a map of secrets, the roles to run, HTTP on 127.0.0.1.

use std::sync::Arc;

use chatgptd_node::{Config, KafkaMode, Role, Stack};
use chatgptd_testkit::kafka::MockKafka;
use chatgptd_types::Secrets;
use chatgptd_types::topics::TopicsFile;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::test_options;

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
    config
}

/// A running node.
pub struct Node {
    pub stack: Arc<Stack>,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
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
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let running = tokio::spawn({
            let (stack, roles, shutdown) = (stack.clone(), roles.to_vec(), shutdown.clone());
            async move { chatgptd_node::run(&stack, &roles, listener, shutdown).await }
        });
        Node {
            stack,
            url,
            shutdown,
            running: Some(running),
        }
    }

    /// `path` on this node's HTTP server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
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
