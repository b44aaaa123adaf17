//! Knowing when the replayer has caught up: the end of each partition is taken when the run
//! starts, and the run is over when every partition's processed offset reaches it. The same
//! positions give the letters done of the total, which `chatgptd dlq replay` draws.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Letters read of the letters to read, for whoever shows progress. Shared, lock-free: the
/// replayer writes it, a progress bar reads it.
#[derive(Debug, Default)]
pub struct Tally {
    done: AtomicU64,
    total: AtomicU64,
}

impl Tally {
    /// (letters read, letters to read); the total is 0 until the run has read the topic's ends.
    pub fn get(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}

/// Where a partition starts, ends, and has got to.
#[derive(Debug, Clone, Copy)]
struct Span {
    end: i64,
    /// One past the highest offset handled (or the start).
    next: i64,
}

/// Offsets still to reach, per partition.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Partition → its span. Removed once its end is reached.
    remaining: Mutex<HashMap<i32, Span>>,
    tally: Arc<Tally>,
}

impl Progress {
    /// Reads the topic's end offsets and where `group` will start, so partitions with nothing
    /// to do are done already.
    pub fn start(
        config: &ClientConfig,
        topic: &str,
        group: &str,
        tally: Arc<Tally>,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let timeout = Duration::from_secs(10);
        let mut config = config.clone();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false");
        let consumer: BaseConsumer = config.create()?;
        let watermarks = chatgptd_runtime::admin::watermarks(&consumer, topic, timeout)?;
        let mut list = TopicPartitionList::new();
        for (partition, _, _) in &watermarks {
            list.add_partition(topic, *partition);
        }
        let committed = consumer.committed_offsets(list, timeout)?;
        let mut remaining = HashMap::new();
        let mut total = 0;
        for (partition, low, high) in watermarks {
            let start = committed
                .find_partition(topic, partition)
                .and_then(|e| match e.offset() {
                    Offset::Offset(offset) => Some(offset),
                    _ => None,
                })
                .unwrap_or(low)
                .max(low);
            if start < high {
                remaining.insert(
                    partition,
                    Span {
                        end: high,
                        next: start,
                    },
                );
                total += (high - start) as u64;
            }
        }
        tally.total.store(total, Ordering::Relaxed);
        Ok(Progress {
            remaining: Mutex::new(remaining),
            tally,
        })
    }

    /// Records that the record at `offset` of `partition` was handled.
    pub fn handled(&self, partition: i32, offset: i64) {
        let mut remaining = self.remaining.lock().unwrap_or_else(|p| p.into_inner());
        let Some(span) = remaining.get_mut(&partition) else {
            return;
        };
        // A retried record, or one handled before a lower offset of another key, moves
        // nothing back.
        let next = (offset + 1).min(span.end);
        if next > span.next {
            self.tally
                .done
                .fetch_add((next - span.next) as u64, Ordering::Relaxed);
            span.next = next;
        }
        if span.next >= span.end {
            remaining.remove(&partition);
        }
    }

    /// Whether every partition reached its end.
    pub fn caught_up(&self) -> bool {
        self.remaining
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_counts_each_offset_once_and_caught_up_follows_the_ends() {
        let tally = Arc::new(Tally::default());
        tally.total.store(5, Ordering::Relaxed);
        let progress = Progress {
            remaining: Mutex::new(HashMap::from([
                (0, Span { end: 13, next: 10 }),
                (1, Span { end: 2, next: 0 }),
            ])),
            tally: tally.clone(),
        };
        progress.handled(0, 10);
        progress.handled(0, 10); // a retry
        progress.handled(1, 0);
        assert_eq!(tally.get(), (2, 5));
        progress.handled(0, 12); // offset 11 was another key's, handled later
        progress.handled(0, 11);
        assert_eq!(tally.get(), (4, 5));
        assert!(!progress.caught_up());
        progress.handled(1, 1);
        assert_eq!(tally.get(), (5, 5));
        assert!(progress.caught_up());
    }
}
