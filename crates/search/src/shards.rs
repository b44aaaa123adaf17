//! The shards of the partitions this member indexes, and the loop that commits them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatgptd_types::records::MemoryRecord;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::Error;
use crate::shard::Shard;

/// How the indexer writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexerOptions {
    /// How often pending documents are committed. A record is acknowledged (and its offset
    /// stored) only after the commit that includes it, so this is the indexing latency.
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,

    /// Commit early once a shard has this many uncommitted documents.
    pub max_uncommitted_docs: usize,

    /// Tantivy's indexing memory per shard, in bytes (at least 15 MB).
    pub writer_memory_bytes: usize,
}

impl Default for IndexerOptions {
    fn default() -> Self {
        IndexerOptions {
            commit_interval: Duration::from_millis(500),
            max_uncommitted_docs: 10_000,
            writer_memory_bytes: 32 * 1024 * 1024,
        }
    }
}

/// The open shards of one topic, by partition.
pub struct ShardSet {
    topic: String,
    dir: PathBuf,
    options: IndexerOptions,
    shards: Mutex<HashMap<i32, Arc<Shard>>>,
    /// Wakes the committer before its interval when a shard fills up.
    commit_soon: Notify,
}

impl std::fmt::Debug for ShardSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardSet")
            .field("topic", &self.topic)
            .field("dir", &self.dir)
            .finish()
    }
}

impl ShardSet {
    /// Shards of `topic` under `index_root/<topic>/<partition>`.
    pub fn new(
        index_root: &std::path::Path,
        topic: &str,
        options: IndexerOptions,
    ) -> Arc<ShardSet> {
        Arc::new(ShardSet {
            topic: topic.to_string(),
            dir: crate::topic_dir(index_root, topic),
            options,
            shards: Mutex::new(HashMap::new()),
            commit_soon: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Arc<Shard>>> {
        self.shards.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a partition's shard and returns where its last commit says reading resumes
    /// (`None`: the shard is new, read the partition from its beginning). Blocking.
    pub fn open(&self, partition: i32) -> Result<Option<i64>, Error> {
        let dir = self.dir.join(partition.to_string());
        let shard = Shard::open(
            &dir,
            &self.topic,
            partition,
            self.options.writer_memory_bytes,
        )?;
        let start = shard.start();
        info!(topic = %self.topic, partition, resume_at = ?start, dir = %dir.display(), "index shard opened");
        self.lock().insert(partition, Arc::new(shard));
        Ok(start)
    }

    /// Commits and closes a partition's shard (it was revoked). Blocking.
    pub fn close(&self, partition: i32) {
        let Some(shard) = self.lock().remove(&partition) else {
            return;
        };
        if let Err(err) = shard.commit() {
            warn!(topic = %self.topic, partition, %err, "final commit of a revoked shard failed; its records will be read again");
        }
    }

    /// Indexes a record and waits until a commit includes it.
    pub async fn index(
        &self,
        partition: i32,
        record: MemoryRecord,
        offset: i64,
        previous: Option<i64>,
    ) -> Result<(), Error> {
        let shard = self
            .lock()
            .get(&partition)
            .cloned()
            .ok_or(Error::NotOpen(partition))?;
        let generation = shard
            .enqueue(record, offset, previous)
            .await
            .map_err(|_| Error::Index("the shard's adding task ended".to_string()))??;
        if shard.uncommitted() >= self.options.max_uncommitted_docs {
            self.commit_soon.notify_one();
        }
        if shard.committed(generation).await {
            Ok(())
        } else {
            Err(Error::NotOpen(partition))
        }
    }

    /// Moves a partition's position past a record that has no document (dead-lettered).
    pub fn skip(&self, partition: i32, offset: i64, previous: Option<i64>) {
        if let Some(shard) = self.lock().get(&partition) {
            shard.skip(offset, previous);
        }
    }

    /// The committed position of every open shard, by partition.
    pub fn committed_positions(&self) -> HashMap<i32, Option<i64>> {
        self.lock()
            .iter()
            .map(|(partition, shard)| (*partition, shard.committed_position()))
            .collect()
    }

    /// Commits every shard with pending documents. Blocking.
    pub fn commit_all(&self) {
        let shards: Vec<(i32, Arc<Shard>)> =
            self.lock().iter().map(|(p, s)| (*p, s.clone())).collect();
        for (partition, shard) in shards {
            if let Err(err) = shard.commit() {
                warn!(topic = %self.topic, partition, %err, "index commit failed; retrying at the next interval");
            }
        }
    }

    /// Commits pending documents every `commit_interval` (sooner when a shard fills up) until
    /// `stop` resolves. Commits run on blocking threads.
    pub async fn run_committer(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(self.options.commit_interval) => {}
                _ = self.commit_soon.notified() => {}
            }
            let set = self.clone();
            if let Err(err) = tokio::task::spawn_blocking(move || set.commit_all()).await {
                warn!(%err, "index commit task failed");
            }
        }
    }
}
