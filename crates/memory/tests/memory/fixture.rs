//! A backend under test: where it lives, and how to open memories on it.

use std::sync::Arc;
use std::time::Duration;

use chatgptd_memory::{HistoryEntry, Memory, MemoryOptions};
use chatgptd_testkit::redis::RedisServer;
use chatgptd_types::Secrets;

/// A backend for one test, torn down on drop.
pub enum Backend {
    /// A redis-server of our own.
    Redis(RedisServer),
    /// A directory for the SQLite file.
    Sqlite(tempfile::TempDir),
}

impl Backend {
    pub async fn redis() -> Backend {
        Backend::Redis(RedisServer::start().await)
    }

    pub fn sqlite() -> Backend {
        Backend::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    /// A memory in `namespace`, opened through `chatgptd_memory::open` as the workers do.
    pub async fn open(&self, namespace: &str) -> Arc<dyn Memory> {
        let mut options = MemoryOptions {
            namespace: namespace.to_string(),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
            ..MemoryOptions::default()
        };
        let data_dir = match self {
            Backend::Redis(server) => {
                options.redis_url = server.url();
                std::env::temp_dir()
            }
            Backend::Sqlite(dir) => dir.path().to_path_buf(),
        };
        chatgptd_memory::open(&options, &data_dir, &Secrets::env())
            .await
            .expect("memory opens")
    }
}

/// An entry with id `id` whose text is `text-<id>`.
pub fn entry(id: &str) -> HistoryEntry {
    HistoryEntry {
        id: id.to_string(),
        role: "user".to_string(),
        text: format!("text-{id}"),
        at_ms: 1_700_000_000_000,
        attributes: [("agent".to_string(), "triage".to_string())].into(),
    }
}

/// The ids of `entries`, in order.
pub fn ids(entries: &[HistoryEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.id.as_str()).collect()
}

/// A TTL short enough to wait out in a test, and how long to wait: Redis expires to the
/// millisecond, SQLite compares epoch milliseconds, so a few hundred ms of margin is plenty.
pub const SHORT_TTL: Duration = Duration::from_secs(1);
pub const PAST_SHORT_TTL: Duration = Duration::from_millis(1300);
