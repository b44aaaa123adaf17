//! What every fuzz target checks, on the same entry points as the property tests in the
//! suite: `chatgptd_types::avro::Codec`'s decoders, `parse::parse_body` (the ingest
//! handler's step 4) and the `signature` checks. A panic or a violated assertion here is a
//! finding: fix the code and keep the input as a unit test.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use chatgptd_types::Error;
use chatgptd_types::avro::Codec;
use chatgptd_types::records::{
    AgentMessage, DeadLetter, EnrichedTicket, MemoryRecord, TicketEvent, WorkflowStep,
};
use chatgptd_worker_ingest::Source;
use chatgptd_worker_ingest::parse::{Parsed, event_id, parse_body};
use chatgptd_worker_ingest::signature::{
    Refusal, sign_base64, sign_hex, verify_base64, verify_hex,
};

/// A bad record must be a decode error a worker can dead-letter with its class.
fn check_decode<T>(result: Result<T, Error>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(err) => {
            assert!(
                matches!(err.class(), "decode" | "unknown_schema"),
                "not a decode error: {err:?}"
            );
            let _ = err.to_string();
            None
        }
    }
}

/// Decodes `bytes` every public way; a TicketEvent that decodes must encode back to them.
pub fn avro_decode(bytes: &[u8]) {
    let codec = Codec::builtin();
    check_decode(codec.writer_schema(bytes).map(|_| ()));
    check_decode(codec.decode_json(bytes));
    check_decode(codec.decode::<EnrichedTicket>(bytes));
    check_decode(codec.decode::<AgentMessage>(bytes));
    check_decode(codec.decode::<WorkflowStep>(bytes));
    check_decode(codec.decode::<MemoryRecord>(bytes));
    check_decode(codec.decode::<DeadLetter>(bytes));
    if let Some(event) = check_decode(codec.decode::<TicketEvent>(bytes)) {
        let encoded = codec.encode(&event).expect("a decoded TicketEvent encodes");
        assert_eq!(codec.decode::<TicketEvent>(&encoded).unwrap(), event);
    }
}

/// The headers a real sender of `source` sets.
pub fn sender_headers(source: Source) -> HeaderMap {
    let mut headers = HeaderMap::new();
    match source {
        Source::Jira => {
            headers.insert(
                "x-atlassian-webhook-identifier",
                HeaderValue::from_static("0ae8f5b6-0b7f-4b47-9d3c-5c3f8e0c1d2e"),
            );
        }
        Source::ServiceNow => {}
        Source::GitHub => {
            headers.insert(
                "x-github-delivery",
                HeaderValue::from_static("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            );
            headers.insert("x-github-event", HeaderValue::from_static("issues"));
        }
    }
    headers
}

/// Parses a webhook body as the handler does, and checks the outcome is one it can answer:
/// a 400 with a known code and a detail, or an event with its identity that the codec
/// encodes (else the handler would answer 500).
pub fn parse(source: Source, headers: &HeaderMap, body: &[u8]) {
    match parse_body(
        source,
        headers,
        body,
        1_700_000_000_000,
        "https://acme.service-now.com",
    ) {
        Err(error) => {
            assert!(
                matches!(
                    error.error,
                    "malformed_json" | "invalid_payload" | "missing_header" | "missing_field"
                ),
                "{error:?}"
            );
            assert!(!error.detail.is_empty(), "{error:?}");
        }
        Ok(Parsed::NotTicket {
            delivery_id,
            event_type,
        }) => assert!(!delivery_id.is_empty() && !event_type.is_empty()),
        Ok(Parsed::Ticket(ticket)) => {
            let event = &ticket.event;
            assert_eq!(event.source, source.as_str());
            assert_eq!(event.event_id, event_id(source, &event.delivery_id));
            assert!(!event.delivery_id.is_empty() && !event.event_type.is_empty());
            assert!(!event.ticket_id.is_empty() && !event.ticket_key.is_empty());
            assert_eq!(event.raw_payload.as_bytes(), body);
            Codec::builtin()
                .encode(event)
                .expect("a parsed event encodes");
        }
    }
}

/// A webhook with arbitrary headers, for `parse_any`.
#[derive(Debug, arbitrary::Arbitrary)]
pub struct Webhook {
    /// 0: Jira, 1: ServiceNow, else GitHub.
    pub source: u8,
    /// Start from the real sender's headers, then add `headers`.
    pub sender_headers: bool,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Webhook {
    pub fn source(&self) -> Source {
        match self.source % 3 {
            0 => Source::Jira,
            1 => Source::ServiceNow,
            _ => Source::GitHub,
        }
    }

    /// The headers as the router would hand them over (invalid names or values cannot
    /// reach the handler, so they are skipped).
    pub fn header_map(&self) -> HeaderMap {
        let mut headers = if self.sender_headers {
            sender_headers(self.source())
        } else {
            HeaderMap::new()
        };
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                headers.append(name, value);
            }
        }
        headers
    }
}

/// A signature check, for `signature`.
#[derive(Debug, arbitrary::Arbitrary)]
pub struct SignatureCase {
    pub secret: Vec<u8>,
    pub body: Vec<u8>,
    /// `None`: the header is absent.
    pub header: Option<Vec<u8>>,
}

/// Any header is refused unless it encodes the body's MAC; the real signature passes.
pub fn signature(case: &SignatureCase) {
    let SignatureCase {
        secret,
        body,
        header,
    } = case;
    let hex = sign_hex(secret, body);
    let base64 = sign_base64(secret, body);
    assert_eq!(verify_hex(secret, body, Some(hex.as_bytes())), Ok(()));
    assert_eq!(verify_base64(secret, body, Some(base64.as_bytes())), Ok(()));
    let Some(header) = header.as_deref() else {
        assert_eq!(verify_hex(secret, body, None), Err(Refusal::Missing));
        assert_eq!(verify_base64(secret, body, None), Err(Refusal::Missing));
        return;
    };
    // Accepted only if it decodes to the same MAC (hex of either case, outer whitespace).
    let mac = &hex.as_bytes()[7..];
    if verify_hex(secret, body, Some(header)).is_ok() {
        let sent = header.strip_prefix(b"sha256=").unwrap().trim_ascii();
        assert!(sent.eq_ignore_ascii_case(mac), "accepted {header:?}");
    }
    if verify_base64(secret, body, Some(header)).is_ok() {
        assert_eq!(
            header.trim_ascii(),
            base64.as_bytes(),
            "accepted {header:?}"
        );
    }
}
