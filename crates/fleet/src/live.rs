//! The live registry: `agents/*.yaml` with the agents registered or changed at run time laid
//! over it. Registrations live in the compacted topic `agents.registry` (one record per
//! change, the whole agent, keyed by its id), so every replica and every restart sees them:
//! [`LiveRegistry::open`] reads the topic to its end before anything is served, then a
//! thread follows it. A change made here is applied at once as well, so its caller reads
//! what it wrote.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use chatgptd_registry::{AgentSpec, Problem, Registry};
use chatgptd_runtime::{KafkaOptions, OutputRecord, Producer};
use chatgptd_types::Secrets;
use chatgptd_types::avro::Codec;
use chatgptd_types::records::AgentRegistration;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use tracing::{info, warn};

/// How long opening waits to read the topic to its end.
const CATCH_UP: Duration = Duration::from_secs(30);

/// Why a registration was not made or the registry not opened.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The agent does not validate; every problem is listed.
    #[error("invalid agent: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Problem>),
    /// The topic could not be read or written.
    #[error("{0}")]
    Kafka(String),
}

/// Who registered an agent at run time, and who changed it last.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegistrationInfo {
    /// The token that first registered or changed it.
    pub registered_by: String,
    /// The token of the latest change.
    pub changed_by: String,
    /// `register`, `patch`, `disable` or `enable`.
    pub change: String,
    /// When it changed last.
    pub changed_at_ms: i64,
}

/// The registry as it stands now; see the module docs.
pub struct LiveRegistry {
    /// The loaded files.
    base: Arc<Registry>,
    /// `base` with `overlay` laid over it, rebuilt on each change.
    current: RwLock<Arc<Registry>>,
    /// The latest registration of each agent changed at run time.
    overlay: RwLock<BTreeMap<String, (AgentSpec, RegistrationInfo)>>,
    producer: Option<Producer>,
    topic: String,
    codec: Codec,
}

impl std::fmt::Debug for LiveRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveRegistry")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl LiveRegistry {
    /// The files alone, with no topic: nothing can be registered (tools, unit tests).
    pub fn fixed(base: Arc<Registry>) -> Arc<Self> {
        Arc::new(Self::new(base, None, String::new()))
    }

    fn new(base: Arc<Registry>, producer: Option<Producer>, topic: String) -> Self {
        LiveRegistry {
            current: RwLock::new(base.clone()),
            base,
            overlay: RwLock::new(BTreeMap::new()),
            producer,
            topic,
            codec: Codec::builtin(),
        }
    }

    /// Reads `topic` to its end over `base`, then follows it on a thread of its own until
    /// the registry is dropped. Changes are written through `producer`.
    pub async fn open(
        base: Arc<Registry>,
        kafka: &KafkaOptions,
        secrets: &Secrets,
        producer: Producer,
        topic: &str,
    ) -> Result<Arc<Self>, RegistryError> {
        let live = Arc::new(Self::new(base, Some(producer), topic.to_string()));
        let mut config = kafka
            .base_config("registry", secrets)
            .map_err(|err| RegistryError::Kafka(err.to_string()))?;
        config
            .set(
                "group.id",
                format!("chatgptd-registry-{}", uuid::Uuid::new_v4()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        let consumer: BaseConsumer = config
            .create()
            .map_err(|err| RegistryError::Kafka(err.to_string()))?;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let weak = Arc::downgrade(&live);
        let topic = topic.to_string();
        std::thread::Builder::new()
            .name("registry-follow".into())
            .spawn(move || follow(consumer, &topic, weak, ready_tx))
            .map_err(|err| RegistryError::Kafka(err.to_string()))?;
        match ready_rx.await {
            Ok(Ok(count)) => {
                info!(registrations = count, "run-time agent registrations read");
                Ok(live)
            }
            Ok(Err(err)) => Err(RegistryError::Kafka(err)),
            Err(_) => Err(RegistryError::Kafka("the registry reader stopped".into())),
        }
    }

    /// The registry as it stands: read it once per request or record, not per lookup.
    pub fn current(&self) -> Arc<Registry> {
        self.current
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// The loaded files, without run-time changes.
    pub fn base(&self) -> &Arc<Registry> {
        &self.base
    }

    /// Who registered or last changed `agent` at run time; `None` for a file's agent never
    /// changed.
    pub fn registration(&self, agent: &str) -> Option<RegistrationInfo> {
        self.overlay
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(agent)
            .map(|(_, info)| info.clone())
    }

    /// Validates `agent` and writes it as `change` by `by` (a token's name); once the broker
    /// has it, it is served here at once and by every replica as soon as it reads it.
    pub async fn write(
        &self,
        mut agent: AgentSpec,
        change: &str,
        by: &str,
    ) -> Result<AgentSpec, RegistryError> {
        let problems = self.base.check_registration(&mut agent);
        if !problems.is_empty() {
            return Err(RegistryError::Invalid(problems));
        }
        let Some(producer) = &self.producer else {
            return Err(RegistryError::Kafka(
                "this process has no registry topic".into(),
            ));
        };
        let registered_by = self
            .registration(&agent.id)
            .map_or_else(|| by.to_string(), |info| info.registered_by);
        let record = AgentRegistration {
            agent_id: agent.id.clone(),
            spec_json: serde_json::to_string(&agent).unwrap_or_default(),
            registered_by,
            changed_by: by.to_string(),
            change: change.to_string(),
            changed_at_ms: chatgptd_types::now_ms(),
        };
        let output = OutputRecord::avro(&self.codec, &self.topic, agent.id.as_bytes(), &record)
            .map_err(|err| RegistryError::Kafka(err.to_string()))?;
        producer
            .send(&output)
            .await
            .map_err(|err| RegistryError::Kafka(err.to_string()))?;
        self.apply(&record);
        Ok(agent)
    }

    /// Lays `record` over the files. A record that no longer validates (the files changed
    /// under it, e.g. its fleet was removed) is skipped with a warning: the files win.
    fn apply(&self, record: &AgentRegistration) {
        let mut agent: AgentSpec = match serde_json::from_str(&record.spec_json) {
            Ok(agent) => agent,
            Err(err) => {
                warn!(agent = %record.agent_id, %err, "unreadable registration skipped");
                return;
            }
        };
        let problems = self.base.check_registration(&mut agent);
        if !problems.is_empty() || agent.id != record.agent_id {
            warn!(agent = %record.agent_id, ?problems, "invalid registration skipped");
            return;
        }
        let info = RegistrationInfo {
            registered_by: record.registered_by.clone(),
            changed_by: record.changed_by.clone(),
            change: record.change.clone(),
            changed_at_ms: record.changed_at_ms,
        };
        let mut overlay = self
            .overlay
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        if overlay
            .get(&agent.id)
            .is_some_and(|(_, known)| known.changed_at_ms > info.changed_at_ms)
        {
            // Already applied a newer one locally; the topic will bring it again.
            return;
        }
        overlay.insert(agent.id.clone(), (agent, info));
        let current = Arc::new(self.base.overlay(overlay.values().map(|(agent, _)| agent)));
        *self
            .current
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = current;
    }
}

/// Reads `topic` from its beginning; reports how many records were read once every
/// partition's end (as it was at start) is reached, then applies new records until the
/// registry is gone.
fn follow(
    consumer: BaseConsumer,
    topic: &str,
    live: Weak<LiveRegistry>,
    ready: tokio::sync::oneshot::Sender<Result<usize, String>>,
) {
    let ends = match assign_from_beginning(&consumer, topic) {
        Ok(ends) => ends,
        Err(err) => {
            let _ = ready.send(Err(err));
            return;
        }
    };
    let mut ready = Some(ready);
    let mut read = 0;
    let started = Instant::now();
    loop {
        let Some(registry) = live.upgrade() else {
            return;
        };
        if let Some(sender) = ready.take_if(|_| caught_up(&consumer, &ends)) {
            let _ = sender.send(Ok(read));
        }
        if ready.is_some() && started.elapsed() > CATCH_UP {
            let sender = ready.take().expect("checked");
            let _ = sender.send(Err(format!(
                "{topic} was not read to its end within {}s",
                CATCH_UP.as_secs()
            )));
            return;
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                read += 1;
                match message
                    .payload()
                    .map(|bytes| registry.codec.decode::<AgentRegistration>(bytes))
                {
                    Some(Ok(record)) => registry.apply(&record),
                    Some(Err(err)) => warn!(%err, "undecodable registration skipped"),
                    None => {} // A tombstone: nothing to lay over the files.
                }
            }
            Some(Err(err)) => warn!(%err, "reading {topic}"),
            None => {}
        }
    }
}

/// Assigns every partition of `topic` from its beginning; returns each one's end.
fn assign_from_beginning(consumer: &BaseConsumer, topic: &str) -> Result<Vec<(i32, i64)>, String> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|err| format!("reading the metadata of {topic}: {err}"))?;
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len())
        .unwrap_or(0);
    if partitions == 0 {
        return Err(format!(
            "topic {topic} does not exist (`chatgptd topics apply` creates it)"
        ));
    }
    let mut assignment = TopicPartitionList::new();
    let mut ends = Vec::new();
    for partition in 0..partitions as i32 {
        let (_, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .map_err(|err| format!("reading the end of {topic}[{partition}]: {err}"))?;
        ends.push((partition, high));
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .map_err(|err| err.to_string())?;
    }
    consumer
        .assign(&assignment)
        .map_err(|err| err.to_string())?;
    Ok(ends)
}

/// Whether the consumer's position reached each partition's end as it was at start.
fn caught_up(consumer: &BaseConsumer, ends: &[(i32, i64)]) -> bool {
    if ends.iter().all(|(_, end)| *end <= 0) {
        return true;
    }
    let Ok(positions) = consumer.position() else {
        return false;
    };
    ends.iter().all(|(partition, end)| {
        *end <= 0
            || positions
                .elements()
                .iter()
                .find(|e| e.partition() == *partition)
                .and_then(|e| match e.offset() {
                    Offset::Offset(offset) => Some(offset >= *end),
                    _ => None,
                })
                .unwrap_or(false)
    })
}
