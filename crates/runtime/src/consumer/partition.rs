//! The bookkeeping of one assigned partition: which offsets are done, which keys are busy.
//!
//! Pure logic, no Kafka: the consumer calls [`PartitionState::admit`] for each record it polls
//! and [`PartitionState::complete`] when a record is fully processed (outputs acknowledged or
//! dead-lettered). From that it learns
//! - whether the record may start now or must wait behind an earlier record with its key
//!   (per-key order, concurrency across keys), and
//! - the offset that is now safe to commit: one past the longest run of completed records at
//!   the head of the partition, so an offset is never committed past unfinished work.

use std::collections::{HashMap, VecDeque};

/// Which lane a record runs in. Records with a key are ordered by key; records without a key
/// promise no order (Kafka spreads them over partitions), so each gets a lane of its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LaneKey {
    /// The record's key.
    Key(Vec<u8>),
    /// A record without a key, identified by its offset.
    Unkeyed(i64),
}

impl LaneKey {
    /// The lane of a record with this key and offset.
    pub fn of(key: Option<&[u8]>, offset: i64) -> Self {
        match key {
            Some(key) => LaneKey::Key(key.to_vec()),
            None => LaneKey::Unkeyed(offset),
        }
    }
}

/// What happened to a polled record.
#[derive(Debug, PartialEq)]
pub enum Admission<R> {
    /// Its key was idle: start processing it now.
    Start(R),
    /// An earlier record with its key is still running: it waits in that key's lane.
    Queued,
    /// Already seen (a rewind after an error): ignored, the earlier copy is tracked.
    Duplicate,
}

/// The state of one assigned partition. `R` is whatever the caller needs to process a record.
#[derive(Debug)]
pub struct PartitionState<R> {
    /// Offsets admitted and not yet committable, in order, with whether each is done.
    offsets: VecDeque<(i64, bool)>,
    /// Busy keys, each with the records waiting behind the one running.
    lanes: HashMap<LaneKey, VecDeque<(i64, R)>>,
    /// Highest offset admitted, to spot rewinds.
    last_admitted: Option<i64>,
    /// Records admitted and not completed (running or queued).
    in_flight: usize,
    /// Whether the consumer has paused fetching this partition.
    pub paused: bool,
}

impl<R> Default for PartitionState<R> {
    fn default() -> Self {
        PartitionState {
            offsets: VecDeque::new(),
            lanes: HashMap::new(),
            last_admitted: None,
            in_flight: 0,
            paused: false,
        }
    }
}

impl<R> PartitionState<R> {
    /// Records admitted and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The last record admitted since the assignment.
    pub fn last_admitted(&self) -> Option<i64> {
        self.last_admitted
    }

    /// The offset fetching continues from: one past the last record admitted.
    pub fn next_offset(&self) -> Option<i64> {
        self.last_admitted.map(|last| last + 1)
    }

    /// Busy keys (running now).
    pub fn busy_lanes(&self) -> usize {
        self.lanes.len()
    }

    /// Takes a polled record.
    pub fn admit(&mut self, offset: i64, lane: LaneKey, record: R) -> Admission<R> {
        if self.last_admitted.is_some_and(|last| offset <= last) {
            return Admission::Duplicate;
        }
        self.last_admitted = Some(offset);
        self.offsets.push_back((offset, false));
        self.in_flight += 1;
        match self.lanes.get_mut(&lane) {
            Some(waiting) => {
                waiting.push_back((offset, record));
                Admission::Queued
            }
            None => {
                self.lanes.insert(lane, VecDeque::new());
                Admission::Start(record)
            }
        }
    }

    /// Marks `offset` (which ran in `lane`) done. Returns the offset now safe to commit, if it
    /// moved, and the next record of the same lane to start, if one is waiting.
    pub fn complete(&mut self, offset: i64, lane: &LaneKey) -> (Option<i64>, Option<(i64, R)>) {
        let Ok(index) = self.offsets.binary_search_by_key(&offset, |(o, _)| *o) else {
            // Not ours (a completion from before a reassignment): nothing to do.
            return (None, None);
        };
        if self.offsets[index].1 {
            return (None, None);
        }
        self.offsets[index].1 = true;
        self.in_flight -= 1;

        let mut commit = None;
        while let Some(&(head, true)) = self.offsets.front() {
            self.offsets.pop_front();
            commit = Some(head + 1);
        }

        let next = match self.lanes.get_mut(lane) {
            Some(waiting) => match waiting.pop_front() {
                Some(next) => Some(next),
                None => {
                    self.lanes.remove(lane);
                    None
                }
            },
            None => None,
        };
        (commit, next)
    }

    /// Fetching should pause: the partition holds `max_in_flight` records.
    pub fn should_pause(&self, max_in_flight: usize) -> bool {
        !self.paused && self.in_flight >= max_in_flight
    }

    /// Fetching may resume. Half the bound, not just below it, so a slow partition does not
    /// flap between paused and resumed on every completion (each resume refetches).
    pub fn should_resume(&self, max_in_flight: usize) -> bool {
        self.paused && self.in_flight <= max_in_flight / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> LaneKey {
        LaneKey::Key(k.as_bytes().to_vec())
    }

    #[test]
    fn commits_only_the_completed_prefix() {
        let mut state = PartitionState::default();
        for offset in 0..4 {
            assert_eq!(
                state.admit(offset, key(&format!("k{offset}")), offset),
                Admission::Start(offset)
            );
        }
        // 1 and 2 finish first: nothing is committable while 0 runs.
        assert_eq!(state.complete(1, &key("k1")), (None, None));
        assert_eq!(state.complete(2, &key("k2")), (None, None));
        // 0 finishes: 0, 1 and 2 are done, so the commit position is 3.
        assert_eq!(state.complete(0, &key("k0")), (Some(3), None));
        assert_eq!(state.complete(3, &key("k3")), (Some(4), None));
        assert_eq!(state.in_flight(), 0);
    }

    #[test]
    fn same_key_records_run_one_after_another() {
        let mut state = PartitionState::default();
        assert_eq!(state.admit(10, key("a"), "a1"), Admission::Start("a1"));
        assert_eq!(state.admit(11, key("a"), "a2"), Admission::Queued);
        assert_eq!(state.admit(12, key("b"), "b1"), Admission::Start("b1"));
        assert_eq!(state.admit(13, key("a"), "a3"), Admission::Queued);
        assert_eq!(state.busy_lanes(), 2);

        assert_eq!(state.complete(10, &key("a")), (Some(11), Some((11, "a2"))));
        assert_eq!(state.complete(12, &key("b")), (None, None));
        assert_eq!(state.complete(11, &key("a")), (Some(13), Some((13, "a3"))));
        assert_eq!(state.complete(13, &key("a")), (Some(14), None));
        assert_eq!(state.busy_lanes(), 0);
    }

    #[test]
    fn unkeyed_records_do_not_wait_for_each_other() {
        let mut state = PartitionState::default();
        assert_eq!(state.admit(0, LaneKey::of(None, 0), 0), Admission::Start(0));
        assert_eq!(state.admit(1, LaneKey::of(None, 1), 1), Admission::Start(1));
    }

    #[test]
    fn rewinds_and_double_completions_are_ignored() {
        let mut state = PartitionState::default();
        assert_eq!(state.admit(5, key("a"), ()), Admission::Start(()));
        assert_eq!(state.admit(5, key("a"), ()), Admission::Duplicate);
        assert_eq!(state.admit(4, key("b"), ()), Admission::Duplicate);
        assert_eq!(state.complete(5, &key("a")), (Some(6), None));
        assert_eq!(state.complete(5, &key("a")), (None, None));
        assert_eq!(state.complete(99, &key("z")), (None, None));
        assert_eq!(state.in_flight(), 0);
    }

    #[test]
    fn pauses_at_the_bound_and_resumes_at_half() {
        let mut state = PartitionState::default();
        for offset in 0..4 {
            state.admit(offset, key("same"), ());
        }
        assert!(state.should_pause(4));
        state.paused = true;
        assert!(!state.should_pause(4));
        state.complete(0, &key("same"));
        assert!(!state.should_resume(4), "3 in flight is above half of 4");
        state.complete(1, &key("same"));
        assert!(state.should_resume(4));
    }

    /// Random interleavings: the commit position never passes an unfinished record, and every
    /// key's records start in offset order.
    #[test]
    fn random_interleavings_keep_both_invariants() {
        use rand::{Rng, SeedableRng};
        for seed in 0..200u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut state = PartitionState::default();
            let mut running: Vec<(i64, LaneKey)> = Vec::new();
            let mut started: HashMap<LaneKey, Vec<i64>> = HashMap::new();
            let mut done = std::collections::BTreeSet::new();
            let mut next_offset = 0i64;
            let mut committed = 0i64;
            for _ in 0..300 {
                if rng.random_bool(0.5) && next_offset < 150 {
                    let lane = key(&format!("k{}", rng.random_range(0..5)));
                    if let Admission::Start(offset) =
                        state.admit(next_offset, lane.clone(), next_offset)
                    {
                        started.entry(lane.clone()).or_default().push(offset);
                        running.push((offset, lane));
                    }
                    next_offset += 1;
                } else if !running.is_empty() {
                    let (offset, lane) = running.swap_remove(rng.random_range(0..running.len()));
                    done.insert(offset);
                    let (commit, next) = state.complete(offset, &lane);
                    if let Some(commit) = commit {
                        assert!(commit > committed, "commit moves forward");
                        assert!(
                            (committed..commit).all(|o| done.contains(&o)),
                            "seed {seed}"
                        );
                        committed = commit;
                    }
                    if let Some((next, _)) = next {
                        started.entry(lane.clone()).or_default().push(next);
                        running.push((next, lane));
                    }
                }
            }
            for offsets in started.values() {
                assert!(
                    offsets.windows(2).all(|w| w[0] < w[1]),
                    "per-key order, seed {seed}"
                );
            }
        }
    }
}
