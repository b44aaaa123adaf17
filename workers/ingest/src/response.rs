//! Every way a webhook request ends, as a status, a JSON body, and a bounded metric label.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::parse::ParseError;
use crate::signature::Refusal;

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
    /// Malformed JSON or a payload missing what is needed: 400.
    BadRequest(ParseError),
    /// The body is over the limit: 413.
    TooLarge { limit: usize },
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
            Outcome::Unauthorized(_) => "unauthorized",
            Outcome::BadRequest(_) => "bad_request",
            Outcome::TooLarge { .. } => "too_large",
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
}
