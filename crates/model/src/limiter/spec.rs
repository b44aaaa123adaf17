//! The shape of one GCRA bucket, chosen so that no sliding window exceeds the limit.
//!
//! A GCRA bucket with burst `B` and emission interval `T` admits at most `B + ceil(W/T) - 1`
//! cells in any window of length `W`: the burst at the window's start, then one per `T`.
//! With `T = W / (L - B + 1)` that is exactly `L`. So the limit is split: `B` may go at once
//! after a quiet period, the remaining `L - B` (plus one) are paced evenly. A token bucket
//! refilled at `L / W` with burst `L` (what providers describe) would admit almost `2L` in
//! the first window, which is the overshoot this avoids.

use std::time::Duration;

use crate::options::LimitOptions;

/// The window is stretched by this share (and at least [`MIN_WINDOW_MARGIN`]), so that the
/// jitter between a grant here and the moment the provider counts the request (scheduling, a
/// new connection's handshakes) cannot push a window over the limit.
const WINDOW_MARGIN_DIVISOR: u32 = 100;

/// The least stretch of the window.
const MIN_WINDOW_MARGIN: Duration = Duration::from_millis(50);

/// A GCRA bucket: `burst` cells at once, then one every `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketSpec {
    /// The most cells any sliding window admits.
    pub limit: u32,
    /// Cells available at once after a quiet period; also the largest single take.
    pub burst: u32,
    /// Time to earn one cell back.
    pub interval: Duration,
}

impl BucketSpec {
    /// A bucket admitting at most `limit - headroom` cells per `window`. `None` for no limit.
    /// `headroom` keeps cells for takes that land later than they were granted.
    pub fn new(limit: u32, window: Duration, burst: u32, headroom: u32) -> Option<BucketSpec> {
        if limit == 0 {
            return None;
        }
        let limit = if limit > headroom {
            limit - headroom
        } else {
            limit
        };
        let burst = burst.clamp(1, limit);
        let window = window + (window / WINDOW_MARGIN_DIVISOR).max(MIN_WINDOW_MARGIN);
        let paced = u128::from(limit - burst + 1);
        let interval_nanos = window.as_nanos().div_ceil(paced);
        let interval = Duration::from_nanos(u64::try_from(interval_nanos).unwrap_or(u64::MAX));
        Some(BucketSpec {
            limit,
            burst,
            interval: interval.max(Duration::from_nanos(1)),
        })
    }

    /// The request bucket of `limits`.
    pub fn requests(limits: &LimitOptions, window: Duration, headroom: u32) -> Option<Self> {
        let burst = share(limits.requests_per_minute, limits.burst_fraction);
        BucketSpec::new(limits.requests_per_minute, window, burst, headroom)
    }

    /// The token bucket of `limits`. Its burst fits one call with the default completion
    /// budget and a modest prompt (up to half the limit), so that typical calls are taken
    /// in one piece.
    pub fn tokens(
        limits: &LimitOptions,
        window: Duration,
        default_completion: u32,
    ) -> Option<Self> {
        let limit = limits.tokens_per_minute;
        let one_call = default_completion.saturating_add(default_completion / 2);
        let burst = share(limit, limits.burst_fraction).max(one_call.min(limit / 2));
        BucketSpec::new(limit, window, burst, 0)
    }

    /// Splits `cost` into takes of at most `burst`; the last is taken together with the
    /// request cell, the others before it.
    pub fn chunks(&self, cost: u32) -> Vec<u32> {
        let mut chunks = Vec::new();
        let mut left = cost;
        while left > self.burst {
            chunks.push(self.burst);
            left -= self.burst;
        }
        if left > 0 {
            chunks.push(left);
        }
        chunks
    }
}

/// `fraction` of `limit`, rounded up.
fn share(limit: u32, fraction: f64) -> u32 {
    (f64::from(limit) * fraction).ceil() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Admission times of a GCRA bucket fed as fast as it allows, for `cells` cells.
    fn admissions(spec: &BucketSpec, cells: usize) -> Vec<Duration> {
        let tau = spec.interval * (spec.burst - 1);
        let mut tat = Duration::ZERO;
        let mut now = Duration::ZERO;
        let mut times = Vec::new();
        for _ in 0..cells {
            now = now.max(tat.saturating_sub(tau));
            times.push(now);
            tat = tat.max(now) + spec.interval;
        }
        times
    }

    #[test]
    fn no_window_exceeds_the_limit_and_the_steady_rate_is_close_to_it() {
        let window = Duration::from_secs(60);
        for (limit, burst) in [(600, 12), (20, 1), (10, 10), (1000, 50)] {
            let spec = BucketSpec::new(limit, window, burst, 0).unwrap();
            let times = admissions(&spec, limit as usize * 3);
            for (i, start) in times.iter().enumerate() {
                let inside = times[i..]
                    .iter()
                    .take_while(|t| **t < *start + window)
                    .count();
                assert!(
                    inside <= limit as usize,
                    "{limit}/{burst}: {inside} in a window"
                );
            }
            let steady = window.as_secs_f64() / spec.interval.as_secs_f64();
            let expected = f64::from(limit - spec.burst + 1) * 100.0 / 101.0;
            assert!((steady - expected).abs() < 1.0, "{steady} vs {expected}");
        }
    }

    #[test]
    fn headroom_burst_and_chunks() {
        let window = Duration::from_secs(2);
        let spec = BucketSpec::new(20, window, 1, 1).unwrap();
        assert_eq!(spec.limit, 19);
        assert!(BucketSpec::new(0, window, 1, 0).is_none());
        assert_eq!(BucketSpec::new(1, window, 5, 1).unwrap().limit, 1);

        let limits = LimitOptions {
            tokens_per_minute: 10_000,
            burst_fraction: 0.02,
            ..LimitOptions::default()
        };
        let tokens = BucketSpec::tokens(&limits, window, 1024).unwrap();
        assert_eq!(tokens.burst, 1536);
        assert_eq!(tokens.chunks(4000), vec![1536, 1536, 928]);
        assert_eq!(tokens.chunks(100), vec![100]);
        assert!(tokens.chunks(0).is_empty());
    }
}
