//! State shared by the polling thread, the rebalance callbacks and the record tasks.
//!
//! Each assigned partition has its own librdkafka queue (split off before the assignment is
//! applied), read only while the partition has room below its in-flight bound. Backpressure
//! is simply not reading: librdkafka keeps prefetching into that queue up to its own limits
//! (`queued.max.messages.kbytes`, per partition once queues are split), so a partition with
//! room again has records at hand instead of waiting for a fresh fetch, which brokers that
//! hold empty fetches (the mock cluster, tansu) answer only after `fetch.wait.max.ms`.
//!
//! The polling thread reads partitions when librdkafka says a queue has records; a record
//! task that completes a record reads its partition's next records itself, with no hop
//! through the polling thread. Completed offsets are handed to librdkafka once per polling
//! round, not per record. One mutex guards it all: every critical section is a few map
//! operations and local librdkafka calls that do not wait on the network.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use rdkafka::consumer::base_consumer::PartitionQueue;
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

/// A partition's own librdkafka queue.
pub(crate) type Queue = PartitionQueue<RuntimeContext>;

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
    /// The partition's own queue. `None` only if it could not be split off, which happens
    /// only while the consumer closes: a partition never split before then sends its records
    /// through the consumer's queue, and is paused at its bound instead.
    queue: Option<Queue>,
    /// The committable offset not yet handed to librdkafka.
    unstored: Option<i64>,
}

impl Assigned {
    /// Reads the partition's queue while it has room. Returns the records that may start and
    /// how many were admitted.
    fn read(
        &mut self,
        partition: &TopicPartition,
        max_in_flight: usize,
        ordered_by_key: bool,
        starts: &mut Vec<LaneStart>,
    ) -> usize {
        if self.revoking || self.stopped.is_some() {
            return 0;
        }
        let mut admitted = 0;
        while self.state.in_flight() < max_in_flight {
            let Some(queue) = &self.queue else {
                break;
            };
            let message = match queue.poll(Duration::ZERO) {
                None => break,
                Some(Ok(message)) => message.detach(),
                // librdkafka reports it to the context's error callback too.
                Some(Err(err)) => {
                    debug!(%err, topic = %partition.0, partition = partition.1, "consumer error on the partition's queue");
                    continue;
                }
            };
            match self.admit(partition, message, ordered_by_key) {
                Some(start) => {
                    admitted += 1;
                    starts.extend(start);
                }
                None => continue,
            }
        }
        admitted
    }

    /// Admits one record. `None`: seen before, ignored; `Some(None)`: queued behind its key.
    fn admit(
        &mut self,
        partition: &TopicPartition,
        message: OwnedMessage,
        ordered_by_key: bool,
    ) -> Option<Option<LaneStart>> {
        let offset = message.offset();
        let key = if ordered_by_key { message.key() } else { None };
        let lane = LaneKey::of(key, offset);
        let previous_offset = self.state.last_admitted();
        let admitted = Admitted {
            message,
            previous_offset,
        };
        match self.state.admit(offset, lane.clone(), admitted) {
            Admission::Start(admitted) => Some(Some(LaneStart {
                partition: partition.clone(),
                epoch: self.epoch,
                lane,
                admitted,
                cancel: self.cancel.clone(),
            })),
            Admission::Queued => Some(None),
            Admission::Duplicate => {
                debug!(topic = %partition.0, partition = partition.1, offset, "record seen before, ignored");
                None
            }
        }
    }
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
    /// Drains waiting for completions: only then is `completed` signalled.
    draining: usize,
}

impl Inner {
    /// Drops a partition's entry, if any: its tasks stop and its records leave the count.
    fn forget(&mut self, partition: &TopicPartition) {
        if let Some(entry) = self.partitions.remove(partition) {
            entry.cancel.cancel();
            self.in_flight -= entry.state.in_flight().min(self.in_flight);
        }
    }
}

/// See the module docs.
pub(crate) struct Coordinator {
    max_in_flight: usize,
    /// Same-key records wait for each other; false gives every record a lane of its own.
    ordered_by_key: bool,
    inner: Mutex<Inner>,
    /// Signalled whenever a record completes, so drains can wait for in-flight work.
    completed: Condvar,
    /// Not ready while a partition is stopped, saying which and why.
    stopped_readiness: Readiness,
    /// The consumer, once it exists, for record tasks and rebalance callbacks alike. Weak:
    /// the consumer owns its context, which holds this, and tasks must never keep a closed
    /// consumer alive.
    consumer: OnceLock<Weak<BaseConsumer<RuntimeContext>>>,
    /// Looked up once: they are set every polling round.
    gauges: Gauges,
}

/// The worker's partition gauges.
struct Gauges {
    in_flight: metrics::Gauge,
    paused: metrics::Gauge,
    stopped: metrics::Gauge,
}

impl Coordinator {
    pub fn new(
        worker: &str,
        max_in_flight: usize,
        ordered_by_key: bool,
        stopped_readiness: Readiness,
    ) -> Self {
        let coordinator = Coordinator {
            max_in_flight,
            ordered_by_key,
            inner: Mutex::new(Inner::default()),
            completed: Condvar::new(),
            stopped_readiness,
            consumer: OnceLock::new(),
            gauges: Gauges {
                in_flight: metrics::gauge!(metric::IN_FLIGHT, "worker" => worker.to_string()),
                paused: metrics::gauge!(metric::PAUSED_PARTITIONS, "worker" => worker.to_string()),
                stopped: metrics::gauge!(metric::STOPPED_PARTITIONS, "worker" => worker.to_string()),
            },
        };
        coordinator.report_stopped(&coordinator.lock());
        coordinator
    }

    /// Records the consumer (once, when it is created).
    pub fn set_consumer(&self, consumer: &Arc<BaseConsumer<RuntimeContext>>) {
        let _ = self.consumer.set(Arc::downgrade(consumer));
    }

    /// The consumer, unless it is closed or not created yet.
    pub fn consumer(&self) -> Option<Arc<BaseConsumer<RuntimeContext>>> {
        self.consumer.get().and_then(Weak::upgrade)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than stopping would, so keep going with the data.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Forgets what an earlier assignment of `partitions` left behind (one whose revoke never
    /// came, as when applying it failed): its tasks stop. Called before the partitions' queues
    /// are split again, because dropping the old queue handle turns off the non-empty callback
    /// of the queue the new handle shares, and the partition would then be read only on the
    /// polling thread's round.
    pub fn forget_stale(&self, partitions: &TopicPartitionList) {
        let mut inner = self.lock();
        for element in partitions.elements() {
            inner.forget(&(element.topic().to_string(), element.partition()));
        }
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
    /// `queues` are the partitions' own queues, split off before the assignment was applied.
    pub fn assign(
        &self,
        consumer: &BaseConsumer<RuntimeContext>,
        partitions: &TopicPartitionList,
        mut queues: HashMap<TopicPartition, Queue>,
    ) {
        let mut inner = self.lock();
        for element in partitions.elements() {
            inner.next_epoch += 1;
            let epoch = inner.next_epoch;
            let key = (element.topic().to_string(), element.partition());
            let mut state = PartitionState::default();
            let queue = queues.remove(&key);
            if queue.is_none() {
                warn!(topic = %key.0, partition = key.1, "the partition has no queue of its own: it is paused at its in-flight bound instead");
            }
            if let Err(err) = consumer.resume(&single(&key)) {
                // The gauge then shows the partition as what it still is: paused.
                error!(%err, topic = %key.0, partition = key.1, "could not resume a newly assigned partition; it may stay paused");
                state.paused = true;
            }
            // A stale entry [`forget_stale`](Self::forget_stale) did not see.
            inner.forget(&key);
            inner.partitions.insert(
                key,
                Assigned {
                    state,
                    epoch,
                    cancel: CancellationToken::new(),
                    revoking: false,
                    start: element.offset(),
                    stopped: None,
                    queue,
                    unstored: None,
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

    /// Takes a record that came through the consumer's queue (a partition without a queue of
    /// its own): returns it if it may start now; queues it behind its key otherwise. Pauses
    /// the partition at its in-flight bound.
    pub fn admit(
        &self,
        consumer: &BaseConsumer<RuntimeContext>,
        message: OwnedMessage,
    ) -> Option<LaneStart> {
        let partition = (message.topic().to_string(), message.partition());
        let mut inner = self.lock();
        let Some(assigned) = inner.partitions.get_mut(&partition) else {
            debug!(topic = %partition.0, partition = partition.1, offset = message.offset(), "record for an unassigned partition dropped");
            return None;
        };
        if assigned.revoking {
            return None;
        }
        let start = assigned.admit(&partition, message, self.ordered_by_key)?;
        // A partition with a queue of its own is never paused for room: nothing resumes it.
        if assigned.queue.is_none() && assigned.state.should_pause(self.max_in_flight) {
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
        start
    }

    /// Reads every partition's own queue while the partition has room; returns the records
    /// that may start now.
    pub fn fill(&self) -> Vec<LaneStart> {
        let mut inner = self.lock();
        let mut starts = Vec::new();
        let mut admitted = 0;
        for (partition, assigned) in &mut inner.partitions {
            admitted += assigned.read(
                partition,
                self.max_in_flight,
                self.ordered_by_key,
                &mut starts,
            );
        }
        inner.in_flight += admitted;
        starts
    }

    /// A record finished (outputs acknowledged, or dead-lettered). Notes the offset that is
    /// now safe to commit (see [`store_completed`](Self::store_completed)), and returns the
    /// next record of the same key, if one waits, and the records the room it left lets
    /// start.
    pub fn complete(
        &self,
        consumer: Option<&BaseConsumer<RuntimeContext>>,
        partition: &TopicPartition,
        epoch: u64,
        offset: i64,
        lane: &LaneKey,
    ) -> (Option<Admitted>, Vec<LaneStart>) {
        let mut starts = Vec::new();
        let mut inner = self.lock();
        let Some(assigned) = inner.partitions.get_mut(partition) else {
            return (None, starts);
        };
        if assigned.epoch != epoch {
            return (None, starts);
        }
        let before = assigned.state.in_flight();
        let (commit, next) = assigned.state.complete(offset, lane);
        let completed = before - assigned.state.in_flight();
        if commit.is_some() {
            assigned.unstored = commit;
        }
        let admitted = if assigned.queue.is_some() {
            assigned.read(
                partition,
                self.max_in_flight,
                self.ordered_by_key,
                &mut starts,
            )
        } else {
            if assigned.state.should_resume(self.max_in_flight)
                && !assigned.revoking
                && assigned.stopped.is_none()
                && let Some(consumer) = consumer
            {
                resume(consumer, partition, assigned.state.next_offset());
                assigned.state.paused = false;
            }
            0
        };
        inner.in_flight = inner.in_flight + admitted - completed;
        if inner.draining > 0 {
            self.completed.notify_all();
        }
        (next.map(|(_, admitted)| admitted), starts)
    }

    /// Hands every partition's newly committable offset to librdkafka, in one call, and
    /// updates the gauges. The polling thread calls it once per round.
    pub fn store_completed(&self, consumer: &BaseConsumer<RuntimeContext>) {
        let mut inner = self.lock();
        let mut list = TopicPartitionList::new();
        for (partition, assigned) in &mut inner.partitions {
            if let Some(commit) = assigned.unstored.take() {
                add_offset(&mut list, partition, commit);
            }
        }
        // An offset librdkafka did not take is tried again next round rather than forgotten:
        // the partition may complete nothing more until it is revoked.
        for (partition, commit) in store(consumer, &list) {
            if let Some(assigned) = inner.partitions.get_mut(&partition) {
                assigned.unstored.get_or_insert(commit);
            }
        }
        self.report_gauges(&inner);
    }

    /// Stops starting records of `partitions`, waits up to `deadline` for their in-flight
    /// records to finish (unless the assignment was lost, when waiting is pointless), then
    /// cancels whatever still runs and forgets the partitions. Returns the partitions it held
    /// (a final revoke at close names partitions already drained) and how many records were
    /// abandoned; those were not committed and will be redelivered.
    pub fn drain(
        &self,
        consumer: &BaseConsumer<RuntimeContext>,
        partitions: &[TopicPartition],
        deadline: Duration,
        lost: bool,
    ) -> Drained {
        let started = Instant::now();
        let mut inner = self.lock();
        inner.draining += 1;
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
        inner.draining -= 1;
        let mut drained = Drained::default();
        // What completed is committed with the revoke; a lost assignment commits nothing.
        let mut completed = TopicPartitionList::new();
        let mut was_stopped = false;
        for partition in partitions {
            if let Some(assigned) = inner.partitions.remove(partition) {
                if let (Some(commit), false) = (assigned.unstored, lost) {
                    add_offset(&mut completed, partition, commit);
                }
                assigned.cancel.cancel();
                drained.abandoned += assigned.state.in_flight();
                drained.partitions.push(partition.clone());
                was_stopped |= assigned.stopped.is_some();
            }
        }
        // Not kept on failure: the partitions are gone, and their records are redelivered.
        store(consumer, &completed);
        inner.in_flight -= drained.abandoned.min(inner.in_flight);
        self.report_gauges(&inner);
        // Whoever holds it next finds its offset out of range again, and says so.
        if was_stopped {
            self.report_stopped(&inner);
        }
        drained
    }

    fn report_gauges(&self, inner: &Inner) {
        self.gauges.in_flight.set(inner.in_flight as f64);
        let paused = inner.partitions.values().filter(|a| a.state.paused).count();
        self.gauges.paused.set(paused as f64);
        let stopped = inner
            .partitions
            .values()
            .filter(|a| a.stopped.is_some())
            .count();
        self.gauges.stopped.set(stopped as f64);
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

fn add_offset(list: &mut TopicPartitionList, partition: &TopicPartition, commit: i64) {
    // store_offsets stores exactly what it is given: the next offset to read.
    if let Err(err) = list.add_partition_offset(&partition.0, partition.1, Offset::Offset(commit)) {
        warn!(%err, topic = %partition.0, partition = partition.1, commit, "could not note offset");
    }
}

/// Stores the offsets of `list`; returns those librdkafka did not take (it answers `Ok` when
/// any partition succeeded, and marks each element).
fn store(
    consumer: &BaseConsumer<RuntimeContext>,
    list: &TopicPartitionList,
) -> Vec<(TopicPartition, i64)> {
    if list.count() == 0 {
        return Vec::new();
    }
    if let Err(err) = consumer.store_offsets(list) {
        warn!(%err, "could not store offsets");
    }
    list.elements()
        .iter()
        .filter_map(|element| {
            let Err(err) = element.error() else {
                return None;
            };
            let Offset::Offset(commit) = element.offset() else {
                return None;
            };
            warn!(%err, topic = element.topic(), partition = element.partition(), commit, "could not store offset; trying again");
            Some(((element.topic().to_string(), element.partition()), commit))
        })
        .collect()
}

fn single(partition: &TopicPartition) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    list.add_partition(&partition.0, partition.1);
    list
}
