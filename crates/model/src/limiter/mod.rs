//! Provider limits, per model (or deployment): a request bucket (RPM), a token bucket (TPM)
//! and a concurrency cap.
//!
//! - **Order.** An attempt first takes a concurrency permit, then its limiter cells, and is
//!   sent at once: taking cells and then queueing for a permit would let granted requests
//!   pile up and land together, overshooting a window.
//! - **Reserve, then settle.** An attempt reserves its estimated tokens (prompt estimate plus
//!   completion budget, which is also how providers count) before it is sent. Afterwards, if
//!   the reported usage is larger, the difference is taken too (waiting if needed). If it is
//!   smaller nothing happens: GCRA buckets cannot refund, and erring low on throughput is the
//!   safe side of a provider's limit.
//! - **Large calls.** A call estimated above the token burst is taken in chunks of at most
//!   the burst (the last one together with its request cell), so it cannot deadlock; above
//!   the whole limit it is clamped to the limit and logged, since no window could hold it.
//! - **One taker at a time.** A per-model gate (FIFO) lets one caller at a time take cells;
//!   the others queue in-process instead of all polling the buckets.
//! - **In-process** (`local`): governor's GCRA. Its two buckets are taken one after the
//!   other, so at most one request cell (the gate holder's) is granted but not yet sent while
//!   its caller waits for tokens; the request bucket keeps one cell of headroom for it.
//! - **Shared** (`redis`): one Lua script charges both buckets atomically in Redis, so N
//!   replicas together stay within one provider quota.
//! - **Adapting.** When a reply says `x-ratelimit-remaining-requests: 0`, or fewer remaining
//!   tokens than the call reserved, new attempts for the model wait until the advertised
//!   `x-ratelimit-reset-*` (capped at `retry.retry_after_cap`). Every replica sees the same
//!   headers from the same quota, so this pause is kept per process.
//! - **Adopting.** When replies advertise a request limit (`x-ratelimit-limit-requests`, or a
//!   gateway key's `x-ratelimit-api_key-limit-requests`) below the configured one, attempts
//!   also take a cell from a bucket of that shape (`advertised`), so a burst costs a few 429s,
//!   not one per request past the provider's limit.
//! - Every attempt, retries included, goes through the limiter, and failed attempts are not
//!   refunded: the provider counted them too.

mod advertised;
mod local;
mod redis;
pub mod spec;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::Error;
use crate::metric;
use crate::openai::headers::RateLimitHeaders;
use crate::options::{LimitOptions, ModelOptions};
use advertised::Advertised;
use local::LocalBucket;
use redis::RedisBackend;
pub use redis::bucket_key;
use spec::BucketSpec;

/// The semaphore is never closed; were it, calls could not go on.
fn closed(_: tokio::sync::AcquireError) -> Error {
    Error::Unavailable("the concurrency limiter was closed".into())
}

/// The pause when a reply says a limit is spent but not when it resets.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);

/// The limiters of every model, created on first use.
#[derive(Debug)]
pub struct Limiters {
    window: Duration,
    default_completion: u32,
    default_limits: LimitOptions,
    limits: BTreeMap<String, LimitOptions>,
    redis: Option<RedisBackend>,
    /// The provider's base URL: shared buckets are per endpoint and model, so two endpoints
    /// serving a model of the same name do not share a budget.
    endpoint: String,
    by_model: Mutex<HashMap<String, Arc<ModelLimiter>>>,
}

impl Limiters {
    /// The limiters configured by `options`; shared through Redis when
    /// `shared_limits_redis_url` is set (`redis_password` from its environment variable).
    pub fn new(
        options: &ModelOptions,
        endpoint: &str,
        redis_password: Option<String>,
    ) -> Result<Self, Error> {
        let redis = match options.shared_limits_redis_url.trim() {
            "" => None,
            url => Some(RedisBackend::new(url, redis_password)?),
        };
        Ok(Limiters {
            window: options.limit_window,
            default_completion: options.default_max_completion_tokens,
            default_limits: options.default_limits,
            limits: options.limits.clone(),
            redis,
            endpoint: endpoint.to_string(),
            by_model: Mutex::new(HashMap::new()),
        })
    }

    /// Whether the buckets live in Redis.
    pub fn is_shared(&self) -> bool {
        self.redis.is_some()
    }

    /// The limiter of `model`.
    pub fn for_model(&self, model: &str) -> Arc<ModelLimiter> {
        let mut by_model = self
            .by_model
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        by_model
            .entry(model.to_string())
            .or_insert_with(|| Arc::new(self.build(model)))
            .clone()
    }

    fn build(&self, model: &str) -> ModelLimiter {
        let limits = self.limits.get(model).unwrap_or(&self.default_limits);
        // Only the in-process order can leave a request cell granted but unsent.
        let headroom = if self.redis.is_some() { 0 } else { 1 };
        let requests = BucketSpec::requests(limits, self.window, headroom);
        let tokens = BucketSpec::tokens(limits, self.window, self.default_completion);
        let store = match &self.redis {
            Some(backend) => Store::Redis {
                backend: backend.clone(),
                requests_key: bucket_key(&self.endpoint, model, "rpm"),
                tokens_key: bucket_key(&self.endpoint, model, "tpm"),
            },
            None => Store::Local {
                requests: requests.as_ref().and_then(LocalBucket::new),
                tokens: tokens.as_ref().and_then(LocalBucket::new),
            },
        };
        let advertised = Advertised::new(
            self.window,
            limits.burst_fraction,
            headroom,
            limits.requests_per_minute,
            self.redis.as_ref().map(|backend| {
                (
                    backend.clone(),
                    bucket_key(&self.endpoint, model, "rpm-advertised"),
                )
            }),
        );
        let concurrency = (limits.max_concurrency > 0)
            .then(|| Arc::new(Semaphore::new(limits.max_concurrency as usize)));
        ModelLimiter {
            model: model.to_string(),
            requests,
            tokens,
            store,
            gate: tokio::sync::Mutex::new(()),
            concurrency,
            advertised,
            paused_until: Mutex::new(None),
        }
    }
}

/// Where a model's buckets live.
#[derive(Debug)]
enum Store {
    Local {
        requests: Option<LocalBucket>,
        tokens: Option<LocalBucket>,
    },
    Redis {
        backend: RedisBackend,
        requests_key: String,
        tokens_key: String,
    },
}

/// One model's limits.
#[derive(Debug)]
pub struct ModelLimiter {
    model: String,
    requests: Option<BucketSpec>,
    tokens: Option<BucketSpec>,
    store: Store,
    /// One taker at a time (see the module docs).
    gate: tokio::sync::Mutex<()>,
    concurrency: Option<Arc<Semaphore>>,
    /// The provider's own request limit, when it advertises one below ours.
    advertised: Advertised,
    /// Set from the provider's headers: no attempt starts before this instant.
    paused_until: Mutex<Option<Instant>>,
}

/// The right to send one attempt; holds the concurrency permit until dropped.
#[derive(Debug)]
pub struct Permit {
    _concurrency: Option<OwnedSemaphorePermit>,
}

impl ModelLimiter {
    /// The request bucket's shape (`None`: no request limit).
    pub fn requests_spec(&self) -> Option<BucketSpec> {
        self.requests
    }

    /// The token bucket's shape (`None`: no token limit).
    pub fn tokens_spec(&self) -> Option<BucketSpec> {
        self.tokens
    }

    /// Waits for a concurrency permit, one request cell and `tokens` token cells.
    pub async fn acquire(&self, tokens: u64) -> Result<Permit, Error> {
        let started = Instant::now();
        let concurrency = match &self.concurrency {
            Some(semaphore) => Some(
                Arc::clone(semaphore)
                    .acquire_owned()
                    .await
                    .map_err(closed)?,
            ),
            None => None,
        };
        let chunks = self.token_chunks(tokens);
        let (last_chunk, early_chunks) = match chunks.split_last() {
            Some((last, early)) => (Some(*last), early),
            None => (None, &[][..]),
        };
        let _gate = self.gate.lock().await;
        match &self.store {
            Store::Local { requests, tokens } => {
                self.wait_if_paused().await;
                if let Some(bucket) = tokens {
                    for chunk in early_chunks {
                        bucket.take(*chunk).await;
                    }
                }
                if let Some(bucket) = requests {
                    bucket.take(1).await;
                }
                self.advertised.take().await?;
                if let (Some(bucket), Some(chunk)) = (tokens, last_chunk) {
                    bucket.take(chunk).await;
                }
            }
            Store::Redis {
                backend,
                requests_key,
                tokens_key,
            } => {
                self.wait_if_paused().await;
                if let Some(spec) = &self.tokens {
                    for chunk in early_chunks {
                        backend.take(&[(tokens_key, spec, *chunk)]).await?;
                    }
                }
                let mut buckets = Vec::with_capacity(2);
                if let Some(spec) = &self.requests {
                    buckets.push((requests_key.as_str(), spec, 1));
                }
                if let (Some(spec), Some(chunk)) = (&self.tokens, last_chunk) {
                    buckets.push((tokens_key.as_str(), spec, chunk));
                }
                if !buckets.is_empty() {
                    backend.take(&buckets).await?;
                }
                self.advertised.take().await?;
            }
        }
        metrics::histogram!(metric::LIMITER_WAIT_SECONDS, "model" => self.model.clone())
            .record(started.elapsed().as_secs_f64());
        Ok(Permit {
            _concurrency: concurrency,
        })
    }

    /// Takes the tokens a reply used beyond what its attempt reserved.
    ///
    /// Settling is upward only, on purpose: OpenAI counts a request against its tokens per
    /// minute as the larger of `max_completion_tokens` plus the prompt estimate and the
    /// tokens used, at the time it is sent. Giving back unused completion budget would let
    /// the limiter admit more than the provider will, and turn the difference into 429s.
    pub async fn settle(&self, reserved: u64, used: u64) -> Result<(), Error> {
        if used <= reserved {
            return Ok(());
        }
        let chunks = self.token_chunks(used - reserved);
        match &self.store {
            Store::Local {
                tokens: Some(bucket),
                ..
            } => {
                for chunk in chunks {
                    bucket.take(chunk).await;
                }
            }
            Store::Redis {
                backend,
                tokens_key,
                ..
            } => {
                if let Some(spec) = &self.tokens {
                    for chunk in chunks {
                        backend.take(&[(tokens_key, spec, chunk)]).await?;
                    }
                }
            }
            Store::Local { tokens: None, .. } => {}
        }
        Ok(())
    }

    /// The request limit adopted from the provider's headers, if any.
    pub fn advertised_requests(&self) -> Option<u32> {
        self.advertised.limit()
    }

    /// Pauses new attempts when the provider says a limit is spent, and adopts a tighter
    /// request limit it advertises (see the module docs).
    pub fn adapt(&self, headers: &RateLimitHeaders, reserved: u64, cap: Duration) {
        if let Some(limit) = headers.limit_requests {
            self.advertised.adopt(limit, &self.model);
        }
        let mut pause: Option<(Duration, &'static str)> = None;
        if headers.remaining_requests == Some(0) {
            pause = Some((headers.reset_requests.unwrap_or(DEFAULT_PAUSE), "requests"));
        }
        if headers
            .remaining_tokens
            .is_some_and(|remaining| remaining < reserved)
        {
            let wait = headers.reset_tokens.unwrap_or(DEFAULT_PAUSE);
            if pause.is_none_or(|(longest, _)| wait > longest) {
                pause = Some((wait, "tokens"));
            }
        }
        let Some((wait, limit)) = pause else {
            return;
        };
        let wait = wait.min(cap);
        let until = Instant::now() + wait;
        let mut paused = self
            .paused_until
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
            tracing::debug!(model = %self.model, limit, ?wait, "provider limit spent: pausing new attempts");
        }
    }

    async fn wait_if_paused(&self) {
        loop {
            let until = *self
                .paused_until
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            match until {
                Some(until) if until > Instant::now() => {
                    tokio::time::sleep_until(until.into()).await;
                }
                _ => return,
            }
        }
    }

    /// `tokens` as takes of the token bucket; nothing without a token limit.
    fn token_chunks(&self, tokens: u64) -> Vec<u32> {
        let Some(spec) = &self.tokens else {
            return Vec::new();
        };
        let mut cost = u32::try_from(tokens).unwrap_or(u32::MAX);
        if cost > spec.limit {
            tracing::warn!(
                model = %self.model, tokens, limit = spec.limit,
                "a call's token estimate exceeds the whole token limit: counting it as the limit"
            );
            cost = spec.limit;
        } else if cost > spec.burst {
            tracing::debug!(
                model = %self.model, tokens, burst = spec.burst,
                "a call's token estimate exceeds the token burst: taking it in parts"
            );
        }
        spec.chunks(cost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(rpm: u32, tpm: u32) -> ModelOptions {
        ModelOptions {
            limit_window: Duration::from_secs(1),
            default_max_completion_tokens: 10,
            default_limits: LimitOptions {
                requests_per_minute: rpm,
                tokens_per_minute: tpm,
                max_concurrency: 2,
                burst_fraction: 0.1,
            },
            ..ModelOptions::default()
        }
    }

    #[tokio::test]
    async fn burst_goes_at_once_then_paced() {
        let limiters = Limiters::new(&options(21, 0), "test", None).unwrap();
        let limiter = limiters.for_model("m");
        // 21 - 1 headroom = 20 per window, burst 3 (10% of 21, rounded up).
        assert_eq!(limiter.requests_spec().unwrap().burst, 3);
        let started = Instant::now();
        for _ in 0..3 {
            drop(limiter.acquire(0).await.unwrap());
        }
        assert!(started.elapsed() < Duration::from_millis(30));
        drop(limiter.acquire(0).await.unwrap());
        let paced = started.elapsed();
        assert!(paced >= Duration::from_millis(45), "{paced:?}");
    }

    #[tokio::test]
    async fn concurrency_cap_holds_until_the_permit_drops() {
        let limiters = Limiters::new(&options(0, 0), "test", None).unwrap();
        let limiter = limiters.for_model("m");
        let first = limiter.acquire(0).await.unwrap();
        let _second = limiter.acquire(0).await.unwrap();
        let third = tokio::time::timeout(Duration::from_millis(50), limiter.acquire(0)).await;
        assert!(third.is_err(), "a third permit while two are held");
        drop(first);
        let third = tokio::time::timeout(Duration::from_millis(50), limiter.acquire(0)).await;
        assert!(third.is_ok());
    }

    #[tokio::test]
    async fn oversized_calls_do_not_deadlock_and_headers_pause() {
        let limiters = Limiters::new(&options(0, 100), "test", None).unwrap();
        let limiter = limiters.for_model("m");
        let acquired = tokio::time::timeout(Duration::from_secs(3), limiter.acquire(10_000)).await;
        assert!(
            acquired.is_ok(),
            "a call above the whole limit must not hang"
        );

        let other = limiters.for_model("other");
        let headers = RateLimitHeaders {
            remaining_requests: Some(0),
            reset_requests: Some(Duration::from_millis(200)),
            ..RateLimitHeaders::default()
        };
        other.adapt(&headers, 1, Duration::from_secs(60));
        let started = Instant::now();
        drop(other.acquire(1).await.unwrap());
        assert!(started.elapsed() >= Duration::from_millis(190));
    }

    #[tokio::test]
    async fn a_tighter_advertised_request_limit_is_adopted() {
        // Configured: 600 per 1 s window. The provider says 5.
        let limiters = Limiters::new(&options(600, 0), "test", None).unwrap();
        let limiter = limiters.for_model("m");
        let looser = RateLimitHeaders {
            limit_requests: Some(1000),
            ..RateLimitHeaders::default()
        };
        limiter.adapt(&looser, 1, Duration::from_secs(60));
        assert_eq!(
            limiter.advertised_requests(),
            None,
            "a looser limit changes nothing"
        );
        let tighter = RateLimitHeaders {
            limit_requests: Some(5),
            ..RateLimitHeaders::default()
        };
        limiter.adapt(&tighter, 1, Duration::from_secs(60));
        assert_eq!(limiter.advertised_requests(), Some(5));
        // 5 - 1 headroom = 4 per window, burst 1: the 4th take waits about 3/4 of it.
        let started = Instant::now();
        for _ in 0..4 {
            drop(limiter.acquire(0).await.unwrap());
        }
        let paced = started.elapsed();
        assert!(paced >= Duration::from_millis(700), "{paced:?}");
    }
}
