//! Memory: what agents and tickets remember, and the small shared state workers coordinate
//! through. One interface, [`Memory`], two backends:
//!
//! - Redis (production): shared by every replica.
//! - SQLite (the embedded default of `chatgptd up`): one file under the data directory, so
//!   the embedded stack keeps its memory across restarts.
//!
//! Every write is idempotent: a redelivered Kafka record that writes the same thing again
//! changes nothing. A backend that cannot be reached answers [`Error::Unavailable`], which
//! workers turn into "retry until it is back" (no offset is stored meanwhile).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chatgptd_types::Secrets;
use serde::{Deserialize, Serialize};

mod codec;
mod error;
mod options;
mod redis;
mod sqlite;

pub use crate::redis::RedisMemory;
pub use crate::sqlite::SqliteMemory;
pub use error::Error;
pub use options::MemoryOptions;

/// The Lua of the two scripts the memory writer runs on Redis per record, history append
/// (2 keys) then versioned state (1 key), as `(lua, number of keys)`: for measuring what Redis
/// itself does with them (`bench/memory.rs` runs them through `redis-benchmark`).
pub fn redis_writer_scripts() -> [(&'static str, usize); 2] {
    [
        (crate::redis::APPEND_HISTORY_LUA, 2),
        (crate::redis::PUT_STATE_LUA, 1),
    ]
}

/// Opens the configured backend: Redis when `options.redis_url` is set (checked with a PING,
/// so a start with Redis down fails with [`Error::Unavailable`] naming the URL without
/// credentials), else SQLite at `options.sqlite_path` or `<data_dir>/memory.db` (creating
/// the directory). Redis's password, if any, is looked up in `secrets`.
pub async fn open(
    options: &MemoryOptions,
    data_dir: &Path,
    secrets: &Secrets,
) -> Result<Arc<dyn Memory>, Error> {
    if !options.redis_url.is_empty() {
        return Ok(Arc::new(RedisMemory::connect(options, secrets).await?));
    }
    let path = if options.sqlite_path.as_os_str().is_empty() {
        data_dir.join("memory.db")
    } else {
        options.sqlite_path.clone()
    };
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|err| Error::Backend(format!("creating {}: {err}", dir.display())))?;
    }
    Ok(Arc::new(
        SqliteMemory::open(&path, &options.namespace).await?,
    ))
}

/// One entry of an owner's conversation history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Unique within the owner's history; appending an id that is already there does
    /// nothing (a redelivery).
    pub id: String,
    /// `user`, `assistant`, `system` or `event`.
    pub role: String,
    /// What was said or what happened.
    pub text: String,
    /// When, in epoch milliseconds.
    pub at_ms: i64,
    /// Small structured facts (agent, ticket key, model).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// The latest state of an owner (a ticket's enrichment, an agent's status, a workflow run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateEntry {
    /// Monotonic version (e.g. source offset or event time). A write whose version is not
    /// greater than the stored one is ignored, so a redelivery cannot roll state back.
    pub version: i64,
    /// The state, as JSON.
    pub value: serde_json::Value,
}

/// How long history is kept and how much of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryLimits {
    /// The most entries kept per owner; older ones are dropped.
    pub cap: usize,
    /// Expiry of the owner's whole history, refreshed on every append; `None` keeps it.
    pub ttl: Option<Duration>,
}

/// One member of a sorted index and its score (a run and its start time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub member: String,
    pub score: i64,
}

/// What [`Memory::index_add`] keeps of an index, so it cannot grow forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexBounds {
    /// The most members kept: the highest scores win.
    pub cap: usize,
    /// Members scored below this are dropped (an age limit when scores are times).
    pub min_score: Option<i64>,
}

/// One record's writes to its owner's memory, as the memory writer makes them: a history
/// append, then a versioned state. [`Memory::write_records`] takes many at once.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordWrite {
    /// Whose memory.
    pub owner: String,
    /// Appended as [`Memory::append_history`] does.
    pub entry: HistoryEntry,
    pub limits: HistoryLimits,
    /// Stored as [`Memory::put_state`] does.
    pub state: StateEntry,
    pub state_ttl: Option<Duration>,
}

/// The memory interface. All keys are namespaced by the backend (`MemoryOptions::namespace`),
/// so callers use short keys such as `dedupe:github:<delivery>`.
///
/// Expiry (`ttl`) is best effort to the second; `None` means no expiry.
#[async_trait]
pub trait Memory: Send + Sync + Debug + 'static {
    /// Appends `entry` to `owner`'s history unless an entry with its id is already there,
    /// then trims the history to `limits.cap` newest entries. Returns whether it appended.
    ///
    /// The ids of the newest `2 x cap` appends are remembered, so the redelivery of an entry
    /// trimmed not long ago is ignored too (it must not come back as the newest entry); an id
    /// older than that is appended again. A `cap` of 0 keeps nothing and returns `false`.
    /// Every append sets the expiry of the whole history to `limits.ttl` (`None`: none).
    async fn append_history(
        &self,
        owner: &str,
        entry: &HistoryEntry,
        limits: HistoryLimits,
    ) -> Result<bool, Error>;

    /// The newest `limit` entries of `owner`'s history, oldest first.
    async fn history(&self, owner: &str, limit: usize) -> Result<Vec<HistoryEntry>, Error>;

    /// Stores `state` as `owner`'s latest state if its version is greater than the stored
    /// one (an expired state counts as absent). Returns whether it was stored. The stored
    /// state expires after `ttl` (`None`: never).
    async fn put_state(
        &self,
        owner: &str,
        state: &StateEntry,
        ttl: Option<Duration>,
    ) -> Result<bool, Error>;

    /// Applies `writes` in order, each as `append_history` then `put_state`, and returns one
    /// result per write. A backend may send them together (Redis pipelines them, one round
    /// trip for the lot); each write keeps its own atomicity and its own outcome, so a write
    /// that fails does not fail the others. Writes of one owner apply in the order given.
    async fn write_records(&self, writes: &[RecordWrite]) -> Vec<Result<(), Error>> {
        let mut results = Vec::with_capacity(writes.len());
        for write in writes {
            let result = match self
                .append_history(&write.owner, &write.entry, write.limits)
                .await
            {
                Ok(_) => self
                    .put_state(&write.owner, &write.state, write.state_ttl)
                    .await
                    .map(|_| ()),
                Err(err) => Err(err),
            };
            results.push(result);
        }
        results
    }

    /// `owner`'s latest state.
    async fn state(&self, owner: &str) -> Result<Option<StateEntry>, Error>;

    /// Sets `key` to `value` only if it is absent (or expired). Returns whether it set it.
    /// The building block of idempotency and deduplication keys.
    async fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, Error>;

    /// Sets `key` to `value`, replacing what was there and its expiry.
    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Error>;

    /// The value of `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error>;

    /// Removes the value at `key` (no error if absent). Values, counters and join sets are
    /// separate key spaces: this does not touch a counter or set of the same name.
    async fn delete(&self, key: &str) -> Result<(), Error>;

    /// Removes the value at `key` only if it is live and equals `expected`, atomically across
    /// replicas. Returns whether it removed it. Lets the owner of a claim give it up without
    /// removing a claim someone else took after its own expired.
    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, Error>;

    /// Adds `by` to the counter at `key` (created at 0) and returns the new value. Atomic
    /// across replicas. `ttl` is set when the counter is created.
    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, Error>;

    /// Adds `member` to the set at `key` and returns the set's size. Adding a member twice
    /// counts once, so a fan-in that counts arrived branches is safe under redelivery.
    /// Atomic across replicas. `ttl` is set when the set is created.
    async fn join(&self, key: &str, member: &str, ttl: Option<Duration>) -> Result<usize, Error>;

    /// The members of the set at `key`, sorted.
    async fn join_members(&self, key: &str) -> Result<Vec<String>, Error>;

    /// Adds `member` with `score` to the sorted index at `key` unless it is there already
    /// (its score then stays: a redelivered add changes nothing), then drops what `bounds`
    /// leave out. Returns whether it added. Atomic across replicas.
    async fn index_add(
        &self,
        key: &str,
        member: &str,
        score: i64,
        bounds: IndexBounds,
    ) -> Result<bool, Error>;

    /// At most `limit` members of the index at `key`, highest score first (equal scores by
    /// member, descending), starting after `after` (a page's last entry) when given.
    async fn index_page(
        &self,
        key: &str,
        after: Option<&IndexEntry>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, Error>;

    /// Checks the backend answers.
    async fn ping(&self) -> Result<(), Error>;

    /// `redis` or `sqlite`, for logs and `/readyz`.
    fn backend(&self) -> &'static str;
}
