//! Kafka for tests: the mock cluster (real protocol, in process) and client helpers that work
//! against any broker (mock cluster or tansu).

use std::collections::HashMap;
use std::time::Duration;

use chatgptd_runtime::KafkaOptions;
use chatgptd_runtime::embedded::EmbeddedKafka;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// A mock cluster for one test.
pub struct MockKafka {
    cluster: EmbeddedKafka,
}

impl MockKafka {
    /// Starts a one-broker mock cluster.
    pub fn start() -> Self {
        MockKafka {
            cluster: EmbeddedKafka::start(1).expect("mock cluster starts"),
        }
    }

    /// Bootstrap servers.
    pub fn brokers(&self) -> String {
        self.cluster.bootstrap_servers().to_string()
    }

    /// Kafka options for workers under test: frequent commits, and the fetch wait `chatgptd
    /// up` gives its embedded broker (see `embedded::FETCH_WAIT_MS`), so a hop between
    /// workers does not cost half a second.
    pub fn options(&self) -> KafkaOptions {
        let mut options = test_kafka_options(&self.brokers());
        options.properties.insert(
            "fetch.wait.max.ms".into(),
            chatgptd_runtime::embedded::FETCH_WAIT_MS.into(),
        );
        options
    }

    /// Creates a topic.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.cluster
            .create_topic(name, partitions, 1)
            .expect("create topic");
    }

    /// The embedded cluster itself.
    pub fn cluster(&self) -> &EmbeddedKafka {
        &self.cluster
    }
}

/// Kafka options for tests against `brokers`: frequent commits and statistics.
pub fn test_kafka_options(brokers: &str) -> KafkaOptions {
    let mut options = KafkaOptions::with_brokers(brokers);
    options
        .properties
        .insert("auto.commit.interval.ms".into(), "100".into());
    options
        .properties
        .insert("topic.metadata.refresh.interval.ms".into(), "1000".into());
    options.statistics_interval = Duration::from_millis(500);
    options.delivery_timeout = Duration::from_secs(10);
    options
}

/// A plain producer for test input.
pub fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "10000")
        .create()
        .expect("test producer")
}

/// Produces one record to `partition` (or by key when `None`), waiting for the ack.
pub async fn produce(
    producer: &FutureProducer,
    topic: &str,
    partition: Option<i32>,
    key: Option<&[u8]>,
    payload: &[u8],
    headers: &[(&str, &[u8])],
) -> (i32, i64) {
    let mut owned = OwnedHeaders::new();
    for (name, value) in headers {
        owned = owned.insert(Header {
            key: name,
            value: Some(*value),
        });
    }
    let mut record: FutureRecord<'_, [u8], [u8]> =
        FutureRecord::to(topic).payload(payload).headers(owned);
    if let Some(key) = key {
        record = record.key(key);
    }
    if let Some(partition) = partition {
        record = record.partition(partition);
    }
    let delivery = producer
        .send(record, Duration::from_secs(10))
        .await
        .expect("test produce");
    (delivery.partition, delivery.offset)
}

/// Reads `topic` from the beginning (every partition) until `count` records arrived or
/// `timeout` passed; returns what arrived.
pub fn consume(brokers: &str, topic: &str, count: usize, timeout: Duration) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", crate::unique("reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("test consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len())
        .unwrap_or(0);
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions as i32 {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = std::time::Instant::now() + timeout;
    let mut messages = Vec::new();
    while messages.len() < count && std::time::Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            messages.push(message.detach());
        }
    }
    messages
}

/// The offsets `group` has committed for `topic`'s partitions (absent: none committed).
pub fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> HashMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("offsets reader");
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .expect("committed offsets");
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(offset) => Some((e.partition(), offset)),
            _ => None,
        })
        .collect()
}

/// Commits `offset` for `topic`'s `partition` as `group`, as a plain consumer outside the
/// group's membership would (tools that move a group's offsets do the same).
pub fn commit_offset(brokers: &str, group: &str, topic: &str, partition: i32, offset: i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("offsets writer");
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Offset(offset))
        .expect("offset");
    consumer
        .commit(&list, rdkafka::consumer::CommitMode::Sync)
        .expect("commit offset");
}

/// A header's value as text.
pub fn header(message: &OwnedMessage, name: &str) -> Option<String> {
    message
        .headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// A broker a test can run against: the mock cluster or tansu.
pub trait TestCluster: Send + Sync {
    /// Bootstrap servers.
    fn brokers(&self) -> String;

    /// Creates a topic, through whatever API the broker supports.
    fn create_topic(
        &self,
        name: &str,
        partitions: i32,
    ) -> impl std::future::Future<Output = ()> + Send;

    /// Whether a member's offset commit is accepted while its group waits for members to
    /// rejoin, as Kafka does (PreparingRebalance). librdkafka's mock refuses it
    /// (REBALANCE_IN_PROGRESS), so the commit made after draining a revoked partition
    /// fails there and its records are legitimately redelivered.
    fn commits_while_rebalancing(&self) -> bool {
        true
    }
}

impl TestCluster for MockKafka {
    fn brokers(&self) -> String {
        MockKafka::brokers(self)
    }

    async fn create_topic(&self, name: &str, partitions: i32) {
        MockKafka::create_topic(self, name, partitions);
    }

    fn commits_while_rebalancing(&self) -> bool {
        false
    }
}

#[cfg(feature = "tansu")]
impl TestCluster for crate::tansu::Tansu {
    fn brokers(&self) -> String {
        crate::tansu::Tansu::brokers(self)
    }

    async fn create_topic(&self, name: &str, partitions: i32) {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        use rdkafka::client::DefaultClientContext;
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", TestCluster::brokers(self))
            .create()
            .expect("admin client");
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let results = admin
            .create_topics(
                [&topic],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .expect("create topic");
        for result in results {
            result.unwrap_or_else(|(topic, code)| panic!("creating {topic}: {code}"));
        }
    }
}
