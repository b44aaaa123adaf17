//! Every way a webhook request ends, as a status, a JSON body, and a bounded metric label.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::parse::ParseError;
use crate::signature::Refusal;
use crate::source::Source;

/// How a webhook request ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// Produced and acknowledged by the broker: 202.
    Accepted {
        event_id: String,
        partition: i32,
        offset: i64,
    },
    /// A well-formed event that is not about a ticket: 200, nothing produced.
    Recorded { event_type: String },
    /// A redelivery of an acknowledged delivery: 200, nothing produced.
    Duplicate { event_id: String },
    /// Caused by an integration account (our own write-back): 200, nothing produced.
    Ignored { event_id: String },
    /// A missing or wrong signature: 401.
    Unauthorized(Refusal),
    /// The source has no secret and does not allow unsigned webhooks: 401, with the fix.
    NoSecret { source: Source },
    /// Signed, but about a target (project, repository) the source does not list: 403.
    TargetNotAllowed {
        source: Source,
        target: Option<String>,
    },
    /// Malformed JSON or a payload missing what is needed: 400.
    BadRequest(ParseError),
    /// The body is over the limit: 413.
    TooLarge { limit: usize },
    /// The event made of the body is over the producer's record limit
    /// (`message.max.bytes`): 413, as the broker would refuse it on every retry.
    RecordTooLarge { size: usize, limit: usize },
    /// Over the source's rate limit: 429 + `Retry-After`.
    RateLimited { retry_after: Duration },
    /// The same delivery is being produced by another request: 503 + `Retry-After`.
    InFlight { retry_after: Duration },
    /// The broker did not acknowledge in time, or the memory backend is down: 503 +
    /// `Retry-After`.
    Unavailable {
        detail: String,
        retry_after: Duration,
    },
    /// A bug or a broken backend that retrying will not fix: 500.
    Internal { detail: String },
}

impl Outcome {
    /// The `outcome` label of the requests metric.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Outcome::Accepted { .. } => "accepted",
            Outcome::Recorded { .. } => "recorded",
            Outcome::Duplicate { .. } => "duplicate",
            Outcome::Ignored { .. } => "ignored",
            Outcome::Unauthorized(_) | Outcome::NoSecret { .. } => "unauthorized",
            Outcome::TargetNotAllowed { .. } => "target_not_allowed",
            Outcome::BadRequest(_) => "bad_request",
            Outcome::TooLarge { .. } | Outcome::RecordTooLarge { .. } => "too_large",
            Outcome::RateLimited { .. } => "rate_limited",
            Outcome::InFlight { .. } => "in_flight",
            Outcome::Unavailable { .. } => "unavailable",
            Outcome::Internal { .. } => "internal_error",
        }
    }
}

impl IntoResponse for Outcome {
    fn into_response(self) -> Response {
        let (status, body, retry_after) = match self {
            Outcome::Accepted {
                event_id,
                partition,
                offset,
            } => (
                StatusCode::ACCEPTED,
                json!({"status": "accepted", "event_id": event_id, "partition": partition, "offset": offset}),
                None,
            ),
            Outcome::Recorded { event_type } => (
                StatusCode::OK,
                json!({"status": "recorded", "event_type": event_type,
                       "detail": "not about a ticket: nothing produced"}),
                None,
            ),
            Outcome::Duplicate { event_id } => (
                StatusCode::OK,
                json!({"status": "duplicate", "event_id": event_id}),
                None,
            ),
            Outcome::Ignored { event_id } => (
                StatusCode::OK,
                json!({"status": "ignored", "event_id": event_id,
                       "detail": "caused by an integration account"}),
                None,
            ),
            Outcome::Unauthorized(refusal) => (
                StatusCode::UNAUTHORIZED,
                error("unauthorized", refusal.detail()),
                None,
            ),
            Outcome::NoSecret { source } => {
                let name = source.as_str();
                (
                    StatusCode::UNAUTHORIZED,
                    error(
                        "signature_required",
                        &format!(
                            "{name} webhooks must be signed and no {name} secret is configured: set \
                             ingest.{name}.secret_env to the name of an environment variable holding \
                             the webhook secret the sender signs with, or set \
                             ingest.{name}.allow_unsigned = true to accept unsigned webhooks"
                        ),
                    ),
                    None,
                )
            }
            Outcome::TargetNotAllowed { source, target } => {
                let name = source.as_str();
                let setting = crate::access::setting(source);
                let what = match &target {
                    Some(target) => format!("{target:?} is not in ingest.{name}.{setting}"),
                    None => format!(
                        "the event names no target and ingest.{name}.{setting} is not [\"*\"]"
                    ),
                };
                (
                    StatusCode::FORBIDDEN,
                    error(
                        "target_not_allowed",
                        &format!("{what}: add it to accept its webhooks (\"*\" accepts any)"),
                    ),
                    None,
                )
            }
            Outcome::BadRequest(parse) => (
                StatusCode::BAD_REQUEST,
                error(parse.error, &parse.detail),
                None,
            ),
            Outcome::TooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                error(
                    "payload_too_large",
                    &format!("the body is larger than {limit} bytes"),
                ),
                None,
            ),
            Outcome::RecordTooLarge { size, limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                error(
                    "record_too_large",
                    &format!(
                        "the event made of this body is {size} bytes, above the {limit} bytes a \
                         record may have (the producer's message.max.bytes)"
                    ),
                ),
                None,
            ),
            Outcome::RateLimited { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                error("rate_limited", "too many webhooks from this source"),
                Some(retry_after),
            ),
            Outcome::InFlight { retry_after } => (
                StatusCode::SERVICE_UNAVAILABLE,
                error(
                    "in_flight",
                    "this delivery is being processed by another request; retry later",
                ),
                Some(retry_after),
            ),
            Outcome::Unavailable {
                detail,
                retry_after,
            } => (
                StatusCode::SERVICE_UNAVAILABLE,
                error("unavailable", &detail),
                Some(retry_after),
            ),
            Outcome::Internal { detail } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                error("internal", &detail),
                None,
            ),
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(retry_after) = retry_after {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(retry_after)),
            );
        }
        response
    }
}

fn error(code: &str, detail: &str) -> serde_json::Value {
    json!({"error": code, "detail": detail})
}

/// `Retry-After` in whole seconds, rounded up, at least 1 (0 would invite a hot loop).
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(10)), 10);
    }

    #[test]
    fn refusals_carry_retry_after_and_a_json_body() {
        let response = Outcome::RateLimited {
            retry_after: Duration::from_millis(1500),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }

    async fn body(outcome: Outcome) -> (StatusCode, serde_json::Value) {
        let response = outcome.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn refusals_say_which_setting_fixes_them() {
        let (status, no_secret) = body(Outcome::NoSecret {
            source: Source::GitHub,
        })
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(no_secret["error"], "signature_required");
        let detail = no_secret["detail"].as_str().unwrap();
        assert!(
            detail.contains("ingest.github.secret_env")
                && detail.contains("ingest.github.allow_unsigned = true"),
            "{detail}"
        );
        let (status, forbidden) = body(Outcome::TargetNotAllowed {
            source: Source::Jira,
            target: Some("KT".into()),
        })
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(forbidden["error"], "target_not_allowed");
        let detail = forbidden["detail"].as_str().unwrap();
        assert!(
            detail.contains("\"KT\" is not in ingest.jira.projects"),
            "{detail}"
        );
    }
}
