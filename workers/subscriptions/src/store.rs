//! The subscriptions, on a compacted topic keyed by id: a record is a subscription, a
//! tombstone (null value) deletes one. Every replica reads the topic whole before it
//! delivers and then follows it, so a subscription made on one replica reaches all of them;
//! the replica that made it knows it at once. The delivery log is per replica, in memory:
//! the recent deliveries that replica attempted.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use chatgptd_runtime::{KafkaOptions, Producer, WorkerContext};
use chatgptd_types::Secrets;
use chatgptd_types::avro::Codec;
use chatgptd_types::records::Subscription;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::{Error, SubscriptionsOptions};

/// How long loading may wait for the topic's metadata and end offsets.
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// One attempt at delivering one record to one subscription, as it ended (or stands).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// The `webhook-id` header: the same for every try of this record to this subscription.
    pub webhook_id: String,
    /// Where the record is.
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// `delivered`, `retrying` or `dead_lettered`.
    pub status: String,
    /// Tries so far.
    pub attempts: u32,
    /// The subscriber's last HTTP status, if it answered.
    pub last_status: Option<u16>,
    /// Why the last try failed, if it did.
    pub last_error: Option<String>,
    /// When this entry last changed (ms since the epoch).
    pub at_ms: i64,
}

/// The subscriptions this replica knows, and its recent deliveries.
pub struct Store {
    topic: String,
    /// The topics a subscription may name.
    pub(crate) allowed_topics: Vec<String>,
    log_size: usize,
    subscriptions: RwLock<BTreeMap<String, Subscription>>,
    deliveries: Mutex<HashMap<String, VecDeque<Delivery>>>,
    producer: Producer,
    codec: Codec,
    kafka: KafkaOptions,
    secrets: Secrets,
}

impl Store {
    pub fn new(options: &SubscriptionsOptions, context: &WorkerContext) -> Store {
        Store {
            topic: options.subscriptions_topic.clone(),
            allowed_topics: options.topics.clone(),
            log_size: options.delivery_log.max(1),
            subscriptions: RwLock::default(),
            deliveries: Mutex::default(),
            producer: context.producer.clone(),
            codec: context.codec.clone(),
            kafka: context.kafka.clone(),
            secrets: context.secrets.clone(),
        }
    }

    /// Stores `subscription` durably, then knows it here.
    pub async fn create(&self, subscription: Subscription) -> Result<(), Error> {
        let payload = self
            .codec
            .encode(&subscription)
            .map_err(|err| self.error(err))?;
        let record: FutureRecord<'_, str, [u8]> = FutureRecord::to(&self.topic)
            .key(subscription.id.as_str())
            .payload(payload.as_slice());
        self.producer
            .rdkafka()
            .send(record, Timeout::After(Duration::from_secs(10)))
            .await
            .map_err(|(err, _)| self.error(err))?;
        info!(subscription = %subscription.id, url = %subscription.url, "subscription created");
        self.insert(subscription);
        Ok(())
    }

    /// Deletes subscription `id` durably (a tombstone); false if there was none.
    pub async fn delete(&self, id: &str) -> Result<bool, Error> {
        if self.get(id).is_none() {
            return Ok(false);
        }
        let record: FutureRecord<'_, str, [u8]> = FutureRecord::to(&self.topic).key(id);
        self.producer
            .rdkafka()
            .send(record, Timeout::After(Duration::from_secs(10)))
            .await
            .map_err(|(err, _)| self.error(err))?;
        info!(subscription = %id, "subscription deleted");
        self.remove(id);
        Ok(true)
    }

    pub fn get(&self, id: &str) -> Option<Subscription> {
        self.read().get(id).cloned()
    }

    /// Every subscription, by id.
    pub fn list(&self) -> Vec<Subscription> {
        self.read().values().cloned().collect()
    }

    /// The recent deliveries to subscription `id`, newest first.
    pub fn deliveries(&self, id: &str) -> Vec<Delivery> {
        let logs = self.deliveries.lock().unwrap_or_else(|p| p.into_inner());
        logs.get(id)
            .map(|log| log.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    /// Records `delivery` for `subscription`, replacing the entry of the same webhook id.
    pub(crate) fn log(&self, subscription: &str, delivery: Delivery) {
        let mut logs = self.deliveries.lock().unwrap_or_else(|p| p.into_inner());
        let log = logs.entry(subscription.to_string()).or_default();
        log.retain(|entry| entry.webhook_id != delivery.webhook_id);
        log.push_back(delivery);
        while log.len() > self.log_size {
            log.pop_front();
        }
    }

    fn insert(&self, subscription: Subscription) {
        let mut subscriptions = self
            .subscriptions
            .write()
            .unwrap_or_else(|p| p.into_inner());
        subscriptions.insert(subscription.id.clone(), subscription);
    }

    fn remove(&self, id: &str) {
        let mut subscriptions = self
            .subscriptions
            .write()
            .unwrap_or_else(|p| p.into_inner());
        subscriptions.remove(id);
        let mut logs = self.deliveries.lock().unwrap_or_else(|p| p.into_inner());
        logs.remove(id);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Subscription>> {
        self.subscriptions.read().unwrap_or_else(|p| p.into_inner())
    }

    fn error(&self, err: impl std::fmt::Display) -> Error {
        Error::Store {
            topic: self.topic.clone(),
            message: err.to_string(),
        }
    }

    /// Reads the topic to its end (every subscription stored so far), and returns what
    /// follows it from there.
    pub async fn load(self: &std::sync::Arc<Self>) -> Result<Follower, Error> {
        let store = std::sync::Arc::clone(self);
        tokio::task::spawn_blocking(move || Follower::load(store))
            .await
            .map_err(|err| Error::Client(err.to_string()))?
    }

    fn apply(&self, key: Option<&[u8]>, payload: Option<&[u8]>) {
        let Some(id) = key.and_then(|k| std::str::from_utf8(k).ok()) else {
            return;
        };
        match payload {
            None => self.remove(id),
            Some(payload) => match self.codec.decode::<Subscription>(payload) {
                Ok(subscription) if subscription.id == id => self.insert(subscription),
                Ok(_) => {
                    warn!(subscription = %id, "a subscription whose key is not its id; ignored")
                }
                Err(err) => warn!(subscription = %id, %err, "an undecodable subscription; ignored"),
            },
        }
    }
}

/// The subscriptions topic's reader: assigned every partition (no group, nothing committed).
pub struct Follower {
    store: std::sync::Arc<Store>,
    consumer: BaseConsumer,
}

impl Follower {
    fn load(store: std::sync::Arc<Store>) -> Result<Follower, Error> {
        let mut config = store
            .kafka
            .base_config("subscriptions-store", &store.secrets)
            .map_err(|err| store.error(err))?;
        // librdkafka wants a group id; nothing is committed under it.
        config
            .set(
                "group.id",
                format!("chatgptd-subscriptions-store-{}", uuid::Uuid::new_v4()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        let consumer: BaseConsumer = config.create().map_err(|err| store.error(err))?;
        let metadata = consumer
            .fetch_metadata(Some(&store.topic), LOAD_TIMEOUT)
            .map_err(|err| store.error(err))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(store.error("no such topic (run `chatgptd topics apply`)"));
        }
        let mut assignment = TopicPartitionList::new();
        let mut ends = HashMap::new();
        for partition in partitions {
            assignment
                .add_partition_offset(&store.topic, partition, Offset::Beginning)
                .map_err(|err| store.error(err))?;
            let (low, high) = consumer
                .fetch_watermarks(&store.topic, partition, LOAD_TIMEOUT)
                .map_err(|err| store.error(err))?;
            // An empty partition (or one compacted empty) has nothing to wait for.
            if high > low {
                ends.insert(partition, high);
            }
        }
        consumer
            .assign(&assignment)
            .map_err(|err| store.error(err))?;
        let follower = Follower { store, consumer };
        let started = std::time::Instant::now();
        // Positions reached per partition; done when each is at its end of the load.
        let mut positions: HashMap<i32, i64> = HashMap::new();
        let caught_up = |positions: &HashMap<i32, i64>| {
            ends.iter()
                .all(|(p, end)| positions.get(p).is_some_and(|at| at >= end))
        };
        while !caught_up(&positions) {
            if started.elapsed() > LOAD_TIMEOUT {
                return Err(follower.store.error("not read to its end in time"));
            }
            match follower.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => {
                    positions.insert(message.partition(), message.offset() + 1);
                    follower.store.apply(message.key(), message.payload());
                }
                Some(Err(err)) => debug!(%err, "subscriptions store: consumer error"),
                None => {}
            }
        }
        info!(
            subscriptions = follower.store.read().len(),
            "subscriptions loaded"
        );
        Ok(follower)
    }

    /// Applies what other replicas store until `shutdown`.
    pub fn follow(self, shutdown: &CancellationToken) {
        while !shutdown.is_cancelled() {
            match self.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => self.store.apply(message.key(), message.payload()),
                Some(Err(err)) => debug!(%err, "subscriptions store: consumer error"),
                None => {}
            }
        }
    }
}
