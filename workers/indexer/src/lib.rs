//! The indexer: MemoryRecords into the search index.
//!
//! Each partition of the memory topic has its own shard (see `chatgptd-search`). A record is
//! done, and its offset stored, only after an index commit includes it; each commit records
//! in its payload where the partition must be read again, and that, not the consumer group's
//! offset, is where a member resumes a partition it is assigned. The index is committed
//! first and offsets stored after, so a crash in between re-reads nothing and loses nothing.
//!
//! Replicas split the partitions like any consumer group; a partition whose shard is new to
//! a member (another replica indexed it before, on another disk) is read from its beginning.

mod knowledge;
mod routes;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use chatgptd_runtime::{
    ConsumerOptions, ConsumerRuntime, Incoming, OutputRecord, ProcessError, Processor, RecordMeta,
    Service, StartAt, WorkerContext,
};
use chatgptd_search::{IndexerOptions, SearchService, ShardSet};
use chatgptd_types::records::MemoryRecord;
use chatgptd_types::topics::names;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

/// How the indexer consumes and writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexerWorkerOptions {
    /// The memory topic.
    pub topic: String,
    /// Consumer settings (group `chatgptd-indexer` by default). Records wait for the next
    /// index commit, so many are in flight at once: the default bound is high.
    pub consumer: ConsumerOptions,
    /// Index location and commit cadence.
    pub index: IndexerOptions,
}

impl Default for IndexerWorkerOptions {
    fn default() -> Self {
        IndexerWorkerOptions {
            topic: names::MEMORY_RECORDS.to_string(),
            consumer: ConsumerOptions {
                max_in_flight_per_partition: 4096,
                ..ConsumerOptions::default()
            },
            index: IndexerOptions::default(),
        }
    }
}

/// Indexes MemoryRecords into the shards of the partitions this member holds.
#[derive(Debug)]
pub struct Indexer {
    shards: Arc<ShardSet>,
}

impl Processor for Indexer {
    type Input = MemoryRecord;

    fn process(
        &self,
        record: &Incoming<MemoryRecord>,
    ) -> impl Future<Output = Result<Vec<OutputRecord>, ProcessError>> + Send {
        let (partition, offset, previous) = (
            record.meta.partition,
            record.meta.offset,
            record.meta.previous_offset,
        );
        let value = record.value.clone();
        async move {
            self.shards
                .index(partition, value, offset, previous)
                .await
                .map_err(|err| match err {
                    // The shard could not be opened at assignment: wait, never dead-letter.
                    chatgptd_search::Error::NotOpen(_) => {
                        ProcessError::unavailable("index_not_open", err.to_string())
                    }
                    // Tantivy fails on its disk or its writer, not on a record: a record
                    // dead-lettered here would be a hole in the index until replayed.
                    other => ProcessError::unavailable("index", other.to_string()),
                })?;
            Ok(Vec::new())
        }
    }

    /// Order does not matter: documents are upserted by id.
    fn ordered_by_key(&self) -> bool {
        false
    }

    fn start_offsets(&self, partitions: &[(String, i32)]) -> Vec<Option<StartAt>> {
        partitions
            .iter()
            .map(|(topic, partition)| match self.open_shard(topic, *partition) {
                Ok(Some(next_offset)) => Some(StartAt::Offset(next_offset)),
                Ok(None) => Some(StartAt::Beginning),
                Err(err) => {
                    // Records of this partition wait (unavailable) rather than be lost, until
                    // the next rebalance (a restart) opens the shard again.
                    error!(%topic, partition, %err, "cannot open the index shard; its partition waits");
                    None
                }
            })
            .collect()
    }

    fn dead_lettered(&self, meta: &RecordMeta) {
        self.shards
            .skip(meta.partition, meta.offset, meta.previous_offset);
    }

    fn partitions_revoked(&self, partitions: &[(String, i32)]) {
        for (_, partition) in partitions {
            self.shards.close(*partition);
        }
    }
}

impl Indexer {
    /// Opens a shard, trying again for a few seconds: during a rebalance the previous owner
    /// (another replica on a shared volume) may still hold the shard's writer lock. Runs in
    /// the rebalance callback, so the wait stays well below the session timeout.
    fn open_shard(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, chatgptd_search::Error> {
        let mut waits = [100, 200, 400, 800]
            .map(std::time::Duration::from_millis)
            .into_iter();
        loop {
            match self.shards.open(partition) {
                Ok(start) => return Ok(start),
                Err(err) => match waits.next() {
                    Some(wait) => {
                        warn!(%topic, partition, %err, ?wait, "cannot open the index shard yet; trying again");
                        std::thread::sleep(wait);
                    }
                    None => return Err(err),
                },
            }
        }
    }
}

/// The indexer worker: the consumer and the loop that commits the shards.
pub struct IndexerService {
    runtime: ConsumerRuntime<Indexer>,
    shards: Arc<ShardSet>,
    /// `/search` over the shards this indexer writes.
    search: Arc<SearchService>,
    /// Where `POST /knowledge` sends documents: the topic this indexer reads.
    knowledge: knowledge::KnowledgeApi,
}

impl IndexerService {
    /// An indexer writing under `index_root` (`<data_dir>/index` unless configured).
    pub fn new(
        options: &IndexerWorkerOptions,
        index_root: &Path,
        context: &WorkerContext,
    ) -> Result<Self, chatgptd_runtime::Error> {
        let shards = ShardSet::new(index_root, &options.topic, options.index.clone());
        let search = Arc::new(SearchService::new(&chatgptd_search::topic_dir(
            index_root,
            &options.topic,
        )));
        let indexer = Indexer {
            shards: shards.clone(),
        };
        let runtime = ConsumerRuntime::new(
            Self::NAME,
            context,
            options.consumer.clone(),
            vec![options.topic.clone()],
            indexer,
        )?;
        Ok(IndexerService {
            runtime,
            shards,
            search,
            knowledge: knowledge::KnowledgeApi {
                producer: context.producer.clone(),
                codec: context.codec.clone(),
                topic: options.topic.clone(),
            },
        })
    }

    /// The shards this indexer writes (their committed positions tell how far it got).
    pub fn shards(&self) -> Arc<ShardSet> {
        self.shards.clone()
    }

    /// Search over this indexer's shards, as `/search` serves it; the process's other
    /// workers search through the same one.
    pub fn search(&self) -> Arc<SearchService> {
        self.search.clone()
    }
}

impl Service for IndexerService {
    type Error = chatgptd_runtime::Error;
    const NAME: &'static str = "indexer";

    fn routes(&self) -> chatgptd_runtime::http::Routes {
        routes::router(self.search.clone(), self.knowledge.clone())
    }

    /// Indexes until `shutdown`. The committer outlives the consumer: records being drained
    /// at shutdown are waiting for a commit.
    async fn run(self, shutdown: CancellationToken) -> Result<(), chatgptd_runtime::Error> {
        let committer_stop = CancellationToken::new();
        let committer = tokio::spawn(
            self.shards
                .clone()
                .run_committer(committer_stop.clone().cancelled_owned()),
        );
        let result = self.runtime.run(shutdown).await;
        committer_stop.cancel();
        let _ = committer.await;
        let shards = self.shards.clone();
        let _ = tokio::task::spawn_blocking(move || shards.commit_all()).await;
        result
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chatgptd_search::{IndexerOptions, ShardSet};

    use super::*;

    /// The previous owner still holds the shard's writer lock when the partition is
    /// assigned, and lets go a moment later: the shard opens, instead of its partition
    /// waiting for the next rebalance.
    #[test]
    fn a_shard_locked_at_assignment_opens_once_released() {
        let root = tempfile::tempdir().unwrap();
        let shards = ShardSet::new(root.path(), "memory.records", IndexerOptions::default());
        shards.open(0).unwrap();
        shards.close(0);
        let dir = chatgptd_search::topic_dir(root.path(), "memory.records").join("0");
        let index = tantivy::Index::open_in_dir(&dir).unwrap();
        let writer: tantivy::IndexWriter = index.writer(15_000_000).unwrap();
        let indexer = Indexer {
            shards: shards.clone(),
        };
        assert!(shards.open(0).is_err(), "locked: a single try fails");
        let holder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(writer);
        });
        let starts = indexer.start_offsets(&[("memory.records".to_string(), 0)]);
        holder.join().unwrap();
        assert!(
            matches!(starts[0], Some(StartAt::Beginning | StartAt::Offset(_))),
            "{starts:?}"
        );
    }
}
