//! Payload to [`TicketEvent`]: one module per source. Jira and ServiceNow payloads are read
//! as `serde_json::Value` so unknown fields (Jira's site-specific custom fields) never fail a
//! webhook; GitHub's, mostly a `repository` it uses one field of, are read with [`lenient`]
//! readers that skip what they do not use. Only what a TicketEvent needs is required.

pub mod adf;
pub mod github;
pub mod jira;
mod lenient;
#[cfg(test)]
mod proptests;
pub mod servicenow;

use axum::http::HeaderMap;
use chatgptd_types::records::TicketEvent;
use serde_json::Value;
use uuid::Uuid;

use crate::source::Source;

/// The namespace of event ids: `UUIDv5(EVENT_NAMESPACE, "<source>:<delivery id>")`, so a
/// redelivery carries the same id and consumers can drop a duplicate that got through.
/// Fixed forever: changing it changes every id.
pub const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0xe01d77c3_c70d_46df_86bc_2aaae42d709a);

/// The stable event id of a delivery.
pub fn event_id(source: Source, delivery_id: &str) -> String {
    let name = format!("{}:{delivery_id}", source.as_str());
    Uuid::new_v5(&EVENT_NAMESPACE, name.as_bytes()).to_string()
}

/// One webhook as received.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    pub headers: &'a HeaderMap,
    /// The parsed body (a JSON object), for Jira and ServiceNow; GitHub reads `raw`.
    pub payload: &'a Value,
    /// The body as received, kept in the event.
    pub raw: &'a str,
    pub received_at_ms: i64,
}

/// What a payload turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// An event about a ticket, to produce.
    Ticket(Box<Ticket>),
    /// A well-formed event about something else (GitHub `ping` or `push`, a Jira project
    /// event): recorded in logs and metrics, nothing produced.
    NotTicket {
        delivery_id: String,
        event_type: String,
    },
}

/// A ticket event and who caused it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    pub event: TicketEvent,
    /// Every identity of the actor (account id, user name, login), matched against the
    /// source's `integration_accounts`.
    pub actor_ids: Vec<String>,
}

/// Why a payload cannot be used: the answer is 400 with this in its JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// A short code: `missing_header`, `missing_field`, `invalid_payload`.
    pub error: &'static str,
    /// What exactly, for the sender's webhook log.
    pub detail: String,
}

impl ParseError {
    /// A required header is absent or empty.
    pub fn missing_header(name: &str) -> Self {
        ParseError {
            error: "missing_header",
            detail: format!("the {name} header is required"),
        }
    }

    /// The body is not UTF-8 or not JSON.
    pub fn malformed_json(detail: impl Into<String>) -> Self {
        ParseError {
            error: "malformed_json",
            detail: detail.into(),
        }
    }

    /// The body is JSON but not an object.
    pub fn not_an_object() -> Self {
        ParseError {
            error: "invalid_payload",
            detail: "the body is not a JSON object".into(),
        }
    }

    /// A required payload field is absent, empty or of the wrong type.
    pub fn missing_field(pointer: &str) -> Self {
        ParseError {
            error: "missing_field",
            detail: format!("the payload has no usable {pointer}"),
        }
    }
}

/// Parses a payload of `source`. GitHub's parser reads `envelope.raw`, not the `Value`.
pub fn parse(
    source: Source,
    envelope: Envelope<'_>,
    servicenow_instance_url: &str,
) -> Result<Parsed, ParseError> {
    match source {
        Source::Jira => jira::parse(envelope),
        Source::ServiceNow => servicenow::parse(envelope, servicenow_instance_url),
        Source::GitHub => github::parse(envelope.headers, envelope.raw, envelope.received_at_ms),
    }
}

/// A body as received: UTF-8, a JSON object, then the source's fields. The handler's step 4,
/// and the entry point of the property tests and fuzz targets: any bytes and headers give a
/// [`ParseError`] (a 400), never a panic.
pub fn parse_body(
    source: Source,
    headers: &HeaderMap,
    body: &[u8],
    received_at_ms: i64,
    servicenow_instance_url: &str,
) -> Result<Parsed, ParseError> {
    let raw = std::str::from_utf8(body)
        .map_err(|_| ParseError::malformed_json("the body is not UTF-8"))?;
    if let Source::GitHub = source {
        return github::parse(headers, raw, received_at_ms);
    }
    let payload: Value =
        serde_json::from_str(raw).map_err(|err| ParseError::malformed_json(err.to_string()))?;
    if !payload.is_object() {
        return Err(ParseError::not_an_object());
    }
    let envelope = Envelope {
        headers,
        payload: &payload,
        raw,
        received_at_ms,
    };
    parse(source, envelope, servicenow_instance_url)
}

/// A TicketEvent with its identity set and everything else empty.
pub(crate) fn new_event(
    source: Source,
    raw: &str,
    received_at_ms: i64,
    delivery_id: String,
    event_type: String,
    ticket_id: String,
    ticket_key: String,
) -> TicketEvent {
    TicketEvent {
        event_id: event_id(source, &delivery_id),
        source: source.as_str().to_string(),
        delivery_id,
        event_type,
        ticket_id,
        ticket_key,
        title: String::new(),
        description: String::new(),
        priority: None,
        status: None,
        labels: Vec::new(),
        reporter: None,
        actor: None,
        url: None,
        received_at_ms,
        raw_payload: raw.to_string(),
    }
}

/// A header's value, trimmed; `None` if absent, empty or not text.
pub(crate) fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// A non-empty string at a JSON pointer.
pub(crate) fn text_at(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_string)
}

/// An id at a JSON pointer: a non-empty string, or a number (GitHub ids, some Jira ids).
pub(crate) fn id_at(value: &Value, pointer: &str) -> Option<String> {
    value.pointer(pointer).and_then(id_of)
}

/// An id: a non-empty string, trimmed, or a number.
pub(crate) fn id_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.trim().is_empty() => Some(text.trim().to_string()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The strings of an array at a JSON pointer, skipping anything else.
pub(crate) fn strings_at(value: &Value, pointer: &str) -> Vec<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .filter(|text| !text.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_stable_per_source_and_delivery() {
        let first = event_id(Source::GitHub, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
        assert_eq!(
            first,
            event_id(Source::GitHub, "72d3162e-cc78-11e3-81ab-4c9367dc0958")
        );
        assert_ne!(
            first,
            event_id(Source::Jira, "72d3162e-cc78-11e3-81ab-4c9367dc0958")
        );
        let parsed = Uuid::parse_str(&first).unwrap();
        assert_eq!(parsed.get_version_num(), 5);
    }

    #[test]
    fn ids_may_be_strings_or_numbers() {
        let value = serde_json::json!({"a": "10509", "b": 444500041, "c": " ", "d": null});
        assert_eq!(id_at(&value, "/a").as_deref(), Some("10509"));
        assert_eq!(id_at(&value, "/b").as_deref(), Some("444500041"));
        assert_eq!(id_at(&value, "/c"), None);
        assert_eq!(id_at(&value, "/d"), None);
        assert_eq!(id_at(&value, "/e"), None);
    }
}
