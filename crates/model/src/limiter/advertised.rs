//! The request limit a provider advertises, adopted when it is tighter than ours.
//!
//! A gateway in front of the model (LiteLLM with a key or deployment limit, an Azure
//! deployment) may allow fewer requests than `requests_per_minute` says. Every reply then
//! carries `x-ratelimit-limit-requests` (or its `api_key` form), and without adopting it a
//! backlog would cost a 429 for every request past it. So the limiter keeps a second request
//! bucket shaped like the advertised limit and takes a cell from both.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::local::LocalBucket;
use super::redis::RedisBackend;
use super::spec::BucketSpec;
use crate::error::Error;
use crate::options::LimitOptions;

/// The advertised request bucket of one model, once a reply has advertised a limit.
#[derive(Debug)]
pub(super) struct Advertised {
    window: Duration,
    burst_fraction: f64,
    /// Cells kept back, as for the configured request bucket.
    headroom: u32,
    /// The configured request limit; an advertised one is adopted only below it.
    configured: u32,
    /// Where the shared bucket lives, when buckets are in Redis.
    redis: Option<(RedisBackend, String)>,
    current: Mutex<Option<Arc<Bucket>>>,
}

#[derive(Debug)]
struct Bucket {
    advertised: u32,
    spec: BucketSpec,
    local: Option<LocalBucket>,
}

impl Advertised {
    pub(super) fn new(
        window: Duration,
        burst_fraction: f64,
        headroom: u32,
        configured: u32,
        redis: Option<(RedisBackend, String)>,
    ) -> Self {
        Advertised {
            window,
            burst_fraction,
            headroom,
            configured,
            redis,
            current: Mutex::new(None),
        }
    }

    /// The advertised limit in force, if any.
    pub(super) fn limit(&self) -> Option<u32> {
        self.lock().as_ref().map(|bucket| bucket.advertised)
    }

    /// Adopts `limit` requests per window when it is tighter than the configured limit (0
    /// configured: no limit, so any advertised one is tighter). A changed figure replaces the
    /// bucket; the same figure keeps it, so its pacing carries on.
    pub(super) fn adopt(&self, limit: u64, model: &str) {
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        if limit == 0 || (self.configured != 0 && limit >= self.configured) {
            return;
        }
        let mut current = self.lock();
        if current.as_ref().is_some_and(|b| b.advertised == limit) {
            return;
        }
        // Shaped as the configured request bucket would be for this limit.
        let limits = LimitOptions {
            requests_per_minute: limit,
            burst_fraction: self.burst_fraction,
            ..LimitOptions::default()
        };
        let Some(spec) = BucketSpec::requests(&limits, self.window, self.headroom) else {
            return;
        };
        let local = match self.redis {
            Some(_) => None,
            None => LocalBucket::new(&spec),
        };
        tracing::info!(%model, limit, configured = self.configured, "adopting the request limit the provider advertises");
        *current = Some(Arc::new(Bucket {
            advertised: limit,
            spec,
            local,
        }));
    }

    /// Takes one request cell from the advertised bucket, if there is one.
    pub(super) async fn take(&self) -> Result<(), Error> {
        let Some(bucket) = self.lock().clone() else {
            return Ok(());
        };
        match (&self.redis, &bucket.local) {
            (Some((backend, key)), _) => backend.take(&[(key.as_str(), &bucket.spec, 1)]).await,
            (None, Some(local)) => {
                local.take(1).await;
                Ok(())
            }
            (None, None) => Ok(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<Bucket>>> {
        self.current
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}
