//! Exponential backoff with jitter: one spacing of retries for every layer that retries
//! (the runtime's records, the model client's attempts, a workflow's steps).

use std::time::{Duration, SystemTime};

use rand::Rng;
use serde::{Deserialize, Serialize};

/// How retries are spaced: `initial * 2^(attempt-1)`, capped at `max`, with "equal jitter"
/// (half fixed, half random) so replicas that failed together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backoff {
    /// Delay before the second attempt.
    #[serde(with = "humantime_serde")]
    pub initial: Duration,
    /// The longest delay between attempts, also the cap on a server's `Retry-After`.
    #[serde(with = "humantime_serde")]
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The longest delay after attempt `attempt` (1-based), before jitter.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        self.initial.saturating_mul(1 << exponent).min(self.max)
    }

    /// The delay after attempt `attempt`. A server's `retry_after` is honoured (up to `max`)
    /// when it asks for longer.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.delay_capped(attempt, retry_after, self.max)
    }

    /// The delay after attempt `attempt`, honouring a server's `retry_after` up to `cap`
    /// when it asks for longer than the backoff would wait.
    pub fn delay_capped(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        cap: Duration,
    ) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        let jittered = half + rand::rng().random_range(Duration::ZERO..=half);
        match retry_after {
            Some(wanted) => jittered.max(wanted.min(cap)),
            None => jittered,
        }
    }

    /// The most time `attempts` tries can spend waiting between them.
    pub fn worst_case_total(&self, attempts: u32) -> Duration {
        (1..attempts).map(|attempt| self.ceiling(attempt)).sum()
    }
}

/// A `Retry-After` value: seconds (fractions allowed), or an HTTP date (one in the past
/// means now). `None` for anything else.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A rate limit's reset given as epoch seconds (GitHub's `x-ratelimit-reset`): how long
/// from `now` until then (a reset in the past means now). `None` for anything else.
pub fn parse_epoch_reset(value: &str, now: SystemTime) -> Option<Duration> {
    let reset: u64 = value.trim().parse().ok()?;
    let now = now.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(Duration::from_secs(reset).saturating_sub(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter_and_cap() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for attempt in 1..=8 {
            let ceiling = backoff.ceiling(attempt);
            assert_eq!(
                ceiling,
                (Duration::from_millis(100) * (1 << (attempt - 1))).min(Duration::from_secs(1))
            );
            for _ in 0..50 {
                let delay = backoff.delay(attempt, None);
                assert!(
                    delay >= ceiling / 2 && delay <= ceiling,
                    "{delay:?} vs {ceiling:?}"
                );
            }
        }
    }

    #[test]
    fn honours_retry_after_up_to_the_cap() {
        let backoff = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_secs(5),
        };
        assert!(backoff.delay(1, Some(Duration::from_secs(2))) >= Duration::from_secs(2));
        assert!(backoff.delay(1, Some(Duration::from_secs(60))) <= Duration::from_secs(5));
    }

    #[test]
    fn worst_case_sums_the_ceilings() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
        };
        assert_eq!(
            backoff.worst_case_total(4),
            Duration::from_millis(100 + 200 + 400)
        );
    }

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
