//! One webhook request, in this order (each step ends the request when it says no):
//!
//! 1. body size (413): cheapest, and bounds everything after it;
//! 2. signature over the raw bytes (401), before anything reads the payload; a source with
//!    no secret refuses everything here unless it allows unsigned webhooks;
//! 3. rate limit (429 + `Retry-After`), after the signature: a flood of unsigned or forged
//!    requests gets 401 without spending the budget of the senders who sign;
//! 4. JSON and the fields a TicketEvent needs (400); events that are not about a ticket end
//!    here (200 `recorded`);
//! 5. the target (403): the project or repository must be listed by the source;
//! 6. integration accounts (200 `ignored`), so our write-backs do not loop;
//! 7. encode the event (413 above the producer's `message.max.bytes`: the broker would refuse
//!    it on every retry);
//! 8. the dedupe claim (200 `duplicate`, 503 `in_flight`, 503 when memory is down);
//! 9. produce and wait for the broker's ack up to `ack_timeout` (202, or 503 + `Retry-After`
//!    with the claim released so the sender's retry is not dropped as a duplicate).
//!
//! Steps 2-9 run in a task of their own: a sender that hangs up mid-request must not cancel
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
use tracing::{error, info, warn};

use crate::access::{self, Denied};
use crate::dedupe::{Claim, Dedupe};
use crate::gateway::Gateway;
use crate::parse::{self, ParseError, Parsed};
use crate::response::Outcome;
use crate::source::Source;
use crate::telemetry::{self, RequestHandled};

/// `Retry-After` when the broker or the memory backend is down.
const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(5);
/// What librdkafka adds to a record's key, value and headers when it checks
/// `message.max.bytes` (the v2 record's length fields and attributes), rounded up.
const RECORD_OVERHEAD_BYTES: usize = 64;

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
            error!(source = source.as_str(), error = %err, "webhook request task failed");
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

/// Steps 2-9; returns the delivery id once known, and the outcome.
async fn process(
    gateway: &Gateway,
    source: Source,
    headers: &HeaderMap,
    body: &Bytes,
) -> (Option<String>, Outcome) {
    let state = gateway.source(source);
    let verified =
        state
            .signing
            .verify(source, headers, body, &gateway.servicenow_signature_header);
    match verified {
        Ok(()) => {}
        Err(Denied::Signature(refusal)) => return (None, Outcome::Unauthorized(refusal)),
        Err(Denied::NoSecret) => return (None, Outcome::NoSecret { source }),
    }
    if let Err(wait) = state.rate_limit.check() {
        return (None, Outcome::RateLimited { retry_after: wait });
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
    if let Some(targets) = &state.targets {
        let target = access::target_of(source, &event.ticket_key);
        if !targets.allows(target.as_deref()) {
            return (delivery_id, Outcome::TargetNotAllowed { source, target });
        }
    }
    if state.is_integration(&ticket.actor_ids) {
        return (
            delivery_id,
            Outcome::Ignored {
                event_id: event.event_id,
            },
        );
    }
    let record = match encode(gateway, headers, &event) {
        Ok(record) => record,
        Err(outcome) => return (delivery_id, outcome),
    };
    (
        delivery_id,
        claim_and_produce(gateway, source, &event, &record).await,
    )
}

/// Step 7: the record to produce, if the producer can take it.
fn encode(
    gateway: &Gateway,
    headers: &HeaderMap,
    event: &TicketEvent,
) -> Result<OutputRecord, Outcome> {
    let payload = gateway
        .codec
        .encode(event)
        .map_err(|err| Outcome::Internal {
            detail: format!("encoding the event: {err}"),
        })?;
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
    let size = record_size(&record);
    let limit = gateway.producer.max_message_bytes();
    if size > limit {
        return Err(Outcome::RecordTooLarge { size, limit });
    }
    Ok(record)
}

/// The bytes librdkafka counts against `message.max.bytes`, rounded up.
fn record_size(record: &OutputRecord) -> usize {
    let key = record.key.as_ref().map_or(0, Vec::len);
    let headers: usize = record
        .headers
        .iter()
        .map(|(name, value)| name.len() + value.len())
        .sum();
    RECORD_OVERHEAD_BYTES + key + record.payload.len() + headers
}

/// Steps 8 and 9.
async fn claim_and_produce(
    gateway: &Gateway,
    source: Source,
    event: &TicketEvent,
    record: &OutputRecord,
) -> Outcome {
    let key = Dedupe::key(source, &event.delivery_id);
    let claim = match gateway.dedupe.claim(&key).await {
        Ok(Claim::Claimed(claim)) => claim,
        Ok(Claim::Done) => {
            return Outcome::Duplicate {
                event_id: event.event_id.clone(),
            };
        }
        Ok(Claim::InFlight) => {
            // By then the other request has been acknowledged or has given up.
            return Outcome::InFlight {
                retry_after: gateway.options.ack_timeout,
            };
        }
        Err(err) => {
            warn!(source = source.as_str(), delivery_id = %event.delivery_id, error = %err,
                  "could not claim the delivery");
            return memory_outcome(err, "claiming the delivery");
        }
    };

    let outcome = produce(gateway, source, event, record).await;
    if matches!(outcome, Outcome::Accepted { .. }) {
        if let Err(err) = gateway.dedupe.confirm(&claim).await {
            // The event is persisted: 202 stands. The claim expires soon, so a redelivery
            // after that produces it again (consumers see the same event_id).
            warn!(source = source.as_str(), delivery_id = %event.delivery_id, event_id = %event.event_id,
                  error = %err, "could not mark the delivery as done");
        }
        telemetry::event_accepted(source, &event.event_type);
    } else {
        match gateway.dedupe.release(&claim).await {
            Ok(true) => {}
            // Expired while we waited: another request may own the key now, and keeps it.
            Ok(false) => info!(source = source.as_str(), delivery_id = %event.delivery_id,
                               "the dedupe claim had expired; left as it is"),
            Err(err) => {
                warn!(source = source.as_str(), delivery_id = %event.delivery_id, error = %err,
                              "could not release the dedupe claim; it expires on its own")
            }
        }
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
    parse::parse_body(
        source,
        headers,
        body,
        chatgptd_types::now_ms(),
        &gateway.options.servicenow.instance_url,
    )
}

/// Step 9: send, wait for the ack up to `ack_timeout`.
async fn produce(
    gateway: &Gateway,
    source: Source,
    event: &TicketEvent,
    record: &OutputRecord,
) -> Outcome {
    let started = Instant::now();
    // The gateway's producer itself gives up at `ack_timeout` (its delivery timeout), so
    // librdkafka's verdict comes first; this is only a backstop.
    let ack_timeout = gateway.options.ack_timeout + Duration::from_secs(1);
    match tokio::time::timeout(ack_timeout, gateway.producer.send(record)).await {
        Ok(Ok((partition, offset))) => {
            telemetry::ack_latency(source, started.elapsed());
            Outcome::Accepted {
                event_id: event.event_id.clone(),
                partition,
                offset,
            }
        }
        // A limit of the topic or broker below the producer's: as final as ours.
        Ok(Err(err)) if chatgptd_runtime::producer::rejects_record(&err) => {
            warn!(source = source.as_str(), delivery_id = %event.delivery_id, event_id = %event.event_id,
                  error = %err, "the broker refused the record itself");
            Outcome::RecordTooLarge {
                size: record_size(record),
                limit: gateway.producer.max_message_bytes(),
            }
        }
        Ok(Err(err)) => {
            warn!(source = source.as_str(), delivery_id = %event.delivery_id, event_id = %event.event_id,
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
