//! What providers say about their limits in response headers.

use std::time::{Duration, SystemTime};

use chatgptd_types::backoff::parse_retry_after;
use reqwest::header::HeaderMap;

/// The prefixes under which gateways report a limit: OpenAI and Azure send `x-ratelimit-*`;
/// LiteLLM sends a key's own limits as `x-ratelimit-api_key-*` and passes the provider's
/// headers on as `llm_provider-*`.
const LIMIT_PREFIXES: [&str; 3] = [
    "x-ratelimit-",
    "x-ratelimit-api_key-",
    "llm_provider-x-ratelimit-",
];

/// The rate-limit headers of a reply, in any of the styles above. When several styles
/// report the same figure, the most restrictive wins: whichever limit is nearest decides
/// when the next request would get a 429.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    pub limit_requests: Option<u64>,
    pub limit_tokens: Option<u64>,
    pub remaining_requests: Option<u64>,
    pub remaining_tokens: Option<u64>,
    /// How long until the request limit is replenished.
    pub reset_requests: Option<Duration>,
    /// How long until the token limit is replenished.
    pub reset_tokens: Option<Duration>,
}

impl RateLimitHeaders {
    /// The same headers, with `reset` standing in for the resets they do not give.
    pub fn or_reset(&self, reset: Option<Duration>) -> Self {
        RateLimitHeaders {
            reset_requests: self.reset_requests.or(reset),
            reset_tokens: self.reset_tokens.or(reset),
            ..*self
        }
    }

    /// Reads the headers; absent or unparsable ones are `None`.
    pub fn parse(headers: &HeaderMap) -> Self {
        let now = SystemTime::now();
        let each = |suffix: &str| -> Vec<&str> {
            LIMIT_PREFIXES
                .iter()
                .filter_map(|prefix| header_str(headers, &format!("{prefix}{suffix}")))
                .collect()
        };
        let least = |suffix: &str| {
            each(suffix)
                .into_iter()
                .filter_map(|v| v.trim().parse::<u64>().ok())
                .min()
        };
        let longest = |suffix: &str| {
            each(suffix)
                .into_iter()
                .filter_map(|v| parse_reset(v, now))
                .max()
        };
        RateLimitHeaders {
            limit_requests: least("limit-requests"),
            limit_tokens: least("limit-tokens"),
            remaining_requests: least("remaining-requests"),
            remaining_tokens: least("remaining-tokens"),
            reset_requests: longest("reset-requests"),
            reset_tokens: longest("reset-tokens"),
        }
    }
}

/// A header's value as text.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// A reset value: a Go-style duration (`6m0s`, `1s`, `12ms`, `1h2m3.5s`) as OpenAI sends,
/// plain seconds (`20`, `0.5`) as some proxies send, or a Unix time in seconds.
fn parse_reset(text: &str, now: SystemTime) -> Option<Duration> {
    let text = text.trim();
    parse_go_duration(text).or_else(|| parse_seconds_or_time(text, now))
}

/// Seconds to wait, or, for values that can only be a Unix time, the wait until it.
fn parse_seconds_or_time(text: &str, now: SystemTime) -> Option<Duration> {
    /// No limit resets in more than a few years: larger numbers are timestamps.
    const SMALLEST_UNIX_TIME: f64 = 1e9;
    let seconds: f64 = text.trim().parse().ok()?;
    if seconds >= SMALLEST_UNIX_TIME {
        let at = SystemTime::UNIX_EPOCH + Duration::try_from_secs_f64(seconds).ok()?;
        return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
    }
    Duration::try_from_secs_f64(seconds).ok()
}

/// Parses a Go `time.Duration` string: a sequence of decimal numbers with units `h`, `m`,
/// `s`, `ms`, `us` (or `µs`), `ns`.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let value: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" | "μs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * seconds_per_unit;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// How long the provider asks us to wait, in the styles real gateways send: `retry-after-ms`
/// (OpenAI, Azure), `retry-after` in seconds or as an HTTP date, and the provider's own
/// headers as LiteLLM passes them on (`llm_provider-retry-after[-ms]`; LiteLLM's 429 for a
/// deployment limit carries only those). The first style present wins.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    ["", "llm_provider-", "x-ms-"]
        .iter()
        .find_map(|prefix| retry_after_with(headers, prefix, now))
}

fn retry_after_with(headers: &HeaderMap, prefix: &str, now: SystemTime) -> Option<Duration> {
    let millis = header_str(headers, &format!("{prefix}retry-after-ms"))
        .and_then(|v| v.trim().parse::<f64>().ok());
    if let Some(wait) = millis.and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok()) {
        return Some(wait);
    }
    let value = header_str(headers, &format!("{prefix}retry-after"))?;
    parse_retry_after(value, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("12ms"), Some(Duration::from_millis(12)));
        assert_eq!(parse_go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_go_duration("1h2m3.5s"),
            Some(Duration::from_millis(3_723_500))
        );
        assert_eq!(parse_go_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("5x"), None);
        assert_eq!(parse_go_duration("ms"), None);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_reset("5", now), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_reset("1700000030", now),
            Some(Duration::from_secs(30)),
            "a Unix time"
        );
    }

    #[test]
    fn rate_limit_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-limit-requests", HeaderValue::from_static("60"));
        headers.insert(
            "x-ratelimit-remaining-tokens",
            HeaderValue::from_static("149984"),
        );
        headers.insert("x-ratelimit-reset-requests", HeaderValue::from_static("1s"));
        headers.insert("x-ratelimit-reset-tokens", HeaderValue::from_static("6m0s"));
        let parsed = RateLimitHeaders::parse(&headers);
        assert_eq!(parsed.limit_requests, Some(60));
        assert_eq!(parsed.remaining_tokens, Some(149_984));
        assert_eq!(parsed.remaining_requests, None);
        assert_eq!(parsed.reset_requests, Some(Duration::from_secs(1)));
        assert_eq!(parsed.reset_tokens, Some(Duration::from_secs(360)));
    }

    #[test]
    fn retry_after_prefers_milliseconds_then_seconds_then_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(
            retry_after(&headers, now),
            Some(Duration::from_millis(1500))
        );

        let mut dated = HeaderMap::new();
        let at = httpdate::fmt_http_date(now + Duration::from_secs(30));
        dated.insert("retry-after", HeaderValue::from_str(&at).unwrap());
        assert_eq!(retry_after(&dated, now), Some(Duration::from_secs(30)));
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn litellm_styles() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        // A deployment limit hit behind LiteLLM: only the provider's header, prefixed.
        let mut headers = HeaderMap::new();
        headers.insert("llm_provider-retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        headers.insert("retry-after", HeaderValue::from_static("60"));
        assert_eq!(
            retry_after(&headers, now),
            Some(Duration::from_secs(60)),
            "a plain retry-after wins"
        );
        let mut azure = HeaderMap::new();
        azure.insert("x-ms-retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&azure, now), Some(Duration::from_millis(250)));

        // Key-level limits beside the deployment's: the tighter figure counts.
        let mut limits = HeaderMap::new();
        limits.insert(
            "x-ratelimit-limit-requests",
            HeaderValue::from_static("600"),
        );
        limits.insert(
            "x-ratelimit-api_key-limit-requests",
            HeaderValue::from_static("5"),
        );
        limits.insert(
            "x-ratelimit-api_key-remaining-requests",
            HeaderValue::from_static("0"),
        );
        limits.insert(
            "llm_provider-x-ratelimit-remaining-tokens",
            HeaderValue::from_static("1200"),
        );
        let parsed = RateLimitHeaders::parse(&limits);
        assert_eq!(parsed.limit_requests, Some(5));
        assert_eq!(parsed.remaining_requests, Some(0));
        assert_eq!(parsed.remaining_tokens, Some(1200));
        assert_eq!(parsed.reset_requests, None);
    }
}
