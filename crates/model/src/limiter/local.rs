//! The in-process buckets: governor's GCRA limiter.

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::spec::BucketSpec;

/// One in-process bucket.
#[derive(Debug)]
pub struct LocalBucket {
    limiter: DefaultDirectRateLimiter,
}

impl LocalBucket {
    /// A bucket shaped by `spec` (whose interval and burst are never zero).
    pub fn new(spec: &BucketSpec) -> Option<Self> {
        let quota = Quota::with_period(spec.interval)?.allow_burst(NonZeroU32::new(spec.burst)?);
        Some(LocalBucket {
            limiter: RateLimiter::direct(quota),
        })
    }

    /// Waits until `cells` (at most the burst) are available and takes them.
    pub async fn take(&self, cells: u32) {
        let Some(cells) = NonZeroU32::new(cells) else {
            return;
        };
        // Callers split takes into chunks of at most the burst, so capacity always suffices;
        // were it not so, taking nothing is the one answer that cannot deadlock.
        if self.limiter.until_n_ready(cells).await.is_err() {
            tracing::warn!(cells, "limiter take larger than its burst was skipped");
        }
    }
}
