//! The fake's rate limits: requests and tokens over a sliding window, the headers that report
//! them, and what tests measure against them.

use std::time::{Duration, Instant};

use super::{LoggedRequest, Shared, lock};

/// What the limits say about one request.
pub(super) struct Limits {
    pub(super) headers: Vec<(&'static str, String)>,
    /// `Some(wait, which)` when the request is refused.
    pub(super) refused: Option<(Duration, &'static str)>,
}

impl Shared {
    /// Counts a request of `tokens` against the window, unless it would exceed a limit.
    pub(super) fn admit(&self, now: Instant, tokens: u64) -> Limits {
        let options = &self.options;
        let mut window = lock(&self.window);
        while window
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= options.window)
        {
            window.pop_front();
        }
        let used_requests = window.len() as u64;
        let used_tokens: u64 = window.iter().map(|(_, t)| t).sum();
        // When the window will have room for `needed` more of something.
        let room_after = |needed: u64, tokens_kind: bool, limit: u64| -> Duration {
            let mut used = if tokens_kind {
                used_tokens
            } else {
                used_requests
            };
            for (at, t) in window.iter() {
                if used + needed <= limit {
                    break;
                }
                used -= if tokens_kind { *t } else { 1 };
                if used + needed <= limit {
                    return (*at + options.window).saturating_duration_since(now);
                }
            }
            Duration::ZERO
        };

        let mut refused = None;
        if let Some(limit) = options.requests_per_window.map(u64::from)
            && used_requests + 1 > limit
        {
            refused = Some((room_after(1, false, limit), "requests"));
        }
        if let Some(limit) = options.tokens_per_window
            && refused.is_none()
            && used_tokens + tokens > limit
        {
            let wait = if tokens > limit {
                options.window
            } else {
                room_after(tokens, true, limit)
            };
            refused = Some((wait, "tokens"));
        }
        let (requests_now, tokens_now) = if refused.is_none() {
            window.push_back((now, tokens));
            (used_requests + 1, used_tokens + tokens)
        } else {
            (used_requests, used_tokens)
        };
        // When the oldest counted request leaves the window, i.e. when capacity next grows.
        let reset = window.front().map_or(Duration::ZERO, |(at, _)| {
            (*at + options.window).saturating_duration_since(now)
        });
        let mut headers = Vec::new();
        if let Some(limit) = options.requests_per_window.map(u64::from) {
            headers.push(("x-ratelimit-limit-requests", limit.to_string()));
            headers.push((
                "x-ratelimit-remaining-requests",
                limit.saturating_sub(requests_now).to_string(),
            ));
            headers.push(("x-ratelimit-reset-requests", go_duration(reset)));
        }
        if let Some(limit) = options.tokens_per_window {
            headers.push(("x-ratelimit-limit-tokens", limit.to_string()));
            headers.push((
                "x-ratelimit-remaining-tokens",
                limit.saturating_sub(tokens_now).to_string(),
            ));
            headers.push(("x-ratelimit-reset-tokens", go_duration(reset)));
        }
        Limits { headers, refused }
    }
}

/// The most requests and tokens any sliding `window` saw, over `log` entries that `count`.
pub fn max_in_any_window(
    log: &[LoggedRequest],
    window: Duration,
    count: impl Fn(&LoggedRequest) -> bool,
) -> (usize, u64) {
    let mut entries: Vec<(Instant, u64)> = log
        .iter()
        .filter(|r| count(r))
        .map(|r| (r.at, r.tokens))
        .collect();
    entries.sort_by_key(|(at, _)| *at);
    let (mut max_requests, mut max_tokens) = (0, 0);
    for (i, (start, _)) in entries.iter().enumerate() {
        let inside = entries[i..]
            .iter()
            .take_while(|(at, _)| *at < *start + window);
        let (requests, tokens) = inside.fold((0, 0), |(n, t), (_, tokens)| (n + 1, t + tokens));
        max_requests = max_requests.max(requests);
        max_tokens = max_tokens.max(tokens);
    }
    (max_requests, max_tokens)
}

/// A duration as Go prints it, the way OpenAI's reset headers look: `12ms`, `1s`, `6m0s`.
/// Rounded up to the millisecond, so a client that waits this long is never early.
pub fn go_duration(duration: Duration) -> String {
    let millis = duration.as_nanos().div_ceil(1_000_000);
    let duration = Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX));
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let total = duration.as_secs_f64();
    let hours = (total / 3600.0).floor() as u64;
    let minutes = ((total - hours as f64 * 3600.0) / 60.0).floor() as u64;
    let seconds = total - hours as f64 * 3600.0 - minutes as f64 * 60.0;
    let seconds = format!("{:.3}", seconds);
    let seconds = seconds.trim_end_matches('0').trim_end_matches('.');
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_openai::Behaviour;
    use serde_json::Value;

    #[test]
    fn go_durations_look_like_openai_headers() {
        assert_eq!(go_duration(Duration::from_millis(12)), "12ms");
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_secs(360)), "6m0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
    }

    #[test]
    fn windows_are_counted_from_every_start() {
        let at = Instant::now();
        let entry = |ms: u64, tokens: u64| LoggedRequest {
            at: at + Duration::from_millis(ms),
            uri: String::new(),
            body: Value::Null,
            headers: Vec::new(),
            status: 200,
            tokens,
            behaviour: Behaviour::Ok,
            scripted: None,
        };
        let log = vec![
            entry(0, 10),
            entry(500, 10),
            entry(999, 10),
            entry(1000, 50),
        ];
        assert_eq!(
            max_in_any_window(&log, Duration::from_secs(1), |_| true),
            (3, 70)
        );
    }
}
