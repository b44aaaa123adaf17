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
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

mod error;
mod options;

pub use error::Error;
pub use options::MemoryOptions;

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

/// The memory interface. All keys are namespaced by the backend (`MemoryOptions::namespace`),
/// so callers use short keys such as `dedupe:github:<delivery>`.
///
/// Expiry (`ttl`) is best effort to the second; `None` means no expiry.
#[async_trait]
pub trait Memory: Send + Sync + Debug + 'static {
    /// Appends `entry` to `owner`'s history unless an entry with its id is already there,
    /// then trims the history to `limits.cap` newest entries. Returns whether it appended.
    async fn append_history(&self, owner: &str, entry: &HistoryEntry, limits: HistoryLimits) -> Result<bool, Error>;

    /// The newest `limit` entries of `owner`'s history, oldest first.
    async fn history(&self, owner: &str, limit: usize) -> Result<Vec<HistoryEntry>, Error>;

    /// Stores `state` as `owner`'s latest state if its version is greater than the stored
    /// one. Returns whether it was stored.
    async fn put_state(&self, owner: &str, state: &StateEntry, ttl: Option<Duration>) -> Result<bool, Error>;

    /// `owner`'s latest state.
    async fn state(&self, owner: &str) -> Result<Option<StateEntry>, Error>;

    /// Sets `key` to `value` only if it is absent (or expired). Returns whether it set it.
    /// The building block of idempotency and deduplication keys.
    async fn put_if_absent(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool, Error>;

    /// Sets `key` to `value`, replacing what was there.
    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Error>;

    /// The value of `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error>;

    /// Removes `key` (no error if absent).
    async fn delete(&self, key: &str) -> Result<(), Error>;

    /// Adds `by` to the counter at `key` (created at 0) and returns the new value. Atomic
    /// across replicas. `ttl` is set when the counter is created.
    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, Error>;

    /// Adds `member` to the set at `key` and returns the set's size. Adding a member twice
    /// counts once, so a fan-in that counts arrived branches is safe under redelivery.
    /// Atomic across replicas. `ttl` is set when the set is created.
    async fn join(&self, key: &str, member: &str, ttl: Option<Duration>) -> Result<usize, Error>;

    /// The members of the set at `key`, sorted.
    async fn join_members(&self, key: &str) -> Result<Vec<String>, Error>;

    /// Checks the backend answers.
    async fn ping(&self) -> Result<(), Error>;

    /// `redis` or `sqlite`, for logs and `/readyz`.
    fn backend(&self) -> &'static str;
}
