//! Coalesces the writes of the records in flight into batches, so the backend sends many
//! records' scripts in one round trip ([`Memory::write_records`]) instead of two round trips
//! per record.
//!
//! A write joins a queue; while fewer than `flights` batches are out, a task takes what is
//! queued (up to `MAX_BATCH`) and writes it, then takes what queued meanwhile, until the
//! queue is empty. A lone record is written at once, alone: batching only happens under load.
//! The queue keeps arrival order, and the runtime never has two records of one key (the
//! owner) in flight, so one owner's writes still apply in order.

use std::sync::{Arc, Mutex};

use chatgptd_memory::{Error, Memory, RecordWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// The most records in one batch.
const MAX_BATCH: usize = 128;

struct Queued {
    write: RecordWrite,
    done: oneshot::Sender<Result<(), Error>>,
}

/// Batches writes to one memory backend.
pub(crate) struct Batcher {
    memory: Arc<dyn Memory>,
    queue: Mutex<Vec<Queued>>,
    /// Batches written at once.
    flights: Arc<Semaphore>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("memory", &self.memory)
            .finish()
    }
}

impl Batcher {
    /// Batches into `memory` with at most `flights` batches out at once.
    pub fn new(memory: Arc<dyn Memory>, flights: usize) -> Arc<Batcher> {
        Arc::new(Batcher {
            memory,
            queue: Mutex::new(Vec::new()),
            flights: Arc::new(Semaphore::new(flights.max(1))),
        })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Queued>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `write` with whatever else is in flight; resolves with its own outcome.
    pub async fn write(self: &Arc<Self>, write: RecordWrite) -> Result<(), Error> {
        let (done, result) = oneshot::channel();
        self.queue().push(Queued { write, done });
        self.start_flight();
        // The flight is a task of its own: a caller that gives up does not strand the others.
        result.await.unwrap_or_else(|_| {
            Err(Error::Unavailable(
                "the memory write was dropped before it finished".to_string(),
            ))
        })
    }

    /// Starts a flight if one is free and something is queued.
    fn start_flight(self: &Arc<Self>) {
        if self.queue().is_empty() {
            return;
        }
        let Ok(permit) = self.flights.clone().try_acquire_owned() else {
            // Every flight is out; each takes the queue again when its batch is done.
            return;
        };
        tokio::spawn(self.clone().fly(permit));
    }

    /// Writes batches until the queue is empty.
    async fn fly(self: Arc<Self>, permit: OwnedSemaphorePermit) {
        loop {
            let batch: Vec<Queued> = {
                let mut queue = self.queue();
                let take = queue.len().min(MAX_BATCH);
                queue.drain(..take).collect()
            };
            if batch.is_empty() {
                break;
            }
            let (writes, waiters): (Vec<RecordWrite>, Vec<_>) = batch
                .into_iter()
                .map(|queued| (queued.write, queued.done))
                .unzip();
            let results = self.memory.write_records(&writes).await;
            for (waiter, result) in waiters.into_iter().zip(results) {
                let _ = waiter.send(result);
            }
        }
        drop(permit);
        // A write queued between the last look and the permit's release found every flight
        // out: start one for it.
        self.start_flight();
    }
}

#[cfg(test)]
mod tests {
    use chatgptd_memory::{HistoryEntry, HistoryLimits, SqliteMemory, StateEntry};

    use super::*;

    fn write(owner: usize, n: i64) -> RecordWrite {
        RecordWrite {
            owner: format!("owner-{owner}"),
            entry: HistoryEntry {
                id: format!("{owner}-{n}"),
                role: "user".to_string(),
                text: format!("text {n}"),
                at_ms: n,
                attributes: Default::default(),
            },
            limits: HistoryLimits { cap: 10, ttl: None },
            state: StateEntry {
                version: n,
                value: serde_json::json!(n),
            },
            state_ttl: None,
        }
    }

    /// Many owners writing at once, each owner's records one after the other as the runtime
    /// sends them: every write lands, in order, once, with fewer flights than writers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_each_land_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let memory: Arc<dyn Memory> = Arc::new(
            SqliteMemory::open(&dir.path().join("memory.db"), "test")
                .await
                .unwrap(),
        );
        let batcher = Batcher::new(memory.clone(), 2);
        let owners: Vec<_> = (0..40)
            .map(|owner| {
                let batcher = batcher.clone();
                tokio::spawn(async move {
                    for n in 1..=5 {
                        batcher.write(write(owner, n)).await.unwrap();
                    }
                })
            })
            .collect();
        for owner in owners {
            owner.await.unwrap();
        }
        for owner in 0..40 {
            let name = format!("owner-{owner}");
            let history = memory.history(&name, 10).await.unwrap();
            let ids: Vec<String> = history.into_iter().map(|entry| entry.id).collect();
            let expected: Vec<String> = (1..=5).map(|n| format!("{owner}-{n}")).collect();
            assert_eq!(ids, expected);
            assert_eq!(memory.state(&name).await.unwrap().unwrap().version, 5);
        }
        assert!(batcher.queue().is_empty());
    }
}
