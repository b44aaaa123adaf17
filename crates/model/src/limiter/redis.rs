//! The shared buckets: GCRA state in Redis, so every replica draws from one budget.
//!
//! Each bucket is one key holding its theoretical arrival time (TAT, microseconds of Redis's
//! own clock, so replicas' clocks do not matter). One Lua script checks and charges any number
//! of buckets atomically, all or nothing: a request cell and its tokens are granted together
//! or not at all. A caller that is refused sleeps the returned wait and asks again.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::spec::BucketSpec;
use crate::error::Error;

/// GCRA over the buckets in KEYS, all or nothing.
/// ARGV holds, per key: interval (µs), burst (cells), cost (cells).
/// Returns 0 when all conformed and were charged, else the µs until they would.
const GCRA_SCRIPT: &str = r#"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local wait = 0
local tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[3 * i - 2])
  local burst = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + cost * interval
  local allowed_at = new_tat - burst * interval
  if allowed_at - now > wait then wait = allowed_at - now end
  tats[i] = new_tat
end
if wait > 0 then return math.ceil(wait) end
for i, key in ipairs(KEYS) do
  local ttl_ms = math.ceil((tats[i] - now) / 1000) + 1
  redis.call('SET', key, string.format('%.0f', tats[i]), 'PX', ttl_ms)
end
return 0
"#;

/// How long a limiter call to Redis may take before the model call fails as unavailable.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The Redis connection and script shared by every model's buckets.
#[derive(Clone)]
pub struct RedisBackend {
    connection: ConnectionManager,
    script: std::sync::Arc<redis::Script>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisBackend")
    }
}

impl RedisBackend {
    /// Prepares a connection to `url` (with `password`, when given). It connects lazily, so a
    /// Redis that is down at start makes calls unavailable rather than the worker fail.
    pub fn new(url: &str, password: Option<String>) -> Result<Self, Error> {
        use redis::IntoConnectionInfo;
        let mut info = url
            .into_connection_info()
            .map_err(|err| Error::Config(format!("shared_limits_redis_url: {err}")))?;
        if let Some(password) = password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info)
            .map_err(|err| Error::Config(format!("shared_limits_redis_url: {err}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|err| Error::Config(format!("shared limiter: {err}")))?;
        Ok(RedisBackend {
            connection,
            script: std::sync::Arc::new(redis::Script::new(GCRA_SCRIPT)),
        })
    }

    /// Charges `cost` cells to each `(key, spec, cost)` bucket at once, waiting as long as
    /// Redis says.
    pub async fn take(&self, buckets: &[(&str, &BucketSpec, u32)]) -> Result<(), Error> {
        loop {
            let wait = self.try_take(buckets).await?;
            if wait.is_zero() {
                return Ok(());
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt: zero when charged, else the wait.
    async fn try_take(&self, buckets: &[(&str, &BucketSpec, u32)]) -> Result<Duration, Error> {
        let mut invocation = self.script.prepare_invoke();
        for (key, spec, cost) in buckets {
            // Rounded up: a shorter interval would admit more than the limit.
            let interval_micros = spec.interval.as_nanos().div_ceil(1000).max(1) as u64;
            invocation
                .key(*key)
                .arg(interval_micros)
                .arg(spec.burst)
                .arg(*cost);
        }
        let mut connection = self.connection.clone();
        let wait_micros: u64 = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|err| Error::Unavailable(format!("shared limiter redis: {err}")))?;
        Ok(Duration::from_micros(wait_micros))
    }
}

/// The Redis key of a model's bucket at an endpoint. Endpoint and model are the hash tag
/// (`{...}`), so both buckets live in one Redis Cluster slot and one script can touch them
/// together. Braces in the endpoint would break the tag, so they are replaced.
pub fn bucket_key(endpoint: &str, model: &str, bucket: &str) -> String {
    let tag = format!("{model}@{endpoint}").replace(['{', '}'], "_");
    format!("chatgptd:ratelimit:{{{tag}}}:{bucket}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_per_endpoint_and_model_in_one_slot() {
        let openai = bucket_key("https://api.openai.com/v1", "gpt-4o-mini", "rpm");
        let azure = bucket_key("https://x.openai.azure.com/v1", "gpt-4o-mini", "rpm");
        assert_ne!(openai, azure, "two endpoints, two budgets");
        assert_eq!(
            openai,
            "chatgptd:ratelimit:{gpt-4o-mini@https://api.openai.com/v1}:rpm"
        );
        let odd = bucket_key("http://h/{x}", "m", "tpm");
        assert_eq!(odd.matches('{').count(), 1, "one hash tag: {odd}");
    }
}
