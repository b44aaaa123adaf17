use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where memory lives and how long it is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryOptions {
    /// Redis URL (`redis://host:6379/0`, `rediss://` for TLS). Empty means the embedded
    /// SQLite backend. A password belongs in `redis_password_env`, not here.
    pub redis_url: String,

    /// Environment variable holding the Redis password, if any. Never logged.
    pub redis_password_env: String,

    /// Prefix of every key, so chatgptd can share a Redis with other applications.
    pub namespace: String,

    /// Multiplexed Redis connections kept open; calls are spread over them.
    pub pool_size: usize,

    /// How long connecting to Redis may take.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,

    /// How long one Redis command may take before the call fails as unavailable.
    #[serde(with = "humantime_serde")]
    pub response_timeout: Duration,

    /// The SQLite file of the embedded backend; empty means `<data_dir>/memory.db`.
    pub sqlite_path: PathBuf,

    /// The most history entries kept per owner.
    pub history_cap: usize,

    /// How long memory of each kind is kept (`ticket`, `message`, `step_result`, ...);
    /// kinds not listed use `default_ttl`.
    #[serde(with = "ttl_map")]
    pub ttl_by_kind: BTreeMap<String, Duration>,

    /// Expiry of kinds not in `ttl_by_kind`.
    #[serde(with = "humantime_serde")]
    pub default_ttl: Duration,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        MemoryOptions {
            redis_url: String::new(),
            redis_password_env: String::new(),
            namespace: "chatgptd".to_string(),
            pool_size: 4,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(2),
            sqlite_path: PathBuf::new(),
            history_cap: 200,
            ttl_by_kind: BTreeMap::from([
                ("message".to_string(), Duration::from_secs(30 * 24 * 3600)),
                ("ticket".to_string(), Duration::from_secs(90 * 24 * 3600)),
            ]),
            default_ttl: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl MemoryOptions {
    /// The expiry for memory of `kind`.
    pub fn ttl_for(&self, kind: &str) -> Duration {
        self.ttl_by_kind
            .get(kind)
            .copied()
            .unwrap_or(self.default_ttl)
    }
}

mod ttl_map {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<String, Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let text: BTreeMap<&String, String> = map
            .iter()
            .map(|(k, v)| (k, humantime::format_duration(*v).to_string()))
            .collect();
        text.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Duration>, D::Error> {
        let text = BTreeMap::<String, String>::deserialize(d)?;
        text.into_iter()
            .map(|(k, v)| {
                humantime::parse_duration(&v)
                    .map(|d| (k.clone(), d))
                    .map_err(|err| serde::de::Error::custom(format!("ttl_by_kind.{k}: {err}")))
            })
            .collect()
    }
}
