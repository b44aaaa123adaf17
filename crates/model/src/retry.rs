//! Retry classification and backoff.
//!
//! Retried: 408, 409, 429 (unless its code is `insufficient_quota`: more attempts cannot buy
//! credit), every 5xx, timeouts and refused connections. Not retried: other 4xx (the request is
//! wrong), and a 2xx whose body is malformed (the call was served and paid for; the worker
//! decides whether to ask again).

use std::time::Duration;

use crate::options::RetryOptions;

/// The OpenAI error code of a spent quota.
pub const INSUFFICIENT_QUOTA: &str = "insufficient_quota";

/// Whether an HTTP status (with the error body's `code`) is worth another attempt.
pub fn is_retryable_status(status: u16, error_code: Option<&str>) -> bool {
    match status {
        408 | 409 => true,
        429 => error_code != Some(INSUFFICIENT_QUOTA),
        500..=599 => true,
        _ => false,
    }
}

/// How attempts are spaced: the one [`chatgptd_types::backoff::Backoff`], with a provider's
/// `retry-after` winning when it asks for longer, up to `retry_after_cap`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    spacing: chatgptd_types::backoff::Backoff,
    retry_after_cap: Duration,
}

impl Backoff {
    /// The backoff of `options`.
    pub fn new(options: &RetryOptions) -> Self {
        Backoff {
            spacing: chatgptd_types::backoff::Backoff {
                initial: options.backoff_initial,
                max: options.backoff_max,
            },
            retry_after_cap: options.retry_after_cap,
        }
    }

    /// The delay after failed attempt `attempt` (1-based).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.spacing
            .delay_capped(attempt, retry_after, self.retry_after_cap)
    }

    /// A provider's requested pause, capped.
    pub fn cap(&self, wanted: Duration) -> Duration {
        wanted.min(self.retry_after_cap)
    }

    /// The longest pause a provider may ask for.
    pub fn retry_after_cap(&self) -> Duration {
        self.retry_after_cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_openai_guidance() {
        for status in [408, 409, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(status, None), "{status}");
        }
        assert!(is_retryable_status(429, Some("rate_limit_exceeded")));
        assert!(!is_retryable_status(429, Some(INSUFFICIENT_QUOTA)));
        for status in [400, 401, 403, 404, 422] {
            assert!(!is_retryable_status(status, None), "{status}");
        }
    }

    #[test]
    fn delay_grows_with_jitter_and_honours_capped_retry_after() {
        let backoff = Backoff::new(&RetryOptions {
            max_attempts: 5,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
            retry_after_cap: Duration::from_secs(2),
        });
        for _ in 0..50 {
            let first = backoff.delay(1, None);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let late = backoff.delay(6, None);
            assert!(late >= Duration::from_millis(150) && late <= Duration::from_millis(300));
        }
        assert_eq!(
            backoff.delay(1, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            backoff.delay(1, Some(Duration::from_secs(90))),
            Duration::from_secs(2)
        );
    }
}
