//! The `openai` provider: one HTTP attempt against `POST {base_url}/chat/completions`, and
//! the classification of its outcome. Retries and limits are the client's business.

pub mod headers;
pub mod wire;

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use crate::error::Error;
use crate::retry::{INSUFFICIENT_QUOTA, is_retryable_status};
use headers::{RateLimitHeaders, header_str};
use wire::{WireErrorBody, WireRequest, WireResponse};

/// The most characters of an error body kept in an error message.
const MAX_ERROR_TEXT: usize = 500;

/// An API key: its Debug output never shows it.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: String) -> Self {
        ApiKey(key)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Where and how to send: resolved from the options and the environment.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub base_url: String,
    pub api_key: Option<ApiKey>,
    /// Header name and value; the values of secret headers are marked sensitive.
    pub headers: Vec<(String, String, bool)>,
    pub query: Vec<(String, String)>,
    pub timeout: Duration,
}

/// An OpenAI-compatible endpoint.
#[derive(Clone)]
pub struct OpenAiProvider {
    http: reqwest::Client,
    url: reqwest::Url,
    base_url: String,
    headers: HeaderMap,
    timeout: Duration,
}

impl fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // HeaderMap's Debug prints "Sensitive" for secret values; names are fine to show.
        f.debug_struct("OpenAiProvider")
            .field("url", &self.url.as_str())
            .field("headers", &self.headers)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A 2xx reply, parsed.
#[derive(Debug)]
pub struct Served {
    pub response: WireResponse,
    pub request_id: Option<String>,
    pub limits: RateLimitHeaders,
    pub latency: Duration,
}

/// A failed attempt, classified.
#[derive(Debug)]
pub struct Failed {
    /// The error to return when this is the last attempt.
    pub error: Error,
    /// Whether another attempt may help.
    pub retryable: bool,
    /// The provider's requested pause, uncapped.
    pub retry_after: Option<Duration>,
    /// The reply's rate-limit headers, when there was a reply.
    pub limits: Option<RateLimitHeaders>,
    /// For a 429: which limit (`requests`, `tokens`, `quota`, `unknown`).
    pub limit_kind: Option<&'static str>,
    /// The attempt's bounded status label.
    pub status_label: &'static str,
    pub latency: Duration,
}

impl OpenAiProvider {
    /// A provider for `endpoint`.
    pub fn new(endpoint: &Endpoint) -> Result<Self, Error> {
        crate::install_crypto_provider();
        let base = endpoint.base_url.trim_end_matches('/');
        let mut url = reqwest::Url::parse(&format!("{base}/chat/completions"))
            .map_err(|err| Error::Config(format!("base_url {base:?}: {err}")))?;
        if !endpoint.query.is_empty() {
            url.query_pairs_mut().extend_pairs(endpoint.query.iter());
        }
        let mut headers = HeaderMap::new();
        for (name, value, sensitive) in &endpoint.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|err| Error::Config(format!("header {name:?}: {err}")))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| Error::Config(format!("header {name:?}: invalid value")))?;
            value.set_sensitive(*sensitive);
            headers.insert(header, value);
        }
        if let Some(ApiKey(key)) = &endpoint.api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| Error::Config("the API key is not a valid header value".into()))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .build()
            .map_err(|err| Error::Config(format!("HTTP client: {err}")))?;
        Ok(OpenAiProvider {
            http,
            url,
            base_url: base.to_string(),
            headers,
            timeout: endpoint.timeout,
        })
    }

    /// The base URL, for reports and cache keys.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// One attempt.
    pub async fn send(&self, body: &WireRequest<'_>) -> Result<Served, Failed> {
        let started = Instant::now();
        let sent = self
            .http
            .post(self.url.clone())
            .headers(self.headers.clone())
            .timeout(self.timeout)
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => return Err(transport_failure(&err, started.elapsed())),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let limits = RateLimitHeaders::parse(&headers);
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(err) => return Err(transport_failure(&err, started.elapsed())),
        };
        let latency = started.elapsed();
        if (200..300).contains(&status) {
            let response: WireResponse = serde_json::from_slice(&body).map_err(|err| Failed {
                error: Error::Malformed(format!("not a chat completion: {err}")),
                retryable: false,
                retry_after: None,
                limits: Some(limits),
                limit_kind: None,
                status_label: "2xx",
                latency,
            })?;
            if response.choices.is_empty() {
                return Err(Failed {
                    error: Error::Malformed("a chat completion without choices".into()),
                    retryable: false,
                    retry_after: None,
                    limits: Some(limits),
                    limit_kind: None,
                    status_label: "2xx",
                    latency,
                });
            }
            let request_id = header_str(&headers, "x-request-id")
                .or_else(|| header_str(&headers, "apim-request-id"))
                .map(str::to_string)
                .or_else(|| response.id.clone());
            return Ok(Served {
                response,
                request_id,
                limits,
                latency,
            });
        }
        Err(status_failure(status, &headers, &body, limits, latency))
    }
}

/// A failure before a complete reply arrived.
fn transport_failure(err: &reqwest::Error, latency: Duration) -> Failed {
    let (error, status_label) = if err.is_timeout() {
        (Error::Timeout { attempts: 1 }, "timeout")
    } else if err.is_connect() {
        (Error::Unavailable(error_chain(err)), "connect")
    } else {
        // A reset connection or a cut-off body: the provider is not answering properly.
        (Error::Unavailable(error_chain(err)), "error")
    };
    Failed {
        error,
        retryable: true,
        retry_after: None,
        limits: None,
        limit_kind: None,
        status_label,
        latency,
    }
}

/// reqwest's message and its causes ("error sending request: connection refused").
fn error_chain(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A non-2xx reply, classified.
fn status_failure(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    limits: RateLimitHeaders,
    latency: Duration,
) -> Failed {
    let parsed: Option<WireErrorBody> = serde_json::from_slice(body).ok();
    let code = parsed.as_ref().and_then(|b| b.error.code());
    let kind = parsed.as_ref().and_then(|b| b.error.kind.clone());
    let message = parsed
        .as_ref()
        .and_then(|b| b.error.message.clone())
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let message: String = message.chars().take(MAX_ERROR_TEXT).collect();
    let quota =
        code.as_deref() == Some(INSUFFICIENT_QUOTA) || kind.as_deref() == Some(INSUFFICIENT_QUOTA);
    // OpenAI answers a single request larger than the whole tokens-per-minute limit with a
    // 429 too; no amount of waiting lets it through.
    let too_large = status == 429 && message.to_ascii_lowercase().contains("request too large");
    let retryable = is_retryable_status(status, code.as_deref()) && !quota && !too_large;
    let (error, status_label, limit_kind) = match status {
        429 if quota => (Error::InsufficientQuota(message), "429", Some("quota")),
        429 if too_large => (Error::Http4xx { status, message }, "429", Some("tokens")),
        429 => {
            let limit = which_limit(kind.as_deref(), &message, &limits);
            let error = Error::RateLimited {
                attempts: 1,
                message,
                retry_after: None,
            };
            (error, "429", Some(limit))
        }
        408 => (Error::Timeout { attempts: 1 }, "408", None),
        409 | 500..=599 => {
            let label = if status == 409 { "409" } else { "5xx" };
            let error = Error::ServerError {
                status,
                attempts: 1,
                message,
            };
            (error, label, None)
        }
        400..=499 => (Error::Http4xx { status, message }, "4xx", None),
        _ => {
            let error = Error::Malformed(format!("unexpected HTTP status {status}"));
            (error, "error", None)
        }
    };
    Failed {
        error,
        retryable,
        retry_after: headers::retry_after(headers, SystemTime::now()),
        limits: Some(limits),
        limit_kind,
        status_label,
        latency,
    }
}

/// Which limit a 429 hit: OpenAI says it in the error's `type` (`requests`, `tokens`) and
/// message ("... on tokens per min"); otherwise the exhausted `remaining` header tells.
fn which_limit(kind: Option<&str>, message: &str, limits: &RateLimitHeaders) -> &'static str {
    match kind {
        Some("tokens") => return "tokens",
        Some("requests") => return "requests",
        _ => {}
    }
    let lower = message.to_ascii_lowercase();
    let says = |words: [&str; 2]| words.iter().any(|w| lower.contains(w));
    if says(["tokens per", "on tokens"]) {
        "tokens"
    } else if says(["requests per", "on requests"]) || limits.remaining_requests == Some(0) {
        "requests"
    } else if limits.remaining_tokens == Some(0) {
        "tokens"
    } else {
        "unknown"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16, body: &str) -> Failed {
        status_failure(
            status,
            &HeaderMap::new(),
            body.as_bytes(),
            RateLimitHeaders::default(),
            Duration::ZERO,
        )
    }

    #[test]
    fn insufficient_quota_is_final_and_rate_limits_retry() {
        let quota = failure(
            429,
            r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
        );
        assert!(!quota.retryable);
        assert!(matches!(quota.error, Error::InsufficientQuota(_)));
        assert_eq!(quota.limit_kind, Some("quota"));

        let limited = failure(
            429,
            r#"{"error":{"message":"Rate limit reached for gpt-4o-mini on tokens per min (TPM)","code":"rate_limit_exceeded"}}"#,
        );
        assert!(limited.retryable);
        assert_eq!(limited.limit_kind, Some("tokens"));
    }

    #[test]
    fn statuses_map_to_errors() {
        assert!(matches!(
            failure(503, "busy").error,
            Error::ServerError { status: 503, .. }
        ));
        assert!(failure(503, "busy").retryable);
        assert!(failure(409, "").retryable);
        assert!(matches!(failure(408, "").error, Error::Timeout { .. }));
        let bad = failure(400, r#"{"error":{"message":"bad schema"}}"#);
        assert!(!bad.retryable);
        assert_eq!(bad.error.to_string(), "HTTP 400: bad schema");
    }

    #[test]
    fn api_key_is_redacted() {
        let key = ApiKey::new("sk-secret".into());
        assert!(!format!("{key:?}").contains("sk-secret"));
    }
}
