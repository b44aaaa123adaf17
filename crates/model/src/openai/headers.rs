//! What providers say about their limits in response headers.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

/// The `x-ratelimit-*` headers of a reply (OpenAI, Azure and LiteLLM send them).
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
    /// Reads the headers; absent or unparsable ones are `None`.
    pub fn parse(headers: &HeaderMap) -> Self {
        let number = |name: &str| header_str(headers, name).and_then(|v| v.trim().parse().ok());
        let duration = |name: &str| header_str(headers, name).and_then(parse_reset);
        RateLimitHeaders {
            limit_requests: number("x-ratelimit-limit-requests"),
            limit_tokens: number("x-ratelimit-limit-tokens"),
            remaining_requests: number("x-ratelimit-remaining-requests"),
            remaining_tokens: number("x-ratelimit-remaining-tokens"),
            reset_requests: duration("x-ratelimit-reset-requests"),
            reset_tokens: duration("x-ratelimit-reset-tokens"),
        }
    }
}

/// A header's value as text.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// A reset value: a Go-style duration (`6m0s`, `1s`, `12ms`, `1h2m3.5s`) as OpenAI sends,
/// or plain seconds (`20`, `0.5`) as some proxies send.
fn parse_reset(text: &str) -> Option<Duration> {
    let text = text.trim();
    parse_go_duration(text).or_else(|| parse_seconds(text))
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

/// Non-negative seconds, possibly fractional.
fn parse_seconds(text: &str) -> Option<Duration> {
    let seconds: f64 = text.trim().parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// How long the provider asks us to wait: `retry-after-ms` (OpenAI, Azure), then
/// `retry-after` in seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let millis = header_str(headers, "retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok());
    if let Some(wait) = millis.and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok()) {
        return Some(wait);
    }
    let value = header_str(headers, "retry-after")?.trim();
    if let Some(seconds) = parse_seconds(value) {
        return Some(seconds);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
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
        assert_eq!(parse_reset("5"), Some(Duration::from_secs(5)));
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
}
