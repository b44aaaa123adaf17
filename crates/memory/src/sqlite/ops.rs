//! The operations, as blocking functions on the connection. Each is one statement or one
//! `BEGIN IMMEDIATE` transaction, so it is atomic against other connections to the file (the
//! immediate lock is taken before the first read, so two writers never both read and then
//! race to write). Keys and owners arrive already namespaced; `now_ms` is epoch milliseconds.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// `expires_at_ms` is unset or in the future.
const LIVE: &str = "(expires_at_ms IS NULL OR expires_at_ms > ?2)";

/// Appends the entry unless its id is remembered; keeps the newest `cap` entries and the ids
/// of the newest `2 x cap`. Returns whether it appended.
pub(super) fn append_history(
    connection: &mut Connection,
    owner: &str,
    id: &str,
    entry_json: &str,
    cap: i64,
    expires_at_ms: Option<i64>,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let owner_row: Option<(i64, Option<i64>)> = tx
        .prepare_cached("SELECT last_seq, expires_at_ms FROM history_owners WHERE owner = ?1")?
        .query_row(params![owner], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let (last_seq, expires_at_ms) = match owner_row {
        Some((_, Some(expires))) if expires <= now_ms => {
            // The whole history expired: it starts over.
            tx.prepare_cached("DELETE FROM history WHERE owner = ?1")?
                .execute(params![owner])?;
            (0, expires_at_ms)
        }
        // An entry with a shorter life never shortens the history's (`None`: no expiry).
        Some((last_seq, current)) => (
            last_seq,
            match (current, expires_at_ms) {
                (None, _) | (_, None) => None,
                (Some(current), Some(new)) => Some(current.max(new)),
            },
        ),
        None => (0, expires_at_ms),
    };
    let known = tx
        .prepare_cached("SELECT 1 FROM history WHERE owner = ?1 AND id = ?2")?
        .query_row(params![owner, id], |_| Ok(()))
        .optional()?
        .is_some();
    if known {
        tx.commit()?;
        return Ok(false);
    }

    let seq = last_seq + 1;
    tx.prepare_cached("INSERT INTO history (owner, id, seq, entry) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![owner, id, seq, entry_json])?;
    tx.prepare_cached(
        "INSERT INTO history_owners (owner, last_seq, expires_at_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (owner) DO UPDATE
         SET last_seq = excluded.last_seq, expires_at_ms = excluded.expires_at_ms",
    )?
    .execute(params![owner, seq, expires_at_ms])?;
    // Sequence numbers are contiguous (only the oldest ever leave), so the newest `cap` are
    // exactly those above `seq - cap`.
    tx.prepare_cached(
        "UPDATE history SET entry = NULL WHERE owner = ?1 AND seq <= ?2 AND entry IS NOT NULL",
    )?
    .execute(params![owner, seq - cap])?;
    tx.prepare_cached("DELETE FROM history WHERE owner = ?1 AND seq <= ?2")?
        .execute(params![owner, seq - cap.saturating_mul(2)])?;
    tx.commit()?;
    Ok(true)
}

/// The newest `limit` entries (JSON), oldest first.
pub(super) fn history(
    connection: &Connection,
    owner: &str,
    limit: i64,
    now_ms: i64,
) -> rusqlite::Result<Vec<String>> {
    let mut statement = connection.prepare_cached(
        "SELECT h.entry FROM history h JOIN history_owners o ON o.owner = h.owner
         WHERE h.owner = ?1 AND h.entry IS NOT NULL
           AND (o.expires_at_ms IS NULL OR o.expires_at_ms > ?2)
         ORDER BY h.seq DESC LIMIT ?3",
    )?;
    let mut entries = statement
        .query_map(params![owner, now_ms, limit], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    entries.reverse();
    Ok(entries)
}

/// Stores the state if its version is greater than the stored one (or the stored one
/// expired). One upsert statement: atomic by itself.
pub(super) fn put_state(
    connection: &Connection,
    owner: &str,
    version: i64,
    value_json: &str,
    expires_at_ms: Option<i64>,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    let changed = connection
        .prepare_cached(
            "INSERT INTO state (owner, version, value, expires_at_ms) VALUES (?1, ?3, ?4, ?5)
         ON CONFLICT (owner) DO UPDATE
         SET version = excluded.version, value = excluded.value,
             expires_at_ms = excluded.expires_at_ms
         WHERE state.version < excluded.version
            OR (state.expires_at_ms IS NOT NULL AND state.expires_at_ms <= ?2)",
        )?
        .execute(params![owner, now_ms, version, value_json, expires_at_ms])?;
    Ok(changed == 1)
}

/// The live state: version and value JSON.
pub(super) fn state(
    connection: &Connection,
    owner: &str,
    now_ms: i64,
) -> rusqlite::Result<Option<(i64, String)>> {
    connection
        .prepare_cached(&format!(
            "SELECT version, value FROM state WHERE owner = ?1 AND {LIVE}"
        ))?
        .query_row(params![owner, now_ms], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
}

/// Sets the value if the key is absent or expired. Returns whether it set it.
pub(super) fn put_if_absent(
    connection: &Connection,
    key: &str,
    value: &[u8],
    expires_at_ms: Option<i64>,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    let changed = connection
        .prepare_cached(
            "INSERT INTO kv (key, value, expires_at_ms) VALUES (?1, ?3, ?4)
         ON CONFLICT (key) DO UPDATE
         SET value = excluded.value, expires_at_ms = excluded.expires_at_ms
         WHERE kv.expires_at_ms IS NOT NULL AND kv.expires_at_ms <= ?2",
        )?
        .execute(params![key, now_ms, value, expires_at_ms])?;
    Ok(changed == 1)
}

/// Sets the value, replacing what was there (and its expiry).
pub(super) fn put(
    connection: &Connection,
    key: &str,
    value: &[u8],
    expires_at_ms: Option<i64>,
) -> rusqlite::Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO kv (key, value, expires_at_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE
         SET value = excluded.value, expires_at_ms = excluded.expires_at_ms",
        )?
        .execute(params![key, value, expires_at_ms])?;
    Ok(())
}

/// The live value of the key.
pub(super) fn get(
    connection: &Connection,
    key: &str,
    now_ms: i64,
) -> rusqlite::Result<Option<Vec<u8>>> {
    connection
        .prepare_cached(&format!("SELECT value FROM kv WHERE key = ?1 AND {LIVE}"))?
        .query_row(params![key, now_ms], |row| row.get(0))
        .optional()
}

/// Removes the key.
pub(super) fn delete(connection: &Connection, key: &str) -> rusqlite::Result<()> {
    connection
        .prepare_cached("DELETE FROM kv WHERE key = ?1")?
        .execute(params![key])?;
    Ok(())
}

/// Removes the key if its live value is `expected`; one statement, so atomic. Returns whether
/// it removed it.
pub(super) fn delete_if_equals(
    connection: &Connection,
    key: &str,
    expected: &[u8],
    now_ms: i64,
) -> rusqlite::Result<bool> {
    let deleted = connection
        .prepare_cached(&format!(
            "DELETE FROM kv WHERE key = ?1 AND value = ?3 AND {LIVE}"
        ))?
        .execute(params![key, now_ms, expected])?;
    Ok(deleted == 1)
}

/// Adds `by` to the counter (created at 0 with `expires_at_ms`, also when the old one
/// expired). Returns the new value; overflow is an error, as in Redis.
pub(super) fn incr(
    connection: &mut Connection,
    key: &str,
    by: i64,
    expires_at_ms: Option<i64>,
    now_ms: i64,
) -> rusqlite::Result<i64> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let live: Option<(i64, Option<i64>)> = tx
        .prepare_cached(&format!(
            "SELECT value, expires_at_ms FROM counters WHERE key = ?1 AND {LIVE}"
        ))?
        .query_row(params![key, now_ms], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let (value, expires_at_ms) = match live {
        Some((value, expires)) => {
            let sum = value.checked_add(by).ok_or_else(|| {
                rusqlite::Error::ToSqlConversionFailure(
                    format!("counter {key}: {value} + {by} would overflow").into(),
                )
            })?;
            (sum, expires)
        }
        None => (by, expires_at_ms),
    };
    tx.prepare_cached(
        "INSERT INTO counters (key, value, expires_at_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE
         SET value = excluded.value, expires_at_ms = excluded.expires_at_ms",
    )?
    .execute(params![key, value, expires_at_ms])?;
    tx.commit()?;
    Ok(value)
}

/// Adds the member to the set (created with `expires_at_ms`, also when the old one expired).
/// Returns the set's size.
pub(super) fn join(
    connection: &mut Connection,
    key: &str,
    member: &str,
    expires_at_ms: Option<i64>,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let expired = tx
        .prepare_cached(
            "SELECT 1 FROM join_sets
             WHERE key = ?1 AND expires_at_ms IS NOT NULL AND expires_at_ms <= ?2",
        )?
        .query_row(params![key, now_ms], |_| Ok(()))
        .optional()?
        .is_some();
    if expired {
        tx.prepare_cached("DELETE FROM join_members WHERE key = ?1")?
            .execute(params![key])?;
        tx.prepare_cached("DELETE FROM join_sets WHERE key = ?1")?
            .execute(params![key])?;
    }
    tx.prepare_cached("INSERT OR IGNORE INTO join_sets (key, expires_at_ms) VALUES (?1, ?2)")?
        .execute(params![key, expires_at_ms])?;
    tx.prepare_cached("INSERT OR IGNORE INTO join_members (key, member) VALUES (?1, ?2)")?
        .execute(params![key, member])?;
    let size: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM join_members WHERE key = ?1")?
        .query_row(params![key], |row| row.get(0))?;
    tx.commit()?;
    // A count is never negative.
    Ok(usize::try_from(size).unwrap_or(0))
}

/// The members of the live set, sorted (byte order, as Rust sorts strings).
pub(super) fn join_members(
    connection: &Connection,
    key: &str,
    now_ms: i64,
) -> rusqlite::Result<Vec<String>> {
    let mut statement = connection.prepare_cached(
        "SELECT m.member FROM join_members m JOIN join_sets s ON s.key = m.key
         WHERE m.key = ?1 AND (s.expires_at_ms IS NULL OR s.expires_at_ms > ?2)
         ORDER BY m.member",
    )?;
    statement
        .query_map(params![key, now_ms], |row| row.get(0))?
        .collect()
}

/// Adds `member` unless it is there, then drops members below `min_score` and all but the
/// `cap` highest. Returns whether it added.
pub(super) fn index_add(
    connection: &mut Connection,
    key: &str,
    member: &str,
    score: i64,
    (cap, min_score): (i64, Option<i64>),
) -> rusqlite::Result<bool> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let added = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO sorted_index (key, member, score) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![key, member, score])?
        == 1;
    if let Some(min_score) = min_score {
        tx.prepare_cached("DELETE FROM sorted_index WHERE key = ?1 AND score < ?2")?
            .execute(params![key, min_score])?;
    }
    tx.prepare_cached(
        "DELETE FROM sorted_index WHERE key = ?1 AND member IN (
             SELECT member FROM sorted_index WHERE key = ?1
             ORDER BY score DESC, member DESC LIMIT -1 OFFSET ?2)",
    )?
    .execute(params![key, cap])?;
    tx.commit()?;
    Ok(added)
}

/// At most `limit` members, highest score first, after `after` (score, member) if given.
pub(super) fn index_page(
    connection: &Connection,
    key: &str,
    after: Option<(i64, String)>,
    limit: i64,
) -> rusqlite::Result<Vec<(String, i64)>> {
    let bounded = after.is_some();
    let (score, member) = after.unwrap_or((0, String::new()));
    let mut statement = connection.prepare_cached(
        "SELECT member, score FROM sorted_index
         WHERE key = ?1 AND (?2 = 0 OR score < ?3 OR (score = ?3 AND member < ?4))
         ORDER BY score DESC, member DESC LIMIT ?5",
    )?;
    statement
        .query_map(
            params![key, i64::from(bounded), score, member, limit],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?
        .collect()
}
