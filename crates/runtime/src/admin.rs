//! `chatgptd topics apply|list`: make the cluster match `topics.yaml`, idempotently, and say
//! how existing topics differ from it (never altering them: repartitioning moves keys).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chatgptd_types::Secrets;
use chatgptd_types::topics::{TopicSpec, TopicsFile};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaErrorCode;

use crate::Error;
use crate::kafka::KafkaOptions;

const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Short: brokers that do not implement DescribeConfigs never answer it.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What happened to one declared topic.
#[derive(Debug, Clone, PartialEq)]
pub enum TopicState {
    /// Created by this run.
    Created,
    /// Already there.
    Exists,
    /// Not there (`list` only).
    Missing,
    /// Creation failed.
    Failed(String),
}

/// One declared topic and how the cluster's copy compares.
#[derive(Debug, Clone)]
pub struct TopicReport {
    pub name: String,
    pub state: TopicState,
    /// Partitions in the cluster (0 when missing).
    pub partitions: usize,
    /// How the cluster's topic differs from topics.yaml, for people.
    pub differences: Vec<String>,
}

struct Admin {
    client: Arc<AdminClient<DefaultClientContext>>,
}

impl Admin {
    fn new(kafka: &KafkaOptions, secrets: &Secrets) -> Result<Self, Error> {
        let client = kafka
            .base_config("admin", secrets)?
            .create()
            .map_err(Error::kafka("creating the admin client"))?;
        Ok(Admin {
            client: Arc::new(client),
        })
    }

    async fn metadata(&self) -> Result<Metadata, Error> {
        let client = self.client.clone();
        tokio::task::spawn_blocking(move || client.inner().fetch_metadata(None, ADMIN_TIMEOUT))
            .await
            .map_err(|err| Error::ConsumerThread(err.to_string()))?
            .map_err(Error::kafka("reading cluster metadata"))
    }
}

/// Every partition of `topic` with its low and high watermarks (the first offset still held,
/// and one past the last). Blocking: one metadata and one offsets request per partition.
pub fn watermarks<C: rdkafka::consumer::ConsumerContext>(
    consumer: &rdkafka::consumer::BaseConsumer<C>,
    topic: &str,
    timeout: Duration,
) -> rdkafka::error::KafkaResult<Vec<(i32, i64, i64)>> {
    use rdkafka::consumer::Consumer;
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    partitions
        .into_iter()
        .map(|partition| {
            let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
            Ok((partition, low, high))
        })
        .collect()
}

/// Compares the cluster with `topics` without changing anything (Kafka's secret properties
/// from `secrets`).
pub async fn list(
    kafka: &KafkaOptions,
    topics: &TopicsFile,
    secrets: &Secrets,
) -> Result<Vec<TopicReport>, Error> {
    let admin = Admin::new(kafka, secrets)?;
    let metadata = admin.metadata().await?;
    let configs = admin.topic_configs(&metadata, topics).await;
    Ok(topics
        .topics
        .iter()
        .map(|spec| compare(&metadata, &configs, spec))
        .collect())
}

/// Creates the declared topics that are missing and reports on the others. Running it again
/// changes nothing. A replication factor above the broker count is capped (a one-broker
/// development cluster), and the cap is reported.
pub async fn apply(
    kafka: &KafkaOptions,
    topics: &TopicsFile,
    secrets: &Secrets,
) -> Result<Vec<TopicReport>, Error> {
    let admin = Admin::new(kafka, secrets)?;
    let metadata = admin.metadata().await?;
    let broker_count = metadata.brokers().len().max(1) as i32;

    let configs = admin.topic_configs(&metadata, topics).await;
    let mut reports = Vec::new();
    let mut to_create: Vec<&TopicSpec> = Vec::new();
    for spec in &topics.topics {
        let report = compare(&metadata, &configs, spec);
        if report.state == TopicState::Missing {
            to_create.push(spec);
        } else {
            reports.push(report);
        }
    }
    if to_create.is_empty() {
        return Ok(reports);
    }

    let configs: Vec<Vec<(String, String)>> =
        to_create.iter().map(|spec| spec.kafka_configs()).collect();
    let new_topics: Vec<NewTopic<'_>> = to_create
        .iter()
        .zip(&configs)
        .map(|(spec, configs)| {
            let replication = spec.replication_factor.min(broker_count);
            configs.iter().fold(
                NewTopic::new(
                    &spec.name,
                    spec.partitions,
                    TopicReplication::Fixed(replication),
                ),
                |topic, (key, value)| topic.set(key, value),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
    let results = admin
        .client
        .create_topics(&new_topics, &options)
        .await
        .map_err(Error::kafka("creating topics"))?;
    for (spec, result) in to_create.iter().zip(results) {
        let mut differences = Vec::new();
        if spec.replication_factor > broker_count {
            differences.push(format!(
                "replication_factor {} capped to {broker_count}: the cluster has {broker_count} broker(s)",
                spec.replication_factor
            ));
        }
        let state = match result {
            Ok(_) => TopicState::Created,
            // Another `apply` got there first: still idempotent.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => TopicState::Exists,
            Err((_, code)) => TopicState::Failed(code.to_string()),
        };
        let partitions = if matches!(state, TopicState::Failed(_)) {
            0
        } else {
            spec.partitions as usize
        };
        reports.push(TopicReport {
            name: spec.name.clone(),
            state,
            partitions,
            differences,
        });
    }
    reports.sort_by_key(|report| topics.topics.iter().position(|t| t.name == report.name));
    Ok(reports)
}

/// The described configs of the declared topics that exist, or why they could not be read.
type TopicConfigs = Result<HashMap<String, HashMap<String, String>>, String>;

impl Admin {
    /// One DescribeConfigs request for every declared topic that exists. Some brokers (the
    /// embedded one among them) do not implement it; that is reported once per topic.
    async fn topic_configs(&self, metadata: &Metadata, topics: &TopicsFile) -> TopicConfigs {
        let existing: Vec<&str> = topics
            .topics
            .iter()
            .map(|t| t.name.as_str())
            .filter(|name| metadata.topics().iter().any(|t| t.name() == *name))
            .collect();
        if existing.is_empty() {
            return Ok(HashMap::new());
        }
        let resources: Vec<ResourceSpecifier<'_>> = existing
            .iter()
            .map(|name| ResourceSpecifier::Topic(name))
            .collect();
        let options = AdminOptions::new().request_timeout(Some(DESCRIBE_TIMEOUT));
        let results = self
            .client
            .describe_configs(&resources, &options)
            .await
            .map_err(|err| err.to_string())?;
        let mut configs = HashMap::new();
        for (name, result) in existing.iter().zip(results) {
            let resource = result.map_err(|code| code.to_string())?;
            let values = resource
                .entries
                .iter()
                .filter_map(|entry| entry.value.clone().map(|value| (entry.name.clone(), value)))
                .collect();
            configs.insert(name.to_string(), values);
        }
        Ok(configs)
    }
}

fn compare(metadata: &Metadata, configs: &TopicConfigs, spec: &TopicSpec) -> TopicReport {
    let Some(topic) = metadata.topics().iter().find(|t| t.name() == spec.name) else {
        return TopicReport {
            name: spec.name.clone(),
            state: TopicState::Missing,
            partitions: 0,
            differences: Vec::new(),
        };
    };
    let mut differences = Vec::new();
    let partitions = topic.partitions().len();
    if partitions != spec.partitions as usize {
        differences.push(format!(
            "partitions: {partitions} in the cluster, {} declared",
            spec.partitions
        ));
    }
    if let Some(first) = topic.partitions().first() {
        let replicas = first.replicas().len();
        if replicas != spec.replication_factor as usize {
            differences.push(format!(
                "replication_factor: {replicas} in the cluster, {} declared",
                spec.replication_factor
            ));
        }
    }
    match configs {
        Err(reason) => differences.push(format!(
            "topic configs not readable from this broker: {reason}"
        )),
        Ok(configs) => {
            let described = configs.get(&spec.name);
            for (key, declared) in spec.kafka_configs() {
                match described.and_then(|values| values.get(&key)) {
                    Some(actual) if *actual == declared => {}
                    Some(actual) => differences.push(format!(
                        "{key}: {actual} in the cluster, {declared} declared"
                    )),
                    None => differences.push(format!(
                        "{key}: not reported by the cluster, {declared} declared"
                    )),
                }
            }
        }
    }
    TopicReport {
        name: spec.name.clone(),
        state: TopicState::Exists,
        partitions,
        differences,
    }
}
