//! State shared by the polling thread, the rebalance callbacks and the record tasks.
//!
//! The polling thread admits records; record tasks complete them; rebalance callbacks (which
//! librdkafka runs on the polling thread) drain partitions. One mutex guards it all: every
//! critical section is a few map operations, and `store_offsets`, `pause` and `resume` are
//! local librdkafka calls that do not wait on the network.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use super::context::RuntimeContext;
use super::partition::{Admission, LaneKey, PartitionState};
use crate::health::Readiness;
use crate::telemetry::metric;

/// Topic and partition.
pub(crate) type TopicPartition = (String, i32);

/// What a drain did.
#[derive(Debug, Default)]
pub(crate) struct Drained {
    /// The partitions that were held, now forgotten.
    pub partitions: Vec<TopicPartition>,
    /// Records not finished in time: not committed, to be redelivered.
    pub abandoned: usize,
}

/// A record taken from the partition, and the record taken before it.
pub(crate) struct Admitted {
    pub message: OwnedMessage,
    /// The offset of the record admitted just before this one in the same partition since
    /// the assignment (`None` for the first). Offsets are not contiguous (compaction,
    /// transaction markers); this link is what lets a processor know it has everything.
    pub previous_offset: Option<i64>,
}

/// A record that may start now, and what its task needs to report back.
pub(crate) struct LaneStart {
    pub partition: TopicPartition,
    pub epoch: u64,
    pub lane: LaneKey,
    pub admitted: Admitted,
    pub cancel: CancellationToken,
}

struct Assigned {
    state: PartitionState<Admitted>,
    /// Changes on every assignment, so a task from before a revoke cannot touch the state of
    /// a later assignment of the same partition.
    epoch: u64,
    /// Cancelled when the partition is taken away before its records finish.
    cancel: CancellationToken,
    /// Set while draining: records polled now are not started.
    revoking: bool,
    /// Where the assignment said to start: a logical offset (stored, beginning) or a number.
    start: Offset,
    /// Why the partition was stopped for good (its offset out of range), if it was: paused
    /// and never resumed while this member holds it.
    stopped: Option<String>,
}

/// A partition fetching, as the out-of-range check needs it.
pub(crate) struct Running {
    pub partition: TopicPartition,
    pub epoch: u64,
    pub start: Offset,
}

#[derive(Default)]
struct Inner {
    partitions: HashMap<TopicPartition, Assigned>,
    next_epoch: u64,
    in_flight: usize,
}

/// See the module docs.
pub(crate) struct Coordinator {
    worker: String,
    max_in_flight: usize,
    /// Same-key records wait for each other; false gives every record a lane of its own.
    ordered_by_key: bool,
    inner: Mutex<Inner>,
    /// Signalled whenever a record completes, so drains can wait for in-flight work.
    completed: Condvar,
    /// Not ready while a partition is stopped, saying which and why.
    stopped_readiness: Readiness,
}

impl Coordinator {
    pub fn new(
        worker: &str,
        max_in_flight: usize,
        ordered_by_key: bool,
        stopped_readiness: Readiness,
    ) -> Self {
        let coordinator = Coordinator {
            worker: worker.to_string(),
            max_in_flight,
            ordered_by_key,
            inner: Mutex::new(Inner::default()),
            completed: Condvar::new(),
            stopped_readiness,
        };
        coordinator.report_stopped(&coordinator.lock());
        coordinator
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than stopping would, so keep going with the data.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Partitions were assigned to this member (and the assignment applied): each starts
    /// afresh, unpaused.
    ///
    /// librdkafka keeps the application's pause flag of a partition across unassign and
    /// assign, so a partition paused at its in-flight bound, revoked, and assigned back to
    /// this member would stay paused: nothing in flight means no completion to resume it, and
    /// it would never be fetched again. So every newly assigned partition is resumed here
    /// (a no-op for one that was not paused). Only the partitions named: under the
    /// cooperative protocol the ones kept across the rebalance keep their live state.
    pub fn assign(&self, consumer: &BaseConsumer<RuntimeContext>, partitions: &TopicPartitionList) {
        let mut inner = self.lock();
        for element in partitions.elements() {
            inner.next_epoch += 1;
            let epoch = inner.next_epoch;
            let key = (element.topic().to_string(), element.partition());
            let mut state = PartitionState::default();
            if let Err(err) = consumer.resume(&single(&key)) {
                // The gauge then shows the partition as what it still is: paused.
                error!(%err, topic = %key.0, partition = key.1, "could not resume a newly assigned partition; it may stay paused");
                state.paused = true;
            }
            inner.partitions.insert(
                key,
                Assigned {
                    state,
                    epoch,
                    cancel: CancellationToken::new(),
                    revoking: false,
                    start: element.offset(),
                    stopped: None,
                },
            );
        }
        self.report_gauges(&inner);
    }

    /// Partitions currently assigned.
    pub fn assigned(&self) -> Vec<TopicPartition> {
        self.lock().partitions.keys().cloned().collect()
    }

    /// Assigned partitions neither stopped nor being revoked, with where each started.
    pub fn running(&self) -> Vec<Running> {
        self.lock()
            .partitions
            .iter()
            .filter(|(_, a)| a.stopped.is_none() && !a.revoking)
            .map(|(partition, a)| Running {
                partition: partition.clone(),
                epoch: a.epoch,
                start: a.start,
            })
            .collect()
    }

    /// Whether some partition this member holds is stopped.
    pub fn any_stopped(&self) -> bool {
        self.lock().partitions.values().any(|a| a.stopped.is_some())
    }

    /// Stops a partition for good while this member holds it: paused, never resumed, and
    /// reported on `/readyz` with `reason`. False if it was stopped already, or is no longer
    /// the assignment `epoch` names.
    pub fn stop(
        &self,
        consumer: &BaseConsumer<RuntimeContext>,
        partition: &TopicPartition,
        epoch: u64,
        reason: String,
    ) -> bool {
        let mut inner = self.lock();
        let Some(assigned) = inner.partitions.get_mut(partition) else {
            return false;
        };
        if assigned.epoch != epoch || assigned.stopped.is_some() {
            return false;
        }
        // librdkafka already stopped fetching it; the pause keeps a later resume or seek of
        // ours from starting it again.
        if let Err(err) = consumer.pause(&single(partition)) {
            warn!(%err, topic = %partition.0, partition = partition.1, "could not pause a stopped partition");
        }
        assigned.state.paused = true;
        assigned.stopped = Some(reason);
        self.report_gauges(&inner);
        self.report_stopped(&inner);
        true
    }

    /// Takes a polled record: returns it if it may start now; queues it behind its key
    /// otherwise. Pauses the partition at its in-flight bound.
    pub fn admit(
        &self,
        consumer: &BaseConsumer<RuntimeContext>,
        message: OwnedMessage,
    ) -> Option<LaneStart> {
        let partition = (message.topic().to_string(), message.partition());
        let offset = message.offset();
        let key = if self.ordered_by_key {
            message.key()
        } else {
            None
        };
        let lane = LaneKey::of(key, offset);
        let mut inner = self.lock();
        let Some(assigned) = inner.partitions.get_mut(&partition) else {
            debug!(topic = %partition.0, partition = partition.1, offset, "record for an unassigned partition dropped");
            return None;
        };
        if assigned.revoking {
            return None;
        }
        let previous_offset = assigned.state.last_admitted();
        let admission = assigned.state.admit(
            offset,
            lane.clone(),
            Admitted {
                message,
                previous_offset,
            },
        );
        let start = match admission {
            Admission::Start(admitted) => Some(LaneStart {
                partition: partition.clone(),
                epoch: assigned.epoch,
                lane,
                admitted,
                cancel: assigned.cancel.clone(),
            }),
            Admission::Queued => None,
            Admission::Duplicate => {
                debug!(topic = %partition.0, partition = partition.1, offset, "record seen before, ignored");
                return None;
            }
        };
        if assigned.state.should_pause(self.max_in_flight) {
            match consumer.pause(&single(&partition)) {
                Ok(()) => {
                    assigned.state.paused = true;
                    debug!(topic = %partition.0, partition = partition.1, "partition paused at its in-flight bound");
                }
                Err(err) => {
                    warn!(%err, topic = %partition.0, partition = partition.1, "could not pause partition")
                }
            }
        }
        inner.in_flight += 1;
        self.report_gauges(&inner);
        start
    }

    /// A record finished (outputs acknowledged, or dead-lettered). Stores the offset that is
    /// now safe to commit and returns the next record of the same key, if one waits.
    pub fn complete(
        &self,
        consumer: Option<&BaseConsumer<RuntimeContext>>,
        partition: &TopicPartition,
        epoch: u64,
        offset: i64,
        lane: &LaneKey,
    ) -> Option<Admitted> {
        let mut inner = self.lock();
        let assigned = inner.partitions.get_mut(partition)?;
        if assigned.epoch != epoch {
            return None;
        }
        let before = assigned.state.in_flight();
        let (commit, next) = assigned.state.complete(offset, lane);
        let completed = before - assigned.state.in_flight();
        if let (Some(commit), Some(consumer)) = (commit, consumer) {
            let mut list = TopicPartitionList::new();
            // store_offsets stores exactly what it is given: the next offset to read.
            if let Err(err) = list
                .add_partition_offset(&partition.0, partition.1, Offset::Offset(commit))
                .and_then(|()| consumer.store_offsets(&list))
            {
                warn!(%err, topic = %partition.0, partition = partition.1, commit, "could not store offset");
            }
        }
        if assigned.state.should_resume(self.max_in_flight)
            && !assigned.revoking
            && assigned.stopped.is_none()
            && let Some(consumer) = consumer
        {
            resume(consumer, partition, assigned.state.next_offset());
            assigned.state.paused = false;
        }
        inner.in_flight -= completed;
        self.report_gauges(&inner);
        drop(inner);
        self.completed.notify_all();
        next.map(|(_, admitted)| admitted)
    }

    /// Stops starting records of `partitions`, waits up to `deadline` for their in-flight
    /// records to finish (unless the assignment was lost, when waiting is pointless), then
    /// cancels whatever still runs and forgets the partitions. Returns the partitions it held
    /// (a final revoke at close names partitions already drained) and how many records were
    /// abandoned; those were not committed and will be redelivered.
    pub fn drain(&self, partitions: &[TopicPartition], deadline: Duration, lost: bool) -> Drained {
        let started = Instant::now();
        let mut inner = self.lock();
        for partition in partitions {
            if let Some(assigned) = inner.partitions.get_mut(partition) {
                assigned.revoking = true;
            }
        }
        let pending = |inner: &Inner| -> usize {
            partitions
                .iter()
                .filter_map(|p| inner.partitions.get(p))
                .map(|assigned| assigned.state.in_flight())
                .sum()
        };
        while !lost && pending(&inner) > 0 {
            let Some(left) = deadline.checked_sub(started.elapsed()) else {
                break;
            };
            inner = self
                .completed
                .wait_timeout(inner, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        let mut drained = Drained::default();
        let mut was_stopped = false;
        for partition in partitions {
            if let Some(assigned) = inner.partitions.remove(partition) {
                assigned.cancel.cancel();
                drained.abandoned += assigned.state.in_flight();
                drained.partitions.push(partition.clone());
                was_stopped |= assigned.stopped.is_some();
            }
        }
        inner.in_flight -= drained.abandoned.min(inner.in_flight);
        self.report_gauges(&inner);
        // Whoever holds it next finds its offset out of range again, and says so.
        if was_stopped {
            self.report_stopped(&inner);
        }
        drained
    }

    fn report_gauges(&self, inner: &Inner) {
        let labels = [("worker", self.worker.clone())];
        metrics::gauge!(metric::IN_FLIGHT, &labels).set(inner.in_flight as f64);
        let paused = inner.partitions.values().filter(|a| a.state.paused).count();
        metrics::gauge!(metric::PAUSED_PARTITIONS, &labels).set(paused as f64);
        let stopped = inner
            .partitions
            .values()
            .filter(|a| a.stopped.is_some())
            .count();
        metrics::gauge!(metric::STOPPED_PARTITIONS, &labels).set(stopped as f64);
    }

    fn report_stopped(&self, inner: &Inner) {
        let mut reasons: Vec<&str> = inner
            .partitions
            .values()
            .filter_map(|a| a.stopped.as_deref())
            .collect();
        if reasons.is_empty() {
            self.stopped_readiness.set(true, "no partition stopped");
        } else {
            reasons.sort_unstable();
            self.stopped_readiness.set(false, &reasons.join("; "));
        }
    }
}

/// Resumes fetching a paused partition.
///
/// librdkafka's resume only clears the pause flag: its broker thread notices on its next
/// wake-up, up to a second later, and the partition sits idle meanwhile (measured: a slow
/// processor ran at a fifth of its possible rate). A seek to where fetching continues anyway
/// (one past the last record admitted) moves the fetcher through a state change that wakes
/// the broker thread at once. Records fetched twice around the seek are ignored by `admit`.
fn resume(
    consumer: &BaseConsumer<RuntimeContext>,
    partition: &TopicPartition,
    next_offset: Option<i64>,
) {
    if let Err(err) = consumer.resume(&single(partition)) {
        warn!(%err, topic = %partition.0, partition = partition.1, "could not resume partition");
        return;
    }
    if let Some(next) = next_offset
        && let Err(err) = consumer.seek(
            &partition.0,
            partition.1,
            Offset::Offset(next),
            Duration::ZERO,
        )
    {
        debug!(%err, topic = %partition.0, partition = partition.1, "seek after resume failed; fetching resumes on the next wake-up");
    }
}

fn single(partition: &TopicPartition) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    list.add_partition(&partition.0, partition.1);
    list
}
