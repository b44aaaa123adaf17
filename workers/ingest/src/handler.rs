//! One webhook request, in this order (each step ends the request when it says no):
//!
//! 1. body size (413): cheapest, and bounds everything after it;
//! 2. rate limit (429 + `Retry-After`);
//! 3. signature over the raw bytes (401), before anything reads the payload;
//! 4. JSON and the fields a TicketEvent needs (400); events that are not about a ticket end
//!    here (200 `recorded`);
//! 5. integration accounts (200 `ignored`), so our write-backs do not loop;
//! 6. the dedupe claim (200 `duplicate`, 503 `in_flight`, 503 when memory is down);
//! 7. produce and wait for the broker's ack up to `ack_timeout` (202, or 503 + `Retry-After`
//!    with the claim released so the sender's retry is not dropped as a duplicate).
//!
//! Steps 2-7 run in a task of their own: a sender that hangs up mid-request must not cancel
//! the pipeline between the produce and the dedupe confirm.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chatgptd_runtime::OutputRecord;
use chatgptd_types::records::TicketEvent;
use chatgptd_types::trace::TraceContext;
use tracing::{error, warn};

use crate::dedupe::{Claim, Dedupe};
use crate::gateway::Gateway;
use crate::parse::{self, Envelope, ParseError, Parsed};
use crate::response::Outcome;
use crate::signature;
use crate::source::{GITHUB_SIGNATURE_HEADER, JIRA_SIGNATURE_HEADER, Source};
use crate::telemetry::{self, RequestHandled};

/// `Retry-After` when the broker or the memory backend is down.
const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Handles one webhook request of `source`.
pub(crate) async fn handle(
    gateway: Arc<Gateway>,
    source: Source,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let outcome = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Outcome::TooLarge {
                    limit: gateway.options.max_body_bytes,
                }
            } else {
                Outcome::BadRequest(ParseError {
                    error: "invalid_body",
                    detail: rejection.body_text(),
                })
            };
            return finish(source, None, outcome);
        }
    };
    let task = tokio::spawn(async move {
        let (delivery_id, outcome) = process(&gateway, source, &headers, &body).await;
        finish(source, delivery_id.as_deref(), outcome)
    });
    match task.await {
        Ok(response) => response,
        Err(err) => {
            // A panic is a bug: its text stays in our log, not in the sender's.
            error!(source = source.name(), error = %err, "webhook request task failed");
            finish(
                source,
                None,
                Outcome::Internal {
                    detail: "the request failed unexpectedly".into(),
                },
            )
        }
    }
}

fn finish(source: Source, delivery_id: Option<&str>, outcome: Outcome) -> Response {
    RequestHandled {
        source,
        delivery_id,
        outcome: &outcome,
    }
    .emit();
    outcome.into_response()
}

/// Steps 2-7; returns the delivery id once known, and the outcome.
async fn process(
    gateway: &Gateway,
    source: Source,
    headers: &HeaderMap,
    body: &Bytes,
) -> (Option<String>, Outcome) {
    let state = gateway.source(source);
    if let Err(wait) = state.rate_limit.check() {
        return (None, Outcome::RateLimited { retry_after: wait });
    }
    if let Some(secret) = &state.secret {
        let verified = match source {
            Source::Jira => signature::verify_hex(
                secret.expose(),
                body,
                headers.get(JIRA_SIGNATURE_HEADER).map(|v| v.as_bytes()),
            ),
            Source::Github => signature::verify_hex(
                secret.expose(),
                body,
                headers.get(GITHUB_SIGNATURE_HEADER).map(|v| v.as_bytes()),
            ),
            Source::ServiceNow => signature::verify_base64(
                secret.expose(),
                body,
                headers
                    .get(&gateway.servicenow_signature_header)
                    .map(|v| v.as_bytes()),
            ),
        };
        if let Err(refusal) = verified {
            return (None, Outcome::Unauthorized(refusal));
        }
    }

    let ticket = match parse_body(gateway, source, headers, body) {
        Ok(Parsed::Ticket(ticket)) => ticket,
        Ok(Parsed::NotTicket {
            delivery_id,
            event_type,
        }) => {
            telemetry::event_accepted(source, &event_type);
            return (Some(delivery_id), Outcome::Recorded { event_type });
        }
        Err(error) => return (None, Outcome::BadRequest(error)),
    };
    let event = ticket.event;
    let delivery_id = Some(event.delivery_id.clone());
    if state.is_integration(&ticket.actor_ids) {
        return (
            delivery_id,
            Outcome::Ignored {
                event_id: event.event_id,
            },
        );
    }
    (
        delivery_id,
        claim_and_produce(gateway, source, headers, event).await,
    )
}

/// Steps 6 and 7.
async fn claim_and_produce(
    gateway: &Gateway,
    source: Source,
    headers: &HeaderMap,
    event: TicketEvent,
) -> Outcome {
    let key = Dedupe::key(source, &event.delivery_id);
    match gateway.dedupe.claim(&key).await {
        Ok(Claim::Claimed) => {}
        Ok(Claim::Done) => {
            return Outcome::Duplicate {
                event_id: event.event_id,
            };
        }
        Ok(Claim::InFlight) => {
            // By then the other request has been acknowledged or has given up.
            return Outcome::InFlight {
                retry_after: gateway.options.ack_timeout,
            };
        }
        Err(err) => {
            warn!(source = source.name(), delivery_id = %event.delivery_id, error = %err,
                  "could not claim the delivery");
            return memory_outcome(err, "claiming the delivery");
        }
    }

    let outcome = produce(gateway, source, headers, &event).await;
    if matches!(outcome, Outcome::Accepted { .. }) {
        if let Err(err) = gateway.dedupe.confirm(&key).await {
            // The event is persisted: 202 stands. The claim expires soon, so a redelivery
            // after that produces it again (consumers see the same event_id).
            warn!(source = source.name(), delivery_id = %event.delivery_id, event_id = %event.event_id,
                  error = %err, "could not mark the delivery as done");
        }
        telemetry::event_accepted(source, &event.event_type);
    } else if let Err(err) = gateway.dedupe.release(&key).await {
        warn!(source = source.name(), delivery_id = %event.delivery_id, error = %err,
              "could not release the dedupe claim; it expires on its own");
    }
    outcome
}

/// Step 4: UTF-8, JSON object, then the source's fields.
fn parse_body(
    gateway: &Gateway,
    source: Source,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Parsed, ParseError> {
    let malformed = |detail: String| ParseError {
        error: "malformed_json",
        detail,
    };
    let raw = std::str::from_utf8(body).map_err(|_| malformed("the body is not UTF-8".into()))?;
    let payload: serde_json::Value =
        serde_json::from_str(raw).map_err(|err| malformed(err.to_string()))?;
    if !payload.is_object() {
        return Err(ParseError {
            error: "invalid_payload",
            detail: "the body is not a JSON object".into(),
        });
    }
    let envelope = Envelope {
        headers,
        payload: &payload,
        raw,
        received_at_ms: chatgptd_types::now_ms(),
    };
    parse::parse(source, envelope, &gateway.options.servicenow.instance_url)
}

/// Step 7: encode, send, wait for the ack up to `ack_timeout`.
async fn produce(
    gateway: &Gateway,
    source: Source,
    headers: &HeaderMap,
    event: &TicketEvent,
) -> Outcome {
    let payload = match gateway.codec.encode(event) {
        Ok(payload) => payload,
        Err(err) => {
            return Outcome::Internal {
                detail: format!("encoding the event: {err}"),
            };
        }
    };
    // The gateway's span: a child of the sender's trace if it sent one, else a new trace.
    let trace = TraceContext::from_bytes(headers.get(TraceContext::HEADER).map(|v| v.as_bytes()))
        .map(|parent| parent.child())
        .unwrap_or_else(TraceContext::new_root);
    let record = OutputRecord {
        topic: gateway.options.topic.clone(),
        key: Some(event.key().into_bytes()),
        payload,
        headers: vec![(
            TraceContext::HEADER.to_string(),
            trace.to_header().into_bytes(),
        )],
    };
    let started = Instant::now();
    // The gateway's producer itself gives up at `ack_timeout` (its delivery timeout), so
    // librdkafka's verdict comes first; this is only a backstop.
    let ack_timeout = gateway.options.ack_timeout + Duration::from_secs(1);
    match tokio::time::timeout(ack_timeout, gateway.producer.send(&record)).await {
        Ok(Ok((partition, offset))) => {
            telemetry::ack_latency(source, started.elapsed());
            Outcome::Accepted {
                event_id: event.event_id.clone(),
                partition,
                offset,
            }
        }
        Ok(Err(err)) => {
            warn!(source = source.name(), delivery_id = %event.delivery_id, event_id = %event.event_id,
                  error = %err, "the broker refused the event");
            Outcome::Unavailable {
                detail: "the broker did not acknowledge the event".into(),
                retry_after: UNAVAILABLE_RETRY_AFTER,
            }
        }
        Err(_) => Outcome::Unavailable {
            detail: format!(
                "the broker did not acknowledge the event within {}",
                humantime::format_duration(ack_timeout)
            ),
            retry_after: UNAVAILABLE_RETRY_AFTER,
        },
    }
}

/// A memory failure: unavailable (503, retry) or broken (500).
fn memory_outcome(err: chatgptd_memory::Error, doing: &str) -> Outcome {
    if err.is_unavailable() {
        Outcome::Unavailable {
            detail: format!("the memory backend is unavailable while {doing}"),
            retry_after: UNAVAILABLE_RETRY_AFTER,
        }
    } else {
        Outcome::Internal {
            detail: format!("the memory backend failed while {doing}"),
        }
    }
}
