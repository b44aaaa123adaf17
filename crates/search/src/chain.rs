//! Which records of a partition the index holds without a gap.
//!
//! Records are indexed concurrently, so they are added out of order, and offsets have gaps
//! (compaction, transaction markers). Each record arrives with the offset of the record taken
//! before it from the same partition since the assignment; following those links from the
//! first record gives the longest run the index holds in full. Its end is the position
//! written into each index commit: reading the partition again from there misses nothing.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The payload of an index commit: where to read the partition from next time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Positions {
    /// The memory topic.
    pub topic: String,
    /// The partition this shard indexes.
    pub partition: i32,
    /// Every record before this offset is in the index.
    pub next_offset: i64,
}

/// The gap-free run of added records, from the links between them.
#[derive(Debug, Default)]
pub(crate) struct Chain {
    /// The position of the last commit, before anything was added.
    start: Option<i64>,
    /// The last record of the gap-free run.
    last: Option<i64>,
    /// Records added ahead of the run, by the offset of the record before them.
    waiting: HashMap<i64, i64>,
}

impl Chain {
    /// A chain continuing from a committed position (`None`: nothing committed yet).
    pub fn new(start: Option<i64>) -> Self {
        Chain {
            start,
            ..Chain::default()
        }
    }

    /// Records that `offset` is in the index; `previous` is the offset of the record before
    /// it (`None` for the first record since the assignment: every record before it is
    /// indexed already or no longer in the partition).
    pub fn add(&mut self, offset: i64, previous: Option<i64>) {
        match previous {
            None => {
                if self.last.is_none_or(|last| offset > last) {
                    self.last = Some(offset);
                }
            }
            Some(previous) if self.last == Some(previous) => self.last = Some(offset),
            Some(previous) if self.last.is_some_and(|last| previous < last) => {}
            Some(previous) => {
                self.waiting.insert(previous, offset);
            }
        }
        while let Some(next) = self.last.and_then(|last| self.waiting.remove(&last)) {
            self.last = Some(next);
        }
    }

    /// Where to read from next: one past the run, or the committed start.
    pub fn next_offset(&self) -> Option<i64> {
        self.last.map(|last| last + 1).or(self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_adds_extend_the_run_once_the_gap_closes() {
        let mut chain = Chain::new(Some(10));
        assert_eq!(chain.next_offset(), Some(10));
        chain.add(12, Some(11));
        chain.add(14, Some(12)); // offset 13 does not exist: 14 follows 12
        assert_eq!(chain.next_offset(), Some(10), "11 is missing");
        chain.add(11, Some(10));
        assert_eq!(chain.next_offset(), Some(10), "10 is missing");
        chain.add(10, None);
        assert_eq!(chain.next_offset(), Some(15));
    }

    #[test]
    fn the_first_record_starts_the_run() {
        let mut chain = Chain::new(None);
        assert_eq!(chain.next_offset(), None);
        chain.add(500, None);
        assert_eq!(chain.next_offset(), Some(501));
        chain.add(501, Some(500));
        assert_eq!(chain.next_offset(), Some(502));
    }
}
