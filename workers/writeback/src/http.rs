//! Outbound HTTP to one tracker, as layers: a rate limit, a timeout per request, and the
//! classification of every failure into what the runtime should do with the record.
//!
//! One try of a record makes each request once; retrying is the runtime's job (with
//! backoff, honouring the `retry_after` set here), and the idempotency steps make a retried
//! write safe. Classification:
//!
//! | answer | kind | class |
//! |---|---|---|
//! | 429; 503 with `Retry-After`; 403 with `Retry-After` or `x-ratelimit-remaining: 0` (GitHub's limits) | unavailable: waits `Retry-After` in full, never dead-lettered | `tracker_rate_limited` |
//! | other 5xx, 408, timeouts, refused or reset connections | retryable | `tracker_unavailable` |
//! | 409 (a concurrent edit) | retryable | `tracker_conflict` |
//! | a 2xx listing that is not the documented JSON (checked by each tracker) | retryable | `tracker_malformed` |
//! | 401 | unavailable: retried until fixed, never dead-lettered | `tracker_auth` |
//! | other 403 | permanent: dead-lettered | `tracker_forbidden` |
//! | 404, 400, 422 and other 4xx | permanent: dead-lettered | `tracker_rejected` |
//!
//! A rate limit, like a 401, is the tracker's state and not the record's: counting it as a
//! failed attempt would dead-letter healthy records whenever a limit lasts longer than the
//! retries (GitHub's primary limit resets hourly), so the worker waits as long as asked.
//! A 401 says the credential is wrong or expired. That is true of every record, not of this
//! one: dead-lettering would empty the topic into the dead-letter topic until someone
//! rotates the token, so the worker stalls instead (offsets stay, `tracker_auth` errors and
//! the lag grow, which is what alerts should watch). A 403 without a rate-limit sign is
//! about one resource (a project or repository the account may not write to): the other
//! records can still be written, so this one is dead-lettered and can be replayed once
//! access is granted.

use std::num::NonZeroU32;
use std::time::{Duration, SystemTime};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use serde_json::Value;

use chatgptd_runtime::ProcessError;

use crate::Error;
use crate::secret::Secret;
use crate::source::Source;
use crate::telemetry::{RetryAfterRequested, TrackerRequest};

/// The most characters of an error body kept in an error message.
const MAX_ERROR_TEXT: usize = 300;

/// Sent to every tracker; GitHub refuses requests without one.
const USER_AGENT: &str = concat!("chatgptd-writeback/", env!("CARGO_PKG_VERSION"));

/// A tracker's HTTP endpoint: base URL, headers (auth marked sensitive), limit, timeout.
pub(crate) struct TrackerHttp {
    source: Source,
    client: reqwest::Client,
    base: Url,
    limiter: Option<DefaultDirectRateLimiter>,
}

impl std::fmt::Debug for TrackerHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackerHttp")
            .field("source", &self.source)
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// A 2xx answer.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The parsed body; `Null` when empty (204) or not JSON.
    pub body: Value,
}

impl TrackerHttp {
    /// An endpoint at `base_url` sending `headers` with every request.
    pub fn new(
        source: Source,
        base_url: &str,
        headers: HeaderMap,
        timeout: Duration,
        requests_per_second: u32,
    ) -> Result<Self, Error> {
        install_crypto_provider();
        let base = Url::parse(base_url)
            .ok()
            .filter(|url| !url.cannot_be_a_base())
            .ok_or_else(|| Error::Config(format!("{}: bad URL {base_url:?}", source.as_str())))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .build()
            .map_err(|err| Error::HttpClient {
                source_name: source.as_str(),
                message: err.to_string(),
            })?;
        let limiter = NonZeroU32::new(requests_per_second)
            .map(|rate| RateLimiter::direct(Quota::per_second(rate)));
        Ok(TrackerHttp {
            source,
            client,
            base,
            limiter,
        })
    }

    /// The base URL with `segments` appended, each percent-encoded (a `/` in an id cannot
    /// change the path).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        // `new` checked the base can have a path, so this always succeeds.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Sends one request and classifies the answer. `what` names the call in errors.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Reply, ProcessError> {
        if let Some(limiter) = &self.limiter {
            // Queueing for our own limit is waiting, which the record's timeout does not count.
            chatgptd_types::waiting::waiting(limiter.until_ready()).await;
        }
        let source = self.source.as_str();
        let mut request = self.client.request(method, url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                let status = if err.is_timeout() {
                    "timeout"
                } else if err.is_connect() {
                    "connect"
                } else {
                    "error"
                };
                TrackerRequest { source, status }.emit();
                return Err(ProcessError::retryable(
                    "tracker_unavailable",
                    format!("{source} {what}: {err}"),
                ));
            }
        };
        let status = response.status().as_u16();
        TrackerRequest {
            source,
            status: TrackerRequest::status_label(status),
        }
        .emit();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|err| {
            ProcessError::retryable(
                "tracker_unavailable",
                format!("{source} {what}: reading the answer: {err}"),
            )
        })?;
        if (200..300).contains(&status) {
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Ok(Reply { body });
        }
        let error = classify(source, what, status, &headers, &bytes, SystemTime::now());
        if let Some(wait) = error.retry_after {
            RetryAfterRequested { source, wait }.emit();
        }
        Err(error)
    }
}

/// `Authorization: Basic base64(user:secret)`, marked sensitive so it is never printed.
pub(crate) fn basic_auth(user: &str, secret: &Secret) -> Result<HeaderValue, Error> {
    use base64::Engine;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", secret.expose()));
    sensitive(format!("Basic {encoded}"))
}

/// `Authorization: Bearer <token>`, marked sensitive.
pub(crate) fn bearer(token: &Secret) -> Result<HeaderValue, Error> {
    sensitive(format!("Bearer {}", token.expose()))
}

fn sensitive(value: String) -> Result<HeaderValue, Error> {
    let mut value = HeaderValue::from_str(&value)
        .map_err(|_| Error::Config("a credential is not a valid HTTP header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// What a non-2xx answer means for the record (see the module docs for the table).
fn classify(
    source: &str,
    what: &str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> ProcessError {
    let message = format!("{source} {what}: HTTP {status}: {}", excerpt(body));
    let wait = retry_after(headers, now);
    let github_limit_spent = header(headers, "x-ratelimit-remaining") == Some("0");
    let rate_limited = status == 429
        || (status == 503 && wait.is_some())
        || (status == 403 && (wait.is_some() || github_limit_spent));
    if rate_limited {
        let wait = wait.or_else(|| github_reset(headers, now));
        let error = ProcessError::unavailable("tracker_rate_limited", message);
        return match wait {
            Some(wait) => error.with_retry_after(wait),
            None => error,
        };
    }
    match status {
        401 => ProcessError::unavailable("tracker_auth", message),
        403 => ProcessError::permanent("tracker_forbidden", message),
        408 | 500..=599 => ProcessError::retryable("tracker_unavailable", message),
        409 => ProcessError::retryable("tracker_conflict", message),
        // 3xx: reqwest follows redirects, so one that arrives here leads nowhere useful.
        _ => ProcessError::permanent("tracker_rejected", message),
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
}

/// `Retry-After` in seconds or as an HTTP date (a date in the past means now).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    chatgptd_types::backoff::parse_retry_after(header(headers, "retry-after")?, now)
}

/// GitHub's primary limit: `x-ratelimit-reset` is when the window resets, in epoch seconds.
fn github_reset(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    chatgptd_types::backoff::parse_epoch_reset(header(headers, "x-ratelimit-reset")?, now)
}

/// The start of an error body, on one line, for error messages and dead-letter headers.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= MAX_ERROR_TEXT {
        return one_line;
    }
    let cut: String = one_line.chars().take(MAX_ERROR_TEXT).collect();
    format!("{cut}…")
}

/// reqwest is built without a TLS crypto provider: install ring's once for the process (an
/// error means another one is installed, which serves as well).
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatgptd_runtime::ErrorKind;
    use std::time::UNIX_EPOCH;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn class(status: u16, pairs: &[(&'static str, &str)]) -> ProcessError {
        classify(
            "jira",
            "posting",
            status,
            &headers(pairs),
            b"{}",
            SystemTime::now(),
        )
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let seconds = headers(&[("retry-after", "7")]);
        assert_eq!(retry_after(&seconds, now), Some(Duration::from_secs(7)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        let dated = headers(&[("retry-after", &date)]);
        assert_eq!(retry_after(&dated, now), Some(Duration::from_secs(30)));
        let past = headers(&[("retry-after", "Thu, 01 Jan 2015 00:00:00 GMT")]);
        assert_eq!(retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
    }

    #[test]
    fn rate_limits_are_retried_after_the_trackers_wait() {
        let limited = class(429, &[("retry-after", "3")]);
        assert_eq!(
            (limited.kind, limited.class),
            (ErrorKind::Unavailable, "tracker_rate_limited")
        );
        assert_eq!(limited.retry_after, Some(Duration::from_secs(3)));
        assert_eq!(
            class(503, &[("retry-after", "1")]).class,
            "tracker_rate_limited"
        );
        assert_eq!(class(503, &[]).class, "tracker_unavailable");
        let secondary = class(403, &[("retry-after", "60")]);
        assert_eq!(secondary.retry_after, Some(Duration::from_secs(60)));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let reset = (now + 100).to_string();
        let primary = class(
            403,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset),
            ],
        );
        assert_eq!(primary.class, "tracker_rate_limited");
        assert!(primary.retry_after.unwrap() > Duration::from_secs(90));
    }

    #[test]
    fn auth_stalls_and_rejections_are_dead_lettered() {
        assert_eq!(class(401, &[]).kind, ErrorKind::Unavailable);
        assert_eq!(class(403, &[]).kind, ErrorKind::Permanent);
        let gone = classify(
            "github",
            "posting the comment",
            404,
            &HeaderMap::new(),
            b"{\"message\": \"Not Found\",\n \"status\": \"404\"}",
            SystemTime::now(),
        );
        assert_eq!(
            (gone.kind, gone.class),
            (ErrorKind::Permanent, "tracker_rejected")
        );
        assert_eq!(
            gone.message,
            "github posting the comment: HTTP 404: {\"message\": \"Not Found\", \"status\": \"404\"}"
        );
        assert_eq!(class(500, &[]).kind, ErrorKind::Retryable);
        assert_eq!(class(409, &[]).class, "tracker_conflict");
    }

    #[test]
    fn long_error_bodies_are_cut() {
        let text = excerpt("é".repeat(1000).as_bytes());
        assert_eq!(text.chars().count(), MAX_ERROR_TEXT + 1);
    }
}
