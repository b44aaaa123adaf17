//! The consumer runtime: runs a [`Processor`] over a Kafka consumer group, at least once.
//!
//! ```text
//!  polling thread ──fill──▶ Coordinator ──start──▶ record tasks (tokio) ──complete──▶ Coordinator
//!   (rebalance callbacks,   per partition: its     decode, process,       notes the committable
//!    woken by librdkafka    own queue, offsets,    produce, ack / DLQ     offset, reads the
//!    when a queue fills)    key lanes                                     partition's next records
//! ```
//!
//! - A dedicated thread polls, so the consumer keeps polling however slow processing is, and
//!   rebalance callbacks may block while in-flight records drain.
//! - Records with the same key run in order; different keys run concurrently, up to
//!   `max_in_flight_per_partition` per partition. A partition at its bound is not read:
//!   its records wait in its own librdkafka queue, bounded by `queued.max.messages.kbytes`.
//! - An offset is stored only when its record and all earlier records of its partition are
//!   done: outputs acknowledged by the broker, or the record dead-lettered.
//! - On revoke and shutdown: no new records, in-flight ones get `drain_timeout`, then a
//!   synchronous commit.

mod context;
mod coordinator;
mod handler;
mod offsets;
mod options;
pub mod partition;
mod wake;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chatgptd_types::Secrets;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use context::RuntimeContext;
pub use options::{ConsumerOptions, OffsetReset};

use self::context::commit_stored;
use self::coordinator::Coordinator;
use self::handler::RecordHandler;
use self::options::{AUTO_OFFSET_RESET, auto_offset_reset_is_an_option};
use self::wake::Wake;
use crate::health::Readiness;
use crate::kafka::{KafkaOptions, millis};
use crate::processor::Processor;
use crate::{Error, WorkerContext};

/// How long the polling thread sleeps when nothing wakes it; bounds how quickly it notices
/// shutdown, and how long a completed offset may wait to be stored.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// librdkafka's bound on what it prefetches, per partition once queues are split.
const QUEUED_KBYTES: &str = "queued.max.messages.kbytes";
/// librdkafka prefetches up to this much per partition (its own default, 64 MiB, applies per
/// partition once queues are split): enough to keep a partition busy across fetches,
/// bounded whatever the input rate. `properties` may set another.
const QUEUED_KBYTES_PER_PARTITION: &str = "4096";
/// Consumer events handled per round before the partitions are read again.
const EVENTS_PER_ROUND: usize = 64;
/// How long to wait for cluster metadata when checking topics at start.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// A processor bound to a consumer group: build with [`ConsumerRuntime::new`], then `run`.
pub struct ConsumerRuntime<P: Processor> {
    handler: Arc<RecordHandler<P>>,
    kafka: KafkaOptions,
    secrets: Secrets,
    topics: Vec<String>,
    readiness: Readiness,
}

impl<P: Processor> ConsumerRuntime<P> {
    /// Binds `processor` to `topics`. `worker` names the worker kind in logs, metrics and the
    /// default group id.
    pub fn new(
        worker: &str,
        context: &WorkerContext,
        mut options: ConsumerOptions,
        topics: Vec<String>,
        processor: P,
    ) -> Result<Self, Error> {
        options.validate()?;
        if options.group_id.is_empty() {
            options.group_id = format!("chatgptd-{worker}");
        }
        if let Some(warning) = options.poll_interval_warning() {
            warn!(worker, "{warning}");
        }
        // Handles kept by the runtime bind to the recorder installed when they are made.
        crate::telemetry::install_prometheus();
        let coordinator = Arc::new(Coordinator::new(
            worker,
            options.max_in_flight_per_partition,
            processor.ordered_by_key(),
            context.health.register(format!("partitions:{worker}")),
        ));
        let handler = Arc::new(RecordHandler {
            worker: worker.to_string(),
            processor,
            producer: context.producer.clone(),
            codec: context.codec.clone(),
            options,
            coordinator,
            processing_seconds: metrics::histogram!(crate::telemetry::metric::PROCESSING_SECONDS, "worker" => worker.to_string()),
            records_in: crate::telemetry::TopicCounters::new(
                crate::telemetry::metric::RECORDS_IN,
                worker,
            ),
            records_out: crate::telemetry::TopicCounters::new(
                crate::telemetry::metric::RECORDS_OUT,
                worker,
            ),
        });
        let readiness = context.health.register(format!("consumer:{worker}"));
        Ok(ConsumerRuntime {
            handler,
            kafka: context.kafka.clone(),
            secrets: context.secrets.clone(),
            topics,
            readiness,
        })
    }

    /// The librdkafka config: defaults, the user's properties, then what at-least-once needs.
    fn consumer_config(&self) -> Result<ClientConfig, Error> {
        let options = &self.handler.options;
        // Built on the base config itself: a copy of its `config_map()` would carry
        // rdkafka's placeholder instead of each secret.
        let mut config = self
            .kafka
            .base_config(&self.handler.worker, &self.secrets)?;
        for (key, value) in &options.properties {
            config.set(key, value);
        }
        if config.get(AUTO_OFFSET_RESET).is_some() {
            return Err(auto_offset_reset_is_an_option());
        }
        if config.get(QUEUED_KBYTES).is_none() {
            config.set(QUEUED_KBYTES, QUEUED_KBYTES_PER_PARTITION);
        }
        config
            .set("group.id", &options.group_id)
            // A committed offset out of range stops its partition (`error`, the default)
            // rather than skipping records nobody processed; see `offsets`.
            .set(AUTO_OFFSET_RESET, options.offset_reset.as_str())
            // Offsets are stored by the runtime, only for completed prefixes; librdkafka
            // commits what is stored in the background and we commit synchronously on revoke.
            .set("enable.auto.offset.store", "false")
            .set("enable.auto.commit", "true")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", millis(options.session_timeout))
            .set("max.poll.interval.ms", millis(options.max_poll_interval));
        Ok(config)
    }

    /// Consumes until `shutdown` is cancelled, then drains and commits.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let worker = self.handler.worker.clone();
        let context = RuntimeContext {
            worker: worker.clone(),
            coordinator: self.handler.coordinator.clone(),
            drain_timeout: self.handler.options.drain_timeout,
            readiness: self.readiness.clone(),
            hooks: self.handler.clone(),
            offset_reset: self.handler.options.offset_reset,
            offset_reset_reported: AtomicBool::new(false),
            wake: Arc::new(Wake::default()),
        };
        let mut consumer: BaseConsumer<RuntimeContext> = self
            .consumer_config()?
            .create_with_context(context)
            .map_err(Error::kafka("creating the consumer"))?;
        // Rebalances and errors arrive on the consumer's own queue.
        let wake = consumer.context().wake.clone();
        consumer.set_nonempty_callback(move || wake.notify());
        let consumer = Arc::new(consumer);
        self.handler.coordinator.set_consumer(&consumer);

        let checked = consumer.clone();
        // The outputs and the dead-letter topic too: without them the first record that
        // needs one would hold its partition.
        let mut topics = self.topics.clone();
        for topic in self
            .handler
            .processor
            .output_topics()
            .into_iter()
            .chain([self.handler.options.dead_letter_topic.clone()])
        {
            if !topics.contains(&topic) {
                topics.push(topic);
            }
        }
        let brokers = self.kafka.brokers.clone();
        tokio::task::spawn_blocking(move || check_topics_exist(&checked, &topics, &brokers))
            .await
            .map_err(|err| Error::ConsumerThread(err.to_string()))??;

        let topic_refs: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topic_refs)
            .map_err(Error::kafka("subscribing"))?;
        info!(worker, group = %self.handler.options.group_id, topics = ?self.topics, "consumer started");

        let stop = Arc::new(AtomicBool::new(false));
        let runtime = tokio::runtime::Handle::current();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let thread_stop = stop.clone();
        let handler = self.handler.clone();
        let readiness = self.readiness.clone();
        std::thread::Builder::new()
            .name(format!("poll-{worker}"))
            .spawn(move || {
                poll_loop(&consumer, &handler, &runtime, &thread_stop);
                shut_down(consumer, &handler, &readiness);
                let _ = done_tx.send(());
            })
            .map_err(Error::Io)?;

        shutdown.cancelled().await;
        info!(worker, "shutting down: draining in-flight records");
        stop.store(true, Ordering::SeqCst);
        done_rx
            .await
            .map_err(|_| Error::ConsumerThread("the polling thread panicked".into()))?;
        info!(worker, "consumer stopped");
        Ok(())
    }
}

fn poll_loop<P: Processor>(
    consumer: &BaseConsumer<RuntimeContext>,
    handler: &Arc<RecordHandler<P>>,
    runtime: &tokio::runtime::Handle,
    stop: &AtomicBool,
) {
    let coordinator = &handler.coordinator;
    let wake = consumer.context().wake.clone();
    while !stop.load(Ordering::SeqCst) {
        // Events (rebalances run here) and the records of any partition without its own queue.
        let mut busy = false;
        for _ in 0..EVENTS_PER_ROUND {
            match consumer.poll(Duration::ZERO) {
                None => break,
                Some(Ok(message)) => {
                    busy = true;
                    if let Some(start) = coordinator.admit(consumer, message.detach()) {
                        runtime.spawn(handler.clone().run_lane(start));
                    }
                }
                // rdkafka 0.39 reports it to the context's error callback; as a consumer error
                // in case another version hands it over here.
                Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => {
                    offsets::reset_error(consumer, coordinator, &handler.worker);
                }
                Some(Err(err)) => warn!(worker = %handler.worker, %err, "consumer error"),
            }
        }
        for start in coordinator.fill() {
            busy = true;
            runtime.spawn(handler.clone().run_lane(start));
        }
        coordinator.store_completed(consumer);
        if consumer.context().take_offset_reset() {
            offsets::reset_error(consumer, coordinator, &handler.worker);
        }
        if !busy {
            wake.wait(POLL_INTERVAL);
        }
    }
}

/// Drains every partition, commits, and closes the consumer (which leaves the group).
fn shut_down<P: Processor>(
    consumer: Arc<BaseConsumer<RuntimeContext>>,
    handler: &RecordHandler<P>,
    readiness: &Readiness,
) {
    readiness.set(false, "shutting down");
    // No new fetches: the poll loop has stopped, and paused partitions fetch nothing; records
    // already in a partition's queue may still start until the drain below marks it.
    if let Ok(assignment) = consumer.assignment() {
        let _ = consumer.pause(&assignment);
    }
    let partitions = handler.coordinator.assigned();
    let drained =
        handler
            .coordinator
            .drain(&consumer, &partitions, handler.options.drain_timeout, false);
    handler.processor.partitions_revoked(&drained.partitions);
    let abandoned = drained.abandoned;
    if abandoned > 0 {
        warn!(worker = %handler.worker, abandoned, "drain deadline passed: unfinished records will be redelivered");
    }
    commit_stored(&consumer, &handler.worker);
    // Record tasks hold only weak references, upgraded for a moment while they complete a
    // record: once those moments pass, this is the last one, and dropping it here closes the
    // consumer (the final, now empty, revoke; leaving the group) before `run` returns.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while Arc::strong_count(&consumer) > 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(consumer);
}

fn check_topics_exist(
    consumer: &BaseConsumer<RuntimeContext>,
    topics: &[String],
    brokers: &str,
) -> Result<(), Error> {
    let metadata = consumer
        .fetch_metadata(None, METADATA_TIMEOUT)
        .map_err(Error::kafka(format!(
            "reading cluster metadata from {brokers}"
        )))?;
    let existing: Vec<&str> = metadata.topics().iter().map(|t| t.name()).collect();
    let missing: Vec<&str> = topics
        .iter()
        .map(String::as_str)
        .filter(|t| !existing.contains(t))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::MissingTopics {
            brokers: brokers.to_string(),
            missing: missing.join(", "),
        })
    }
}
