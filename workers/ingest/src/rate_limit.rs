//! A per-source rate limit (GCRA, governor): a burst of webhooks passes at once, the
//! sustained rate is bounded, and a refused request learns when to come back.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// One source's limit; `None` inside means unlimited.
pub(crate) struct RateLimit {
    limiter: Option<DefaultDirectRateLimiter>,
    clock: DefaultClock,
}

impl RateLimit {
    /// `requests_per_second` sustained (0: no limit), `burst` at once (at least 1).
    pub(crate) fn new(requests_per_second: u32, burst: u32) -> Self {
        let clock = DefaultClock::default();
        let limiter = NonZeroU32::new(requests_per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
            RateLimiter::direct_with_clock(
                Quota::per_second(rate).allow_burst(burst),
                clock.clone(),
            )
        });
        RateLimit { limiter, clock }
    }

    /// Takes one request's cell, or says how long until one is free.
    pub(crate) fn check(&self) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let limit = RateLimit::new(1, 2);
        assert!(limit.check().is_ok());
        assert!(limit.check().is_ok());
        let wait = limit.check().unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
    }

    #[test]
    fn zero_is_unlimited() {
        let limit = RateLimit::new(0, 0);
        for _ in 0..10_000 {
            assert!(limit.check().is_ok());
        }
    }
}
