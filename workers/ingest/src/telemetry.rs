//! Metrics and logs of the gateway. Labels are bounded: the source, the outcome, and the
//! senders' event types (a set fixed by each sender; clipped to a safe charset and length so a
//! misbehaving sender cannot blow up the label space by much).
//!
//! Logs name the source, delivery id and event id; never bodies or secrets.

use std::time::Duration;

use tracing::{debug, info, warn};

use crate::response::Outcome;
use crate::source::Source;

/// Metric names, one place.
pub mod metric {
    /// Webhook requests, by `source` and `outcome` (accepted, recorded, duplicate, ignored,
    /// unauthorized, target_not_allowed, bad_request, too_large, rate_limited, in_flight,
    /// unavailable, internal_error).
    pub const REQUESTS: &str = "chatgptd_ingest_requests_total";
    /// Webhooks accepted (produced, or recorded without a ticket), by `source` and
    /// `event_type`.
    pub const EVENTS: &str = "chatgptd_ingest_events_total";
    /// Seconds from sending a TicketEvent to the broker's acknowledgement, by `source`.
    pub const ACK_SECONDS: &str = "chatgptd_ingest_ack_seconds";
}

/// The longest event type kept as a label.
const MAX_EVENT_TYPE_LABEL: usize = 64;

/// A webhook request ended: logs it and counts it.
pub(crate) struct RequestHandled<'a> {
    pub source: Source,
    /// `None` when the request ended before its delivery id was known.
    pub delivery_id: Option<&'a str>,
    pub outcome: &'a Outcome,
}

impl RequestHandled<'_> {
    pub(crate) fn emit(&self) {
        let source = self.source.as_str();
        let delivery_id = self.delivery_id.unwrap_or("");
        let outcome = self.outcome.label();
        match self.outcome {
            Outcome::Accepted {
                event_id,
                partition,
                offset,
            } => info!(
                source,
                delivery_id, event_id, partition, offset, "webhook accepted"
            ),
            Outcome::Duplicate { event_id } | Outcome::Ignored { event_id } => {
                info!(
                    source,
                    delivery_id, event_id, outcome, "webhook not produced"
                )
            }
            Outcome::Recorded { event_type } => {
                info!(
                    source,
                    delivery_id, event_type, "webhook recorded: not about a ticket"
                )
            }
            Outcome::Unauthorized(refusal) => {
                warn!(
                    source,
                    detail = refusal.detail(),
                    "webhook signature refused"
                )
            }
            Outcome::NoSecret { .. } => {
                warn!(
                    source,
                    "webhook refused: no secret configured and unsigned webhooks not allowed"
                )
            }
            Outcome::TargetNotAllowed { target, .. } => {
                warn!(
                    source,
                    delivery_id,
                    target = target.as_deref().unwrap_or(""),
                    "webhook refused: its target is not configured"
                )
            }
            Outcome::RecordTooLarge { size, limit } => {
                warn!(
                    source,
                    delivery_id, size, limit, "webhook refused: its record is too large"
                )
            }
            Outcome::BadRequest(error) => {
                warn!(source, delivery_id, error = error.error, detail = %error.detail, "webhook refused")
            }
            Outcome::TooLarge { limit } => warn!(source, limit, "webhook body too large"),
            Outcome::RateLimited { .. } => debug!(source, "webhook rate limited"),
            Outcome::InFlight { .. } => info!(source, delivery_id, "webhook already in flight"),
            Outcome::Unavailable { detail, .. } | Outcome::Internal { detail } => {
                warn!(source, delivery_id, outcome, detail = %detail, "webhook not accepted")
            }
        }
        metrics::counter!(metric::REQUESTS, "source" => source, "outcome" => outcome).increment(1);
    }
}

/// A webhook's event was accepted (produced, or recorded without a ticket).
pub(crate) fn event_accepted(source: Source, event_type: &str) {
    metrics::counter!(
        metric::EVENTS,
        "source" => source.as_str(),
        "event_type" => event_type_label(event_type)
    )
    .increment(1);
}

/// How long the broker took to acknowledge.
pub(crate) fn ack_latency(source: Source, elapsed: Duration) {
    metrics::histogram!(metric::ACK_SECONDS, "source" => source.as_str())
        .record(elapsed.as_secs_f64());
}

/// An event type as a label: at most 64 characters of `[A-Za-z0-9._:-]`, others as `_`.
fn event_type_label(event_type: &str) -> String {
    event_type
        .chars()
        .take(MAX_EVENT_TYPE_LABEL)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_labels_are_clipped() {
        assert_eq!(event_type_label("jira:issue_created"), "jira:issue_created");
        assert_eq!(event_type_label("a b\"c"), "a_b_c");
        assert_eq!(event_type_label(&"x".repeat(500)).len(), 64);
    }

    #[test]
    fn outcomes_are_counted_by_source() {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            RequestHandled {
                source: Source::GitHub,
                delivery_id: Some("d-1"),
                outcome: &Outcome::Duplicate {
                    event_id: "e".into(),
                },
            }
            .emit();
            event_accepted(Source::Jira, "jira:issue_created");
        });
        let counters: Vec<String> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, _)| format!("{:?}", key.key()))
            .collect();
        let all = counters.join("\n");
        assert!(
            all.contains(metric::REQUESTS) && all.contains("duplicate"),
            "{all}"
        );
        assert!(
            all.contains(metric::EVENTS) && all.contains("jira:issue_created"),
            "{all}"
        );
    }
}
