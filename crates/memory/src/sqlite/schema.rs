//! Opening the file: pragmas, the schema, and the sweep of expired rows.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, params};

use super::classify;
use crate::Error;

/// The schema version this code writes (`PRAGMA user_version`). A file written by a newer
/// chatgptd is refused rather than misread.
const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for another process's write lock before failing as busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Every table. Keys and owners are stored with the namespace prefix (`"{namespace}:"`);
/// `expires_at_ms` is epoch milliseconds, `NULL` for no expiry. Rows past their expiry are
/// invisible to reads and removed by the next write to them or by `sweep`.
const SCHEMA: &str = "
-- One row per remembered history id. `seq` numbers an owner's appends 1, 2, 3, ...;
-- `entry` (JSON) is NULL once trimmed out of the newest `cap`: the id is still remembered
-- for another `cap` appends so a late redelivery is recognised.
CREATE TABLE IF NOT EXISTS history (
    owner TEXT NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    entry TEXT,
    PRIMARY KEY (owner, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS history_by_seq ON history (owner, seq);

-- Per owner: the last sequence number and the expiry of the whole history.
CREATE TABLE IF NOT EXISTS history_owners (
    owner TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    expires_at_ms INTEGER
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS state (
    owner TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    value TEXT NOT NULL,
    expires_at_ms INTEGER
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    expires_at_ms INTEGER
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS counters (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL,
    expires_at_ms INTEGER
) WITHOUT ROWID;

-- A join set exists (with its expiry) in join_sets; its members in join_members.
CREATE TABLE IF NOT EXISTS join_sets (
    key TEXT PRIMARY KEY,
    expires_at_ms INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS join_members (
    key TEXT NOT NULL,
    member TEXT NOT NULL,
    PRIMARY KEY (key, member)
) WITHOUT ROWID;

-- Sorted indexes (index_add, index_page): bounded by count and score, never by expiry.
CREATE TABLE IF NOT EXISTS sorted_index (
    key TEXT NOT NULL,
    member TEXT NOT NULL,
    score INTEGER NOT NULL,
    PRIMARY KEY (key, member)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sorted_index_by_score ON sorted_index (key, score, member);
";

/// Opens (or creates) the file, sets WAL mode and the busy timeout, creates the schema and
/// sweeps expired rows.
pub(super) fn open(path: &Path, now_ms: i64) -> Result<Connection, Error> {
    let context = || format!("opening {}", path.display());
    configure_sqlite_once();
    let connection = Connection::open(path).map_err(|err| classify(&err, context()))?;
    prepare(&connection, path).map_err(|err| classify(&err, context()))?;
    let version: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|err| classify(&err, context()))?;
    if version > SCHEMA_VERSION {
        return Err(Error::Backend(format!(
            "{} has schema version {version}, newer than this chatgptd's {SCHEMA_VERSION}",
            path.display()
        )));
    }
    create(&connection, now_ms).map_err(|err| classify(&err, context()))?;
    Ok(connection)
}

/// Connection settings: busy timeout, WAL.
fn prepare(connection: &Connection, path: &Path) -> rusqlite::Result<()> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    // Every statement of `ops` stays prepared: parsing and planning SQL each call cost more
    // than running a one-row write.
    connection.set_prepared_statement_cache_capacity(64);
    // WAL: readers do not block the writer, and a commit is one append. NORMAL sync is
    // durable across process crashes (a power loss may drop the last commits).
    let mode: String =
        connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), mode, "sqlite memory is not in WAL mode");
    }
    connection.pragma_update(None, "synchronous", "NORMAL")
}

/// Creates what is missing of the schema and sweeps expired rows.
fn create(connection: &Connection, now_ms: i64) -> rusqlite::Result<()> {
    connection.execute_batch(SCHEMA)?;
    connection.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    sweep(connection, now_ms)
}

/// Removes every expired row, so keys that are never read again do not stay forever.
pub(super) fn sweep(connection: &Connection, now_ms: i64) -> rusqlite::Result<()> {
    const EXPIRED: &str = "expires_at_ms IS NOT NULL AND expires_at_ms <= ?1";
    let statements = [
        format!("DELETE FROM kv WHERE {EXPIRED}"),
        format!("DELETE FROM counters WHERE {EXPIRED}"),
        format!("DELETE FROM state WHERE {EXPIRED}"),
        format!(
            "DELETE FROM history WHERE owner IN (SELECT owner FROM history_owners WHERE {EXPIRED})"
        ),
        format!("DELETE FROM history_owners WHERE {EXPIRED}"),
        format!(
            "DELETE FROM join_members WHERE key IN (SELECT key FROM join_sets WHERE {EXPIRED})"
        ),
        format!("DELETE FROM join_sets WHERE {EXPIRED}"),
    ];
    for statement in &statements {
        connection.execute(statement, params![now_ms])?;
    }
    Ok(())
}

/// Lets libsql configure the process's SQLite library before our first connection does.
///
/// The process has one SQLite, libsql's (the embedded broker, tansu, uses it through the
/// `libsql` crate). libsql sets the threading mode the first time it opens a database, which
/// SQLite allows only before anything has used the library, and asserts that it worked: a
/// connection of ours opened first would make the broker panic at its start.
fn configure_sqlite_once() {
    static CONFIGURED: std::sync::Once = std::sync::Once::new();
    CONFIGURED.call_once(|| {
        #[allow(deprecated)] // the Builder is async; this is the same open, synchronously
        if let Err(err) = libsql::Database::open_in_memory() {
            tracing::warn!(%err, "libsql could not open an in-memory database");
        }
    });
}
