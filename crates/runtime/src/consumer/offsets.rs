//! Where partitions start, and what happens when that place no longer exists.
//!
//! With `offset_reset = "error"` (the default) librdkafka's `auto.offset.reset` is `error`,
//! which covers two cases: a partition the group never committed, and a committed offset out
//! of range (the broker's retention deleted records before they were processed, or the topic
//! was recreated). The first is normal for a new group, so the runtime chooses its start
//! itself at assignment: the beginning. The second stops the partition: librdkafka stops
//! fetching it (a seek can no longer start it, only a new assignment), and the runtime pauses
//! it, says which and why in the logs, on `/readyz` and in a metric, and commits nothing
//! past it, so records are never skipped without someone deciding to.
//!
//! rdkafka hands the error over without its partition (`MessageConsumption(AutoOffsetReset)`),
//! so the runtime finds it: every partition it holds is compared with the broker's watermarks,
//! at the offset it fetches from (the position, or where it started). The same check runs
//! after every assignment, because not every broker reports a fetch out of range (tansu
//! answers a fetch beyond the end with no records, where Kafka answers with an error). Both
//! run on the polling thread: a round trip per partition while the others wait, on a
//! rebalance or that error only.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{error, info, warn};

use super::context::RuntimeContext;
use super::coordinator::Coordinator;
use crate::telemetry::metric;

/// How long to wait for the group coordinator's committed offsets or a partition's watermarks.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Partitions of `assignment` that start from the group's committed offset (no start set)
/// and have none start at the beginning: a new group reads everything, by choice rather than
/// by `auto.offset.reset`. Runs in the rebalance callback, before the assignment is applied.
pub(crate) fn start_uncommitted_at_beginning(
    consumer: &BaseConsumer<RuntimeContext>,
    worker: &str,
    assignment: &mut TopicPartitionList,
) {
    let mut from_group = TopicPartitionList::new();
    for element in assignment.elements() {
        if matches!(element.offset(), Offset::Invalid | Offset::Stored) {
            from_group.add_partition(element.topic(), element.partition());
        }
    }
    if from_group.count() == 0 {
        return;
    }
    let committed = match consumer.committed_offsets(from_group, LOOKUP_TIMEOUT) {
        Ok(committed) => committed,
        Err(err) => {
            // librdkafka looks them up again; a partition without one then stops, reported.
            error!(worker, %err, "could not read the group's committed offsets: a partition without one will stop instead of starting at its beginning");
            return;
        }
    };
    for element in committed.elements() {
        if element.offset() != Offset::Invalid {
            continue;
        }
        let (topic, partition) = (element.topic(), element.partition());
        match assignment.set_partition_offset(topic, partition, Offset::Beginning) {
            Ok(()) => {
                info!(
                    worker,
                    topic, partition, "no committed offset: starting at the beginning"
                )
            }
            Err(err) => {
                warn!(worker, %err, topic, partition, "could not set the start at the beginning")
            }
        }
    }
}

/// librdkafka reported an offset it could not fetch from (`auto.offset.reset=error`).
pub(crate) fn reset_error(
    consumer: &BaseConsumer<RuntimeContext>,
    coordinator: &Coordinator,
    worker: &str,
) {
    // None found, and none stopped before (two partitions out of range are both found on
    // the first error, or at assignment): the partition could not be identified.
    if stop_out_of_range(consumer, coordinator, worker) == 0 && !coordinator.any_stopped() {
        error!(
            worker,
            "a partition's offset is out of range, but which one could not be told: it fetches nothing until it is assigned again"
        );
    }
}

/// Finds the partitions whose
/// offset is out of range, and stops each (see the module docs). Returns how many it stopped.
pub(crate) fn stop_out_of_range(
    consumer: &BaseConsumer<RuntimeContext>,
    coordinator: &Coordinator,
    worker: &str,
) -> usize {
    let running = coordinator.running();
    let positions = consumer.position().unwrap_or_default();
    let mut from_group = TopicPartitionList::new();
    for candidate in &running {
        from_group.add_partition(&candidate.partition.0, candidate.partition.1);
    }
    let committed = consumer
        .committed_offsets(from_group, LOOKUP_TIMEOUT)
        .map_err(|err| warn!(worker, %err, "could not read the group's committed offsets"))
        .ok();
    // Without them, a partition that has none cannot be told from one not looked up.
    let committed_known = committed.is_some();
    let committed = committed.unwrap_or_default();
    let offset_of = |list: &TopicPartitionList, (topic, partition): &(String, i32)| match list
        .find_partition(topic, *partition)
        .map(|e| e.offset())
    {
        Some(Offset::Offset(offset)) => Some(offset),
        _ => None,
    };

    let mut stopped = 0;
    for candidate in running {
        let tp = &candidate.partition;
        let committed = offset_of(&committed, tp);
        // Records are handed over in order, and the error after every record fetched before
        // it: the position, once there is one, is where fetching stopped.
        let at = match (offset_of(&positions, tp), candidate.start) {
            (Some(position), _) => Some(position),
            (None, Offset::Offset(start)) => Some(start),
            // The beginning always exists.
            (None, Offset::Beginning) => continue,
            (None, _) => committed,
        };
        let (low, high) = match consumer.fetch_watermarks(&tp.0, tp.1, LOOKUP_TIMEOUT) {
            Ok(watermarks) => watermarks,
            Err(err) => {
                warn!(worker, %err, topic = %tp.0, partition = tp.1, "could not read the partition's watermarks");
                continue;
            }
        };
        let shown = |offset: Option<i64>| offset.map_or("none".to_string(), |o| o.to_string());
        let reason = match at {
            Some(at) if at < low || at > high => format!(
                "{}/{} stopped: offset {at} is out of range (the partition holds {low}..{high}, \
                 committed offset {}): records were deleted before they were processed, or the \
                 topic was recreated; move the group's offset deliberately and restart",
                tp.0,
                tp.1,
                shown(committed)
            ),
            Some(_) => continue,
            None if !committed_known => continue,
            None => format!(
                "{}/{} stopped: no committed offset and no start chosen (the partition holds \
                 {low}..{high}); restart to look the committed offset up again",
                tp.0, tp.1
            ),
        };
        if coordinator.stop(consumer, tp, candidate.epoch, reason.clone()) {
            stopped += 1;
            error!(worker, topic = %tp.0, partition = tp.1, offset = ?at, committed = %shown(committed), low, high, reason, "partition stopped: its offset is out of range; nothing past it is processed or committed");
            metrics::counter!(metric::PARTITIONS_STOPPED, "worker" => worker.to_string(), "topic" => tp.0.clone())
                .increment(1);
        }
    }
    stopped
}
