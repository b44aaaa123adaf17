//! One partition's index, on the writing side.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use chatgptd_types::records::MemoryRecord;
use tantivy::{Index, IndexWriter, Term, directory::MmapDirectory};
use tokio::sync::{oneshot, watch};
use tracing::debug;

use crate::Error;
use crate::chain::{Chain, Positions};
use crate::knowledge;
use crate::schema::Fields;

/// Commits made by every shard of this process: searchers of this process reload when it
/// moves (`search.rs`), so a search sees what was committed before it, at once.
static COMMITS: AtomicU64 = AtomicU64::new(0);

/// Commits made by this process's shards so far.
pub(crate) fn commits() -> u64 {
    COMMITS.load(Ordering::SeqCst)
}

/// A partition's shard: a Tantivy index and its writer.
///
/// Adding returns a commit generation; [`Shard::committed`] resolves once a commit of that
/// generation (or a later one) is durable. A document added while a commit is being prepared
/// is given the next generation even if the commit happens to include it: waiting one commit
/// too long is harmless, acknowledging an uncommitted document is not.
pub(crate) struct Shard {
    topic: String,
    partition: i32,
    fields: Fields,
    /// Adds share it; a commit takes it alone.
    writer: RwLock<IndexWriter>,
    state: Mutex<ShardState>,
    /// The last committed generation.
    committed: watch::Sender<u64>,
    /// Documents added since the last commit, to commit early under load.
    uncommitted: AtomicUsize,
    /// Where reading resumed when the shard was opened.
    start: Option<i64>,
    /// The position in the last commit's payload (-1: none yet).
    committed_position: AtomicI64,
    /// The offset of the knowledge record whose chunks each source's documents are, held
    /// while a source's chunks are replaced: records are indexed concurrently, and an older
    /// version of a document must not replace a newer one.
    knowledge: Mutex<HashMap<String, i64>>,
    /// Records waiting for their document to be added, in arrival order.
    queue: Mutex<Vec<Queued>>,
    /// A blocking task is adding what is queued.
    adding: AtomicBool,
}

/// A record waiting to be added, and who waits for its generation.
struct Queued {
    record: MemoryRecord,
    offset: i64,
    previous: Option<i64>,
    added: oneshot::Sender<Result<u64, Error>>,
}

struct ShardState {
    chain: Chain,
    /// The generation documents added now will be committed in.
    pending_generation: u64,
    /// Something was added (or a position moved) since the last commit.
    dirty: bool,
}

impl Shard {
    /// Opens the shard in `dir`, creating it if needed, and reads its commit payload.
    pub fn open(
        dir: &Path,
        topic: &str,
        partition: i32,
        writer_memory_bytes: usize,
    ) -> Result<Shard, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|err| Error::Index(format!("{}: {err}", dir.display())))?;
        let directory = MmapDirectory::open(dir).map_err(|err| Error::Index(err.to_string()))?;
        let (schema, _) = Fields::schema();
        let index = Index::open_or_create(directory, schema)?;
        let fields = Fields::of(&index.schema())?;
        let start = index
            .load_metas()?
            .payload
            .and_then(|payload| serde_json::from_str::<Positions>(&payload).ok())
            .filter(|positions| positions.topic == topic && positions.partition == partition)
            .map(|positions| positions.next_offset);
        let writer = index.writer_with_num_threads(1, writer_memory_bytes)?;
        Ok(Shard {
            topic: topic.to_string(),
            partition,
            fields,
            writer: RwLock::new(writer),
            state: Mutex::new(ShardState {
                chain: Chain::new(start),
                pending_generation: 1,
                dirty: false,
            }),
            committed: watch::Sender::new(0),
            uncommitted: AtomicUsize::new(0),
            start,
            committed_position: AtomicI64::new(start.unwrap_or(-1)),
            knowledge: Mutex::new(HashMap::new()),
            queue: Mutex::new(Vec::new()),
            adding: AtomicBool::new(false),
        })
    }

    /// Where the last commit says reading must resume (`None`: nothing committed).
    pub fn start(&self) -> Option<i64> {
        self.start
    }

    /// Queues a record's document; the receiver resolves with its commit generation once it
    /// is added. One blocking task adds everything queued, as a batch, instead of a blocking
    /// task per record: adding a document takes microseconds, handing it to a thread more.
    pub fn enqueue(
        self: &Arc<Self>,
        record: MemoryRecord,
        offset: i64,
        previous: Option<i64>,
    ) -> oneshot::Receiver<Result<u64, Error>> {
        let (added, receiver) = oneshot::channel();
        self.lock_queue().push(Queued {
            record,
            offset,
            previous,
            added,
        });
        if !self.adding.swap(true, Ordering::AcqRel) {
            let shard = self.clone();
            tokio::task::spawn_blocking(move || shard.add_queued());
        }
        receiver
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Vec<Queued>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds what is queued until the queue stays empty. Blocking.
    fn add_queued(&self) {
        loop {
            let batch = std::mem::take(&mut *self.lock_queue());
            if batch.is_empty() {
                self.adding.store(false, Ordering::Release);
                // A record queued between the take and the store saw `adding` still set.
                if self.lock_queue().is_empty() || self.adding.swap(true, Ordering::AcqRel) {
                    return;
                }
                continue;
            }
            for queued in batch {
                let result = self.add(&queued.record, queued.offset, queued.previous);
                let _ = queued.added.send(result);
            }
        }
    }

    /// Adds (or replaces, by id) the document of a record. Returns its commit generation.
    /// Blocking: Tantivy may wait for its indexing thread.
    pub fn add(
        &self,
        record: &MemoryRecord,
        offset: i64,
        previous: Option<i64>,
    ) -> Result<u64, Error> {
        let source = format!("{}/{}@{offset}", self.topic, self.partition);
        if record.kind == knowledge::KIND {
            self.replace_knowledge(record, &source, offset)?;
            return Ok(self.advance(offset, previous));
        }
        let document = self.fields.document(record, &source);
        {
            let writer = self.writer.read().unwrap_or_else(|p| p.into_inner());
            writer.delete_term(Term::from_field_text(self.fields.id, &record.id));
            writer.add_document(document)?;
        }
        self.uncommitted.fetch_add(1, Ordering::Relaxed);
        Ok(self.advance(offset, previous))
    }

    /// Replaces a source's chunks with those of `record`, unless a later version of the
    /// source (a higher offset) is already indexed. Deleting by owner, not by chunk id, so
    /// a shorter version leaves no chunk of a longer one behind.
    fn replace_knowledge(
        &self,
        record: &MemoryRecord,
        source: &str,
        offset: i64,
    ) -> Result<(), Error> {
        let mut latest = self.knowledge.lock().unwrap_or_else(|p| p.into_inner());
        // Records below the committed position are never read again by this shard: what
        // they could be raced by is gone, so the map stays as small as what is in flight.
        let floor = self.committed_position.load(Ordering::SeqCst);
        latest.retain(|_, at| *at >= floor);
        if latest
            .get(&record.owner)
            .is_some_and(|newer| *newer > offset)
        {
            return Ok(());
        }
        let chunks = knowledge::chunk_records(record);
        {
            let writer = self.writer.read().unwrap_or_else(|p| p.into_inner());
            writer.delete_term(Term::from_field_text(self.fields.owner, &record.owner));
            for chunk in &chunks {
                writer.add_document(self.fields.document(chunk, source))?;
            }
        }
        latest.insert(record.owner.clone(), offset);
        self.uncommitted
            .fetch_add(chunks.len().max(1), Ordering::Relaxed);
        Ok(())
    }

    /// Records that a record was handled without a document (it was dead-lettered), so the
    /// committed position can move past it.
    pub fn skip(&self, offset: i64, previous: Option<i64>) -> u64 {
        self.advance(offset, previous)
    }

    fn advance(&self, offset: i64, previous: Option<i64>) -> u64 {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.chain.add(offset, previous);
        state.dirty = true;
        state.pending_generation
    }

    /// Every record before this offset is in a commit (`None`: nothing committed).
    pub fn committed_position(&self) -> Option<i64> {
        Some(self.committed_position.load(Ordering::SeqCst)).filter(|p| *p >= 0)
    }

    /// Documents added since the last commit.
    pub fn uncommitted(&self) -> usize {
        self.uncommitted.load(Ordering::Relaxed)
    }

    /// Commits what was added, with the resume position as payload. Blocking (fsync).
    /// Returns the generation committed, or `None` if there was nothing to commit.
    pub fn commit(&self) -> Result<Option<u64>, Error> {
        let (generation, positions) = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if !state.dirty {
                return Ok(None);
            }
            state.dirty = false;
            let generation = state.pending_generation;
            state.pending_generation += 1;
            let positions = state.chain.next_offset().map(|next_offset| Positions {
                topic: self.topic.clone(),
                partition: self.partition,
                next_offset,
            });
            (generation, positions)
        };
        let result = {
            let mut writer = self.writer.write().unwrap_or_else(|p| p.into_inner());
            self.uncommitted.store(0, Ordering::Relaxed);
            let mut prepared = writer.prepare_commit()?;
            if let Some(positions) = &positions {
                prepared.set_payload(&serde_json::to_string(positions).unwrap_or_default());
            }
            prepared.commit()
        };
        if let Err(err) = result {
            // The adds stay in the writer; the next commit includes them.
            self.state.lock().unwrap_or_else(|p| p.into_inner()).dirty = true;
            return Err(err.into());
        }
        debug!(partition = self.partition, generation, next_offset = ?positions.as_ref().map(|p| p.next_offset), "index committed");
        if let Some(positions) = &positions {
            self.committed_position
                .store(positions.next_offset, Ordering::SeqCst);
        }
        COMMITS.fetch_add(1, Ordering::SeqCst);
        self.committed.send_replace(generation);
        Ok(Some(generation))
    }

    /// Waits until `generation` is committed. False if it never will be (the shard closed).
    pub async fn committed(&self, generation: u64) -> bool {
        let mut committed = self.committed.subscribe();
        committed.wait_for(|done| *done >= generation).await.is_ok()
    }
}
