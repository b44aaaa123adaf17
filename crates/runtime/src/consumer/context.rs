//! librdkafka callbacks: rebalances, statistics, errors.
//!
//! librdkafka runs these on the thread that polls the consumer, our dedicated polling thread,
//! so a revoke may block here while in-flight records drain: processing runs on the tokio
//! runtime and keeps completing meanwhile.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::{ClientContext, TopicPartitionList};
use tracing::{info, warn};

use super::coordinator::{Coordinator, TopicPartition};
use crate::health::Readiness;
use crate::telemetry::{self, metric};

/// The consumer's context: bridges rebalances to the [`Coordinator`].
pub struct RuntimeContext {
    pub(crate) worker: String,
    pub(crate) coordinator: Arc<Coordinator>,
    pub(crate) drain_timeout: Duration,
    pub(crate) readiness: Readiness,
}

impl ClientContext for RuntimeContext {
    fn stats_raw(&self, statistics: &[u8]) {
        telemetry::record_consumer_lag(&self.worker, statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        warn!(worker = %self.worker, %error, reason, "kafka client error");
    }
}

impl ConsumerContext for RuntimeContext {
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
        let abandoned = self
            .coordinator
            .drain(&partitions, self.drain_timeout, lost);
        if lost {
            warn!(worker = %self.worker, partitions = partitions.len(), abandoned, "assignment lost: in-flight records abandoned, not committed");
            return;
        }
        commit_stored(consumer, &self.worker);
        info!(worker = %self.worker, partitions = partitions.len(), abandoned, "partitions revoked after draining");
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(assigned) => {
                metrics::counter!(metric::REBALANCES, "worker" => self.worker.clone(), "kind" => "assign").increment(1);
                self.coordinator.assign(assigned);
                let total = consumer.assignment().map(|list| list.count()).unwrap_or(0);
                info!(worker = %self.worker, added = assigned.count(), total, "partitions assigned");
                // An empty assignment is still a member in good standing (more replicas than
                // partitions): ready means "joined the group".
                self.readiness
                    .set(true, &format!("{total} partitions assigned"));
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(err) => warn!(worker = %self.worker, %err, "rebalance error"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
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
