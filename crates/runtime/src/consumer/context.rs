//! librdkafka callbacks: rebalances, statistics, errors.
//!
//! librdkafka runs these on the thread that polls the consumer, our dedicated polling thread,
//! so a revoke may block here while in-flight records drain: processing runs on the tokio
//! runtime and keeps completing meanwhile.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{error, info, warn};

use super::coordinator::{Coordinator, Queue, TopicPartition};
use super::offsets;
use super::options::OffsetReset;
use super::wake::Wake;
use crate::health::Readiness;
use crate::processor::StartAt;
use crate::telemetry::{self, metric};

/// What the processor has to say about partitions coming and going.
pub(crate) trait PartitionHooks: Send + Sync {
    fn start_offsets(&self, partitions: &[TopicPartition]) -> Vec<Option<StartAt>>;
    fn partitions_revoked(&self, partitions: &[TopicPartition]);
}

/// The consumer's context: bridges rebalances to the [`Coordinator`].
pub struct RuntimeContext {
    pub(crate) worker: String,
    pub(crate) coordinator: Arc<Coordinator>,
    pub(crate) drain_timeout: Duration,
    pub(crate) readiness: Readiness,
    pub(crate) hooks: Arc<dyn PartitionHooks>,
    pub(crate) offset_reset: OffsetReset,
    /// Set when librdkafka reports an offset it cannot fetch from; the polling thread, which
    /// holds the consumer, then finds and stops the partition.
    pub(crate) offset_reset_reported: AtomicBool,
    /// Wakes the polling thread when a partition's queue gets records.
    pub(crate) wake: Arc<Wake>,
}

impl RuntimeContext {
    /// Whether librdkafka reported an offset out of range since the last call.
    pub(crate) fn take_offset_reset(&self) -> bool {
        self.offset_reset_reported.swap(false, Ordering::SeqCst)
    }
}

impl RuntimeContext {
    /// Splits each partition of `assignment` onto a queue of its own, before the assignment
    /// is applied so that no record of it reaches the consumer's queue. librdkafka keeps
    /// the split across later assignments; a new queue handle is taken each time.
    fn split_queues(&self, assignment: &TopicPartitionList) -> HashMap<TopicPartition, Queue> {
        // Splitting needs the consumer's `Arc`.
        let Some(consumer) = self.coordinator.consumer() else {
            return HashMap::new();
        };
        partitions_of(assignment)
            .into_iter()
            .filter_map(|partition| {
                let mut queue = consumer.split_partition_queue(&partition.0, partition.1)?;
                let wake = self.wake.clone();
                queue.set_nonempty_callback(move || wake.notify());
                Some((partition, queue))
            })
            .collect()
    }

    /// The assignment was applied: the coordinator takes the partitions and their queues.
    fn assigned(
        &self,
        consumer: &BaseConsumer<Self>,
        assigned: &TopicPartitionList,
        queues: HashMap<TopicPartition, Queue>,
    ) {
        metrics::counter!(metric::REBALANCES, "worker" => self.worker.clone(), "kind" => "assign")
            .increment(1);
        self.coordinator.assign(consumer, assigned, queues);
        // Before the first fetch: not every broker answers a fetch out of range with
        // the error librdkafka reports (tansu waits for records there instead).
        if self.offset_reset == OffsetReset::Error {
            offsets::stop_out_of_range(consumer, &self.coordinator, &self.worker);
        }
        let total = consumer.assignment().map(|list| list.count()).unwrap_or(0);
        info!(worker = %self.worker, added = assigned.count(), total, "partitions assigned");
        // An empty assignment is still a member in good standing (more replicas than
        // partitions): ready means "joined the group".
        self.readiness
            .set(true, &format!("{total} partitions assigned"));
        // Records may already wait in the new queues.
        self.wake.notify();
    }

    /// Applies the processor's own start positions to an assignment before it takes effect.
    fn apply_start_offsets(&self, assignment: &mut TopicPartitionList) {
        let partitions = partitions_of(assignment);
        let starts = self.hooks.start_offsets(&partitions);
        for ((topic, partition), start) in partitions.iter().zip(starts) {
            let offset = match start {
                None => continue,
                Some(StartAt::Beginning) => Offset::Beginning,
                Some(StartAt::Offset(offset)) => Offset::Offset(offset),
            };
            if let Err(err) = assignment.set_partition_offset(topic, *partition, offset) {
                warn!(worker = %self.worker, %err, topic, partition, "could not set the start offset");
            } else {
                info!(worker = %self.worker, topic, partition, ?offset, "starting where the processor left off");
            }
        }
    }
}

impl ClientContext for RuntimeContext {
    fn stats_raw(&self, statistics: &[u8]) {
        telemetry::record_consumer_lag(&self.worker, statistics);
        // Handling an event ends a zero-timeout poll: another round serves any event queued
        // behind it, which raises no new callback (see `poll_loop`).
        self.wake.notify();
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // rdkafka hands `auto.offset.reset=error` over here, without the partition.
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AutoOffsetReset) {
            error!(worker = %self.worker, reason, "librdkafka cannot fetch from a partition's offset; finding which");
            self.offset_reset_reported.store(true, Ordering::SeqCst);
            return;
        }
        warn!(worker = %self.worker, %error, reason, "kafka client error");
    }
}

impl ConsumerContext for RuntimeContext {
    /// rdkafka's default, plus the processor's start offsets written into the assignment
    /// before it is applied (the only moment they can be, without a seek that races the
    /// first fetch).
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        // Another round of the polling thread serves any event queued behind this one.
        self.wake.notify();
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.apply_start_offsets(partitions);
                // `auto.offset.reset=error` would stop a partition the group never
                // committed too: the runtime chooses its start instead.
                if self.offset_reset == OffsetReset::Error {
                    offsets::start_uncommitted_at_beginning(consumer, &self.worker, partitions);
                }
                self.coordinator.forget_stale(partitions);
                let queues = self.split_queues(partitions);
                let assigned = if cooperative {
                    consumer.incremental_assign(partitions)
                } else {
                    consumer.assign(partitions)
                };
                if let Err(err) = assigned {
                    error!(worker = %self.worker, %err, "could not apply the assignment");
                }
                self.assigned(consumer, partitions, queues);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.pre_rebalance(consumer, &Rebalance::Revoke(partitions));
                let revoked = if cooperative {
                    consumer.incremental_unassign(partitions)
                } else {
                    consumer.unassign()
                };
                if let Err(err) = revoked {
                    error!(worker = %self.worker, %err, "could not apply the revocation");
                }
            }
            other => {
                let code: RDKafkaErrorCode = other.into();
                error!(worker = %self.worker, error = %code, "rebalance error; dropping the assignment");
                let dropped = if cooperative {
                    consumer.incremental_unassign(partitions)
                } else {
                    consumer.unassign()
                };
                if let Err(err) = dropped {
                    error!(worker = %self.worker, %err, "could not drop the assignment");
                }
            }
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let partitions = partitions_of(revoked);
        if partitions.is_empty() {
            return;
        }
        metrics::counter!(metric::REBALANCES, "worker" => self.worker.clone(), "kind" => "revoke")
            .increment(1);
        let lost = consumer.assignment_lost();
        let drained = self
            .coordinator
            .drain(consumer, &partitions, self.drain_timeout, lost);
        let abandoned = drained.abandoned;
        if !drained.partitions.is_empty() {
            self.hooks.partitions_revoked(&drained.partitions);
        }
        if lost {
            warn!(worker = %self.worker, partitions = partitions.len(), abandoned, "assignment lost: in-flight records abandoned, not committed");
            return;
        }
        commit_stored(consumer, &self.worker);
        info!(worker = %self.worker, partitions = partitions.len(), abandoned, "partitions revoked after draining");
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        self.wake.notify();
        match result {
            Ok(()) => {
                tracing::trace!(worker = %self.worker, partitions = offsets.count(), "offsets committed")
            }
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(err) => {
                warn!(worker = %self.worker, %err, "offset commit failed; it is retried with the next commit")
            }
        }
    }
}

/// Commits every stored offset and waits for the broker's answer.
pub(crate) fn commit_stored(consumer: &BaseConsumer<RuntimeContext>, worker: &str) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {}
        // Nothing stored since the last commit.
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(err) => {
            warn!(worker, %err, "synchronous commit failed: the records since the last commit will be redelivered")
        }
    }
}

pub(crate) fn partitions_of(list: &TopicPartitionList) -> Vec<TopicPartition> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}
