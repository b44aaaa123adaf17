//! The Redis backend: memory shared by every replica.
//!
//! # Key layout
//!
//! Every key starts with `"{namespace}:"`; callers' keys and owners follow a kind prefix, so
//! the kinds never collide (a counter and a cached value may share a caller key):
//!
//! | key                                   | type       | holds                                  |
//! |---------------------------------------|------------|----------------------------------------|
//! | `{ns}:history:{<owner>}`              | list       | entries as JSON, oldest first, <= cap  |
//! | `{ns}:history-ids:{<owner>}`          | sorted set | ids of the last 2 x cap appends        |
//! | `{ns}:state:<owner>`                  | hash       | `version` (decimal), `value` (JSON)    |
//! | `{ns}:kv:<key>`                       | string     | `put` / `put_if_absent` values         |
//! | `{ns}:counter:<key>`                  | string     | `incr` counters                        |
//! | `{ns}:join:<key>`                     | set        | `join` members                         |
//! | `{ns}:index:<key>`                    | sorted set | `index_add` members, trimmed by it     |
//!
//! The owner in braces is a Redis Cluster hash tag: both history keys of an owner land in the
//! same slot, as a script touching both requires.
//!
//! # Atomicity
//!
//! Read-modify-write operations (history append, versioned state, counters and joins that set
//! an expiry on creation) are Lua scripts (`redis/scripts.rs`): Redis runs a script to completion
//! before serving any other client, so the check and the write cannot interleave with another
//! replica's. `put_if_absent` is a single `SET NX PX`; `delete_if_equals` is a script (a GET
//! then a DEL would delete a value another replica set in between).
//!
//! `write_records` sends the scripts of many records as one pipeline on one connection: one
//! round trip for the lot instead of one per script. Each script stays its own atomic step
//! (no script spans owners), and Redis runs a connection's commands in the order sent.
//!
//! # Connections
//!
//! `pool_size` multiplexed [`ConnectionManager`]s, used round-robin. A manager whose
//! connection drops reconnects by itself in the background; until Redis is back every call
//! fails fast with [`Error::Unavailable`] and the same `RedisMemory` works again afterwards.
//! A call whose connection dropped under it is not resent here: its outcome is unknown (an
//! `incr` may have applied), so the caller, which retries idempotent work, decides.

mod batch;
mod connection;
mod errors;
mod scripts;

pub(crate) use scripts::{APPEND_HISTORY_LUA, PUT_STATE_LUA};

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, Cmd, FromRedisValue, RedisResult, ScriptInvocation};
use async_trait::async_trait;
use chatgptd_types::Secrets;

use self::connection::{connection_info, display_url};
use self::errors::classify;
use crate::codec::{from_json, to_json, ttl_millis};
use crate::{
    Error, HistoryEntry, HistoryLimits, IndexBounds, IndexEntry, Memory, MemoryOptions,
    RecordWrite, StateEntry,
};

/// The backend's name, for `/readyz`, logs and errors.
const BACKEND: &str = "redis";

/// Memory in Redis.
pub struct RedisMemory {
    /// The pool; every manager multiplexes many concurrent calls over one connection and
    /// reconnects by itself after Redis restarts.
    connections: Vec<ConnectionManager>,
    /// Round-robin cursor over `connections`.
    next: AtomicUsize,
    /// `"{namespace}:"`, so chatgptd can share a Redis with other applications.
    prefix: String,
    /// The server's URL without credentials, for errors and logs.
    url: String,
    /// The longest one call may take: a reconnection plus a response. A safety net over the
    /// client's own timeouts, so a call never hangs however the network fails.
    call_timeout: Duration,
}

impl RedisMemory {
    /// Connects `pool_size` connections to `options.redis_url` and checks Redis answers. The
    /// password, if `redis_password_env` names one, is looked up in `secrets`. Fails with
    /// [`Error::Unavailable`] naming the URL (never the password) when Redis does not answer.
    pub async fn connect(options: &MemoryOptions, secrets: &Secrets) -> Result<RedisMemory, Error> {
        let info = connection_info(options, secrets)?;
        let url = display_url(&info);
        let client = Client::open(info).map_err(|err| classify(&err, format!("redis at {url}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout))
            // One attempt per reconnection: the caller sees `Unavailable` within the connect
            // timeout and retries (workers retry without limit); the manager's own backoff
            // would keep the call waiting for seconds.
            .set_number_of_retries(0);
        let call_timeout = options.connect_timeout + options.response_timeout;

        let mut connections = Vec::with_capacity(options.pool_size.max(1));
        for _ in 0..options.pool_size.max(1) {
            let connecting = ConnectionManager::new_with_config(client.clone(), config.clone());
            let connection = match tokio::time::timeout(call_timeout, connecting).await {
                Ok(Ok(connection)) => connection,
                Ok(Err(err)) => {
                    return Err(classify(&err, format!("cannot connect to redis at {url}")));
                }
                Err(_) => {
                    return Err(Error::Unavailable(format!(
                        "cannot connect to redis at {url}: no connection within {call_timeout:?}"
                    )));
                }
            };
            connections.push(connection);
        }

        let memory = RedisMemory {
            connections,
            next: AtomicUsize::new(0),
            prefix: format!("{}:", options.namespace),
            url,
            call_timeout,
        };
        memory.ping().await?;
        tracing::info!(
            url = %memory.url,
            pool_size = memory.connections.len(),
            namespace = %options.namespace,
            "connected to redis"
        );
        Ok(memory)
    }

    /// The next connection of the pool (a cheap handle clone).
    fn connection(&self) -> ConnectionManager {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[index].clone()
    }

    /// The full key of `name` of `kind`.
    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}{kind}:{name}", self.prefix)
    }

    /// The list and id-set keys of `owner`'s history, hash-tagged into one cluster slot.
    fn history_keys(&self, owner: &str) -> (String, String) {
        (
            format!("{}history:{{{owner}}}", self.prefix),
            format!("{}history-ids:{{{owner}}}", self.prefix),
        )
    }

    /// The history append script with its keys and arguments.
    fn append_invocation(
        &self,
        owner: &str,
        entry: &HistoryEntry,
        limits: HistoryLimits,
    ) -> Result<ScriptInvocation<'static>, Error> {
        let json = to_json(entry)?;
        let (list, ids) = self.history_keys(owner);
        let mut invocation = scripts::APPEND_HISTORY.prepare_invoke();
        invocation
            .key(list)
            .key(ids)
            .arg(&entry.id)
            .arg(json)
            .arg(limits.cap)
            .arg(limits.cap.saturating_mul(2))
            .arg(ttl_millis(limits.ttl));
        Ok(invocation)
    }

    /// The versioned state script with its key and arguments.
    fn state_invocation(
        &self,
        owner: &str,
        state: &StateEntry,
        ttl: Option<Duration>,
    ) -> Result<ScriptInvocation<'static>, Error> {
        let value = to_json(&state.value)?;
        let mut invocation = scripts::PUT_STATE.prepare_invoke();
        invocation
            .key(self.key("state", owner))
            .arg(state.version.to_string())
            .arg(value)
            .arg(ttl_millis(ttl));
        Ok(invocation)
    }

    /// Sends `command` on the next connection of the pool.
    async fn query<T: FromRedisValue>(
        &self,
        operation: &'static str,
        command: Cmd,
    ) -> Result<T, Error> {
        let mut connection = self.connection();
        self.call(operation, command.query_async(&mut connection))
            .await
    }

    /// Runs one Redis call under the call timeout and maps its error.
    async fn call<T>(
        &self,
        operation: &'static str,
        request: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.call_timeout, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(classify(
                &err,
                format!("redis at {}: {operation}", self.url),
            )),
            Err(_) => Err(Error::Unavailable(format!(
                "redis at {}: {operation}: no answer within {:?}",
                self.url, self.call_timeout
            ))),
        }
    }
}

impl fmt::Debug for RedisMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisMemory")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .field("pool_size", &self.connections.len())
            .finish()
    }
}

#[async_trait]
impl Memory for RedisMemory {
    async fn append_history(
        &self,
        owner: &str,
        entry: &HistoryEntry,
        limits: HistoryLimits,
    ) -> Result<bool, Error> {
        if limits.cap == 0 {
            return Ok(false);
        }
        let invocation = self.append_invocation(owner, entry, limits)?;
        let mut connection = self.connection();
        let appended: i64 = self
            .call("append_history", invocation.invoke_async(&mut connection))
            .await?;
        Ok(appended == 1)
    }

    async fn history(&self, owner: &str, limit: usize) -> Result<Vec<HistoryEntry>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (list, _) = self.history_keys(owner);
        // LRANGE -limit -1: the newest `limit`, oldest first.
        let start = -i64::try_from(limit).unwrap_or(i64::MAX);
        let mut command = ::redis::cmd("LRANGE");
        command.arg(list).arg(start).arg(-1);
        let texts: Vec<String> = self.query("history", command).await?;
        texts.iter().map(|text| from_json(BACKEND, text)).collect()
    }

    async fn put_state(
        &self,
        owner: &str,
        state: &StateEntry,
        ttl: Option<Duration>,
    ) -> Result<bool, Error> {
        let invocation = self.state_invocation(owner, state, ttl)?;
        let mut connection = self.connection();
        let stored: i64 = self
            .call("put_state", invocation.invoke_async(&mut connection))
            .await?;
        Ok(stored == 1)
    }

    async fn write_records(&self, writes: &[RecordWrite]) -> Vec<Result<(), Error>> {
        batch::write_records(self, writes).await
    }

    async fn state(&self, owner: &str) -> Result<Option<StateEntry>, Error> {
        let mut command = ::redis::cmd("HMGET");
        command
            .arg(self.key("state", owner))
            .arg("version")
            .arg("value");
        let (Some(version), Some(value)) = self
            .query::<(Option<String>, Option<String>)>("state", command)
            .await?
        else {
            return Ok(None);
        };
        let version = version
            .parse::<i64>()
            .map_err(|err| Error::Backend(format!("state of {owner}: bad version: {err}")))?;
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
        let mut command = ::redis::cmd("SET");
        command.arg(self.key("kv", key)).arg(value).arg("NX");
        if ttl.is_some() {
            command.arg("PX").arg(ttl_millis(ttl));
        }
        let set: Option<String> = self.query("put_if_absent", command).await?;
        Ok(set.is_some())
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), Error> {
        let mut command = ::redis::cmd("SET");
        command.arg(self.key("kv", key)).arg(value);
        if ttl.is_some() {
            command.arg("PX").arg(ttl_millis(ttl));
        }
        self.query("put", command).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let mut command = ::redis::cmd("GET");
        command.arg(self.key("kv", key));
        self.query("get", command).await
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        let mut command = ::redis::cmd("DEL");
        command.arg(self.key("kv", key));
        self.query("delete", command).await
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, Error> {
        let mut invocation = scripts::DELETE_IF_EQUALS.prepare_invoke();
        invocation.key(self.key("kv", key)).arg(expected);
        let mut connection = self.connection();
        let deleted: i64 = self
            .call("delete_if_equals", invocation.invoke_async(&mut connection))
            .await?;
        Ok(deleted == 1)
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, Error> {
        let mut invocation = scripts::INCR.prepare_invoke();
        invocation
            .key(self.key("counter", key))
            .arg(by)
            .arg(ttl_millis(ttl));
        let mut connection = self.connection();
        let value: String = self
            .call("incr", invocation.invoke_async(&mut connection))
            .await?;
        value
            .parse()
            .map_err(|err| Error::Backend(format!("counter {key}: bad value: {err}")))
    }

    async fn join(&self, key: &str, member: &str, ttl: Option<Duration>) -> Result<usize, Error> {
        let mut invocation = scripts::JOIN.prepare_invoke();
        invocation
            .key(self.key("join", key))
            .arg(member)
            .arg(ttl_millis(ttl));
        let mut connection = self.connection();
        self.call("join", invocation.invoke_async(&mut connection))
            .await
    }

    async fn join_members(&self, key: &str) -> Result<Vec<String>, Error> {
        let mut command = ::redis::cmd("SMEMBERS");
        command.arg(self.key("join", key));
        let mut members: Vec<String> = self.query("join_members", command).await?;
        members.sort();
        Ok(members)
    }

    async fn index_add(
        &self,
        key: &str,
        member: &str,
        score: i64,
        bounds: IndexBounds,
    ) -> Result<bool, Error> {
        let mut invocation = scripts::INDEX_ADD.prepare_invoke();
        invocation
            .key(self.key("index", key))
            .arg(member)
            .arg(score)
            .arg(bounds.cap)
            .arg(
                bounds
                    .min_score
                    .map_or("-inf".to_string(), |min| min.to_string()),
            );
        let mut connection = self.connection();
        let added: i64 = self
            .call("index_add", invocation.invoke_async(&mut connection))
            .await?;
        Ok(added == 1)
    }

    async fn index_page(
        &self,
        key: &str,
        after: Option<&IndexEntry>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut invocation = scripts::INDEX_PAGE.prepare_invoke();
        invocation
            .key(self.key("index", key))
            .arg(after.map_or("+inf".to_string(), |entry| entry.score.to_string()))
            .arg(after.map_or("", |entry| entry.member.as_str()))
            .arg(limit);
        let mut connection = self.connection();
        let flat: Vec<String> = self
            .call("index_page", invocation.invoke_async(&mut connection))
            .await?;
        flat.chunks(2)
            .map(|pair| {
                let score = pair.get(1).map(String::as_str).unwrap_or_default();
                // Scores are doubles in Redis; the ones written here are whole numbers.
                let score = score
                    .parse::<i64>()
                    .or_else(|_| score.parse::<f64>().map(|s| s as i64))
                    .map_err(|err| Error::Backend(format!("index {key}: bad score: {err}")))?;
                Ok(IndexEntry {
                    member: pair[0].clone(),
                    score,
                })
            })
            .collect()
    }

    async fn ping(&self) -> Result<(), Error> {
        let _pong: String = self.query("ping", ::redis::cmd("PING")).await?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }
}
