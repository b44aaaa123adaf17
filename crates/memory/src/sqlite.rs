//! The SQLite backend: the embedded default, one file under the data directory, so memory
//! survives restarts of `chatgptd up`.
//!
//! # Table layout
//!
//! See `sqlite/schema.rs` for the SQL. Keys and owners are stored with the `"{namespace}:"`
//! prefix, as in Redis, so namespaces isolate within one file.
//!
//! - `history (owner, id) -> seq, entry`: one row per remembered id; `seq` numbers the
//!   owner's appends; `entry` (JSON) is `NULL` once the entry was trimmed out of the newest
//!   `cap` (the id stays for another `cap` appends, as in Redis). `history_owners` holds each
//!   owner's last `seq` and the expiry of the whole history.
//! - `state (owner) -> version, value, expires_at_ms`.
//! - `kv (key) -> value, expires_at_ms`; `counters (key) -> value, expires_at_ms`.
//! - `join_sets (key) -> expires_at_ms` and `join_members (key, member)`.
//! - `sorted_index (key, member) -> score`: bounded by `index_add`, not by expiry.
//!
//! # Atomicity and expiry
//!
//! Every operation is one statement or one `BEGIN IMMEDIATE` transaction (`sqlite/ops.rs`), so
//! it is atomic against other connections too. Expired rows are invisible to reads, replaced by
//! the next write, and deleted by a sweep at open and every `SWEEP_EVERY` writes.
//!
//! # Threads
//!
//! One connection, owned by a thread of its own that runs the operations queued to it in
//! turn: the async threads never wait on SQLite, and concurrent callers queue instead of
//! waking a blocking thread each to contend for a lock (measured on the ingest bench, where
//! every webhook claims and confirms its delivery). SQLite serialises writers anyway, so a
//! pool would add little.

mod ops;
mod schema;

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode};

use crate::codec::{from_json, to_json, ttl_millis};
use crate::{Error, HistoryEntry, HistoryLimits, IndexBounds, IndexEntry, Memory, StateEntry};

/// Writes between two sweeps of expired rows.
const SWEEP_EVERY: u64 = 1000;

/// The backend's name, for `/readyz`, logs and errors.
const BACKEND: &str = "sqlite";

/// An operation for the connection's thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Memory in a SQLite file.
pub struct SqliteMemory {
    /// Operations for the thread that owns the connection; it ends when this is dropped.
    jobs: mpsc::Sender<Job>,
    /// `"{namespace}:"`, prefixed to keys and owners.
    prefix: String,
    /// The file, for errors and logs.
    path: PathBuf,
    /// Writes so far, to sweep expired rows every `SWEEP_EVERY`.
    writes: Arc<AtomicU64>,
}

impl SqliteMemory {
    /// Opens (or creates) the file at `path` (its directory must exist) with keys prefixed by
    /// `namespace`.
    pub async fn open(path: &Path, namespace: &str) -> Result<SqliteMemory, Error> {
        let owned_path = path.to_path_buf();
        let connection = tokio::task::spawn_blocking(move || schema::open(&owned_path, now_ms()))
            .await
            .map_err(|err| Error::Backend(format!("opening {}: {err}", path.display())))??;
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-memory".into())
            .spawn(move || {
                let mut connection = connection;
                for job in queue {
                    job(&mut connection);
                }
            })
            .map_err(|err| {
                Error::Backend(format!("starting the thread of {}: {err}", path.display()))
            })?;
        tracing::info!(path = %path.display(), namespace, "opened sqlite memory");
        Ok(SqliteMemory {
            jobs,
            prefix: format!("{namespace}:"),
            path: path.to_path_buf(),
            writes: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Runs `work` on the connection's thread with the connection and the current time.
    async fn run<T, F>(&self, operation: &'static str, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, i64) -> rusqlite::Result<T> + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        // A panic drops `done` unanswered and leaves the thread serving: an uncommitted
        // transaction rolls back when dropped, so no half operation stays behind.
        let job: Job = Box::new(move |connection| {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| work(connection, now_ms())));
            if let Ok(outcome) = outcome {
                let _ = done.send(outcome);
            }
        });
        let context = || format!("sqlite {}: {operation}", self.path.display());
        if self.jobs.send(job).is_err() {
            return Err(Error::Backend(format!(
                "{}: the connection's thread has stopped",
                context()
            )));
        }
        match result.await {
            Ok(result) => result.map_err(|err| classify(&err, context())),
            Err(_) => Err(Error::Backend(format!(
                "{}: the operation panicked",
                context()
            ))),
        }
    }

    /// [`run`](Self::run) for writes: sweeps expired rows every `SWEEP_EVERY` writes.
    async fn write<T, F>(&self, operation: &'static str, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, i64) -> rusqlite::Result<T> + Send + 'static,
    {
        let sweep = self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1;
        self.run(operation, move |connection, now| {
            let result = work(connection, now)?;
            if sweep {
                schema::sweep(connection, now)?;
            }
            Ok(result)
        })
        .await
    }
}

impl fmt::Debug for SqliteMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteMemory")
            .field("path", &self.path)
            .field("prefix", &self.prefix)
            .finish()
    }
}

#[async_trait]
impl Memory for SqliteMemory {
    async fn append_history(
        &self,
        owner: &str,
        entry: &HistoryEntry,
        limits: HistoryLimits,
    ) -> Result<bool, Error> {
        if limits.cap == 0 {
            return Ok(false);
        }
        let owner = self.key(owner);
        let id = entry.id.clone();
        let json = to_json(entry)?;
        let cap = clamp(limits.cap);
        let ttl = limits.ttl;
        self.write("append_history", move |connection, now| {
            let expires = expires_at(now, ttl);
            ops::append_history(connection, &owner, &id, &json, cap, expires, now)
        })
        .await
    }

    async fn history(&self, owner: &str, limit: usize) -> Result<Vec<HistoryEntry>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let owner = self.key(owner);
        let limit = clamp(limit);
        let texts = self
            .run("history", move |connection, now| {
                ops::history(connection, &owner, limit, now)
            })
            .await?;
        texts.iter().map(|text| from_json(BACKEND, text)).collect()
    }

    async fn put_state(
        &self,
        owner: &str,
        state: &StateEntry,
        ttl: Option<Duration>,
    ) -> Result<bool, Error> {
        let owner = self.key(owner);
        let version = state.version;
        let value = to_json(&state.value)?;
        self.write("put_state", move |connection, now| {
            ops::put_state(
                connection,
                &owner,
                version,
                &value,
                expires_at(now, ttl),
                now,
            )
        })
        .await
    }

    async fn state(&self, owner: &str) -> Result<Option<StateEntry>, Error> {
        let owner = self.key(owner);
        let row = self
            .run("state", move |connection, now| {
                ops::state(connection, &owner, now)
            })
            .await?;
        let Some((version, value)) = row else {
            return Ok(None);
        };
        Ok(Some(StateEntry {
            version,
            value: from_json(BACKEND, &value)?,
        }))
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, Error> {
        let key = self.key(key);
        let value = value.to_vec();
        self.write("put_if_absent", move |connection, now| {
            ops::put_if_absent(connection, &key, &value, expires_at(now, ttl), now)
        })
        .await
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Error> {
        let key = self.key(key);
        let value = value.to_vec();
        self.write("put", move |connection, now| {
            ops::put(connection, &key, &value, expires_at(now, ttl))
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let key = self.key(key);
        self.run("get", move |connection, now| {
            ops::get(connection, &key, now)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        let key = self.key(key);
        self.write("delete", move |connection, _| ops::delete(connection, &key))
            .await
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, Error> {
        let key = self.key(key);
        let expected = expected.to_vec();
        self.write("delete_if_equals", move |connection, now| {
            ops::delete_if_equals(connection, &key, &expected, now)
        })
        .await
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, Error> {
        let key = self.key(key);
        self.write("incr", move |connection, now| {
            ops::incr(connection, &key, by, expires_at(now, ttl), now)
        })
        .await
    }

    async fn join(&self, key: &str, member: &str, ttl: Option<Duration>) -> Result<usize, Error> {
        let key = self.key(key);
        let member = member.to_string();
        self.write("join", move |connection, now| {
            ops::join(connection, &key, &member, expires_at(now, ttl), now)
        })
        .await
    }

    async fn join_members(&self, key: &str) -> Result<Vec<String>, Error> {
        let key = self.key(key);
        self.run("join_members", move |connection, now| {
            ops::join_members(connection, &key, now)
        })
        .await
    }

    async fn index_add(
        &self,
        key: &str,
        member: &str,
        score: i64,
        bounds: IndexBounds,
    ) -> Result<bool, Error> {
        let key = self.key(key);
        let member = member.to_string();
        let bounds = (clamp(bounds.cap), bounds.min_score);
        self.write("index_add", move |connection, _| {
            ops::index_add(connection, &key, &member, score, bounds)
        })
        .await
    }

    async fn index_page(
        &self,
        key: &str,
        after: Option<&IndexEntry>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, Error> {
        let key = self.key(key);
        let after = after.map(|entry| (entry.score, entry.member.clone()));
        let limit = clamp(limit);
        let rows = self
            .run("index_page", move |connection, _| {
                ops::index_page(connection, &key, after, limit)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(member, score)| IndexEntry { member, score })
            .collect())
    }

    async fn ping(&self) -> Result<(), Error> {
        self.run("ping", |connection, _| {
            connection.query_row("SELECT 1", [], |_| Ok(()))
        })
        .await
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }
}

/// Maps a SQLite error to ours: a lock held by another connection past the busy timeout goes
/// away by itself, and a full disk once someone frees space ([`Error::Unavailable`]);
/// anything else will not.
fn classify(err: &rusqlite::Error, context: String) -> Error {
    let message = format!("{context}: {err}");
    match err.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::DiskFull) => {
            Error::Unavailable(message)
        }
        _ => Error::Backend(message),
    }
}

/// Now, in epoch milliseconds (0 if the clock is before 1970, which only makes things live
/// longer).
fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// When something written now with `ttl` expires.
fn expires_at(now_ms: i64, ttl: Option<Duration>) -> Option<i64> {
    // ttl_millis is capped far below i64::MAX, so the sum cannot overflow in practice;
    // saturating keeps it exact-or-later regardless.
    ttl.map(|_| now_ms.saturating_add(i64::try_from(ttl_millis(ttl)).unwrap_or(i64::MAX)))
}

/// A size as SQL integer, capped so that `2 x cap` and `seq - cap` stay in range.
fn clamp(size: usize) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX).min(i64::MAX / 4)
}
