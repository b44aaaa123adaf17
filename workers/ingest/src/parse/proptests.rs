//! Property tests of the parsers through [`parse_body`], the handler's step 4: arbitrary
//! bytes, arbitrary JSON, and mutations of the real payloads in `tests/fixtures/` give a
//! typed [`ParseError`] (a 400 with its code) or an event the codec can encode, never a
//! panic. Bounded case counts keep them to seconds; `PROPTEST_CASES=N` hunts longer, and the
//! cargo-fuzz targets in `fuzz/` call the same entry point.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use chatgptd_types::avro::Codec;
use proptest::prelude::*;

use crate::proptest_config as config;
use proptest::sample::Index;
use serde_json::{Map, Value};

use super::{ParseError, Parsed, event_id, parse_body};
use crate::source::{GITHUB_DELIVERY_HEADER, GITHUB_EVENT_HEADER, JIRA_DELIVERY_HEADER, Source};

/// The codes a parse error may carry (the `error` of the 400's JSON body).
const ERROR_CODES: &[&str] = &[
    "malformed_json",
    "invalid_payload",
    "missing_header",
    "missing_field",
];

const INSTANCE_URL: &str = "https://acme.service-now.com";

pub(crate) const FIXTURES: &[(Source, &str, &[u8])] = &[
    (
        Source::Jira,
        "jira_issue_created",
        include_bytes!(
            "../../tests/fixtures/jira/jira_issue_created.cloud.mattermost-plugin-jira.json"
        ),
    ),
    (
        Source::Jira,
        "jira_issue_updated",
        include_bytes!(
            "../../tests/fixtures/jira/jira_issue_updated.priority.cloud.mattermost-plugin-jira.json"
        ),
    ),
    (
        Source::Jira,
        "comment_created",
        include_bytes!(
            "../../tests/fixtures/jira/comment_created.cloud.mattermost-plugin-jira.json"
        ),
    ),
    (
        Source::ServiceNow,
        "business_rule",
        include_bytes!(
            "../../tests/fixtures/servicenow/SYNTH_business_rule_outbound_incident.json"
        ),
    ),
    (
        Source::ServiceNow,
        "table_api",
        include_bytes!(
            "../../tests/fixtures/servicenow/table_api_get_incident.response.servicenow-docs.json"
        ),
    ),
    (
        Source::GitHub,
        "issues_opened",
        include_bytes!("../../tests/fixtures/github/issues.opened.octokit-webhooks.json"),
    ),
];

/// The headers a real sender of `source` sets (signatures are checked before parsing).
pub(super) fn sender_headers(source: Source, github_event: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    match source {
        Source::Jira => {
            headers.insert(
                JIRA_DELIVERY_HEADER,
                HeaderValue::from_static("0ae8f5b6-0b7f-4b47-9d3c-5c3f8e0c1d2e"),
            );
        }
        Source::ServiceNow => {}
        Source::GitHub => {
            headers.insert(
                GITHUB_DELIVERY_HEADER,
                HeaderValue::from_static("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            );
            headers.insert(
                GITHUB_EVENT_HEADER,
                HeaderValue::from_str(github_event).unwrap(),
            );
        }
    }
    headers
}

/// Parses and checks the outcome is one the handler can answer: a 400 with a known code
/// and a detail, or an event whose identity is set and which the codec encodes (a failure
/// there would be a 500).
fn parse_and_check(source: Source, headers: &HeaderMap, body: &[u8]) -> Result<Parsed, ParseError> {
    let parsed = parse_body(source, headers, body, 1_700_000_000_000, INSTANCE_URL);
    match &parsed {
        Err(error) => {
            assert!(ERROR_CODES.contains(&error.error), "{error:?}");
            assert!(!error.detail.is_empty(), "{error:?}");
        }
        Ok(Parsed::NotTicket {
            delivery_id,
            event_type,
        }) => {
            assert!(!delivery_id.is_empty() && !event_type.is_empty());
        }
        Ok(Parsed::Ticket(ticket)) => {
            let event = &ticket.event;
            assert_eq!(event.source, source.as_str());
            assert!(!event.delivery_id.is_empty(), "{event:?}");
            assert_eq!(event.event_id, event_id(source, &event.delivery_id));
            assert!(!event.event_type.is_empty(), "{event:?}");
            assert!(!event.ticket_id.is_empty(), "{event:?}");
            assert!(!event.ticket_key.is_empty(), "{event:?}");
            assert_eq!(event.raw_payload.as_bytes(), body);
            let encoded = Codec::builtin()
                .encode(event)
                .expect("a parsed event encodes");
            assert_eq!(
                Codec::builtin()
                    .decode::<chatgptd_types::records::TicketEvent>(&encoded)
                    .unwrap(),
                *event
            );
        }
    }
    parsed
}

fn source() -> impl Strategy<Value = Source> {
    prop_oneof![
        Just(Source::Jira),
        Just(Source::ServiceNow),
        Just(Source::GitHub)
    ]
}

pub(super) fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "\\PC{0,16}",
        1 => any::<String>(),
        // Values the parsers look for.
        2 => proptest::sample::select(vec![
            "", " ", "doc", "paragraph", "text", "bulletList", "orderedList", "listItem",
            "blockquote", "table", "tableRow", "tableCell", "mention", "emoji", "hardBreak",
            "codeBlock", "rule", "jira:issue_created", "comment_created", "issues",
            "issue_comment", "1", "6", "incident", "https://x.atlassian.net/rest/api/2/issue/1",
            "https://api.github.com/repos/o/r", "priority:high", "://", "/",
        ]).prop_map(str::to_string),
    ]
}

/// Object keys: mostly the ones the parsers read, so random JSON reaches deep code.
pub(super) fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(vec![
            "webhookEvent", "issue", "id", "key", "self", "fields", "summary", "description",
            "priority", "status", "labels", "reporter", "displayName", "accountId", "name",
            "user", "comment", "author", "updateAuthor", "type", "content", "attrs", "order",
            "text", "shortName", "url", "timestamp", "result", "sys_id", "sys_updated_on",
            "number", "table", "sys_class_name", "event", "short_description", "urgency",
            "state", "category", "subcategory", "caller_id", "opened_by", "sys_updated_by",
            "value", "display_value", "link", "action", "node_id", "repository", "full_name",
            "repository_url", "title", "body", "html_url", "login", "sender",
        ]).prop_map(str::to_string),
        1 => text(),
    ]
}

pub(super) fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        proptest::sample::select(vec![0u64, 1, 2, 3, u64::MAX, u64::MAX - 1, i64::MAX as u64])
            .prop_map(Value::from),
        any::<f64>().prop_map(
            |float| serde_json::Number::from_f64(float).map_or(Value::Null, Value::Number)
        ),
    ]
}

pub(super) fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 96, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Headers from what a sender sets, plus arbitrary names and values (any bytes a
/// `HeaderValue` holds: obs-text, empty, spaces).
pub(super) fn headers() -> impl Strategy<Value = HeaderMap> {
    let name = prop_oneof![
        proptest::sample::select(vec![
            JIRA_DELIVERY_HEADER,
            GITHUB_DELIVERY_HEADER,
            GITHUB_EVENT_HEADER,
            "x-hub-signature",
            "x-hub-signature-256",
            "x-signature",
            "content-type",
        ])
        .prop_map(str::to_string),
        "[a-z][a-z0-9-]{0,12}",
    ];
    let value = prop_oneof![
        text().prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..32),
    ];
    proptest::collection::vec((name, value), 0..6).prop_map(|pairs| {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(&value),
            ) {
                headers.append(name, value);
            }
        }
        headers
    })
}

pub(super) fn github_event() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec![
        "issues",
        "issue_comment",
        "ping",
        "push",
        "pull_request",
    ])
}

/// A change to a JSON payload at a random node.
#[derive(Debug, Clone)]
pub(super) enum Edit {
    /// The node replaced by another value.
    Replace(Index, Value),
    /// A key removed from an object node.
    Remove(Index, Index),
    /// A key added to (or replaced in) an object node.
    Insert(Index, String, Value),
}

pub(super) fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), json()).prop_map(|(at, value)| Edit::Replace(at, value)),
        (any::<Index>(), any::<Index>()).prop_map(|(at, key)| Edit::Remove(at, key)),
        (any::<Index>(), key(), json()).prop_map(|(at, key, value)| Edit::Insert(at, key, value)),
    ]
}

/// Every node of `value`, depth first, as JSON pointers.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                pointers(child, format!("{at}/{escaped}"), out);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{index}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

pub(super) fn apply(payload: &mut Value, edit: Edit) {
    let mut all = Vec::new();
    pointers(payload, String::new(), &mut all);
    match edit {
        Edit::Replace(at, value) => {
            *payload.pointer_mut(&all[at.index(all.len())]).unwrap() = value;
        }
        Edit::Remove(at, key) => {
            if let Some(Value::Object(map)) = payload.pointer_mut(&all[at.index(all.len())])
                && !map.is_empty()
            {
                let name = map.keys().nth(key.index(map.len())).unwrap().clone();
                map.remove(&name);
            }
        }
        Edit::Insert(at, key, value) => {
            if let Some(Value::Object(map)) = payload.pointer_mut(&all[at.index(all.len())]) {
                map.insert(key, value);
            }
        }
    }
}

/// A change to the bytes of a payload.
#[derive(Debug, Clone)]
pub(super) enum ByteEdit {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    Truncate(Index),
    Insert(Index, Vec<u8>),
}

pub(super) fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(at, bit)| ByteEdit::FlipBit(at, bit)),
        (
            any::<Index>(),
            prop_oneof![
                proptest::sample::select(b"{}[]\",:\\0-9eE.tfn \n".to_vec()),
                any::<u8>()
            ]
        )
            .prop_map(|(at, byte)| ByteEdit::SetByte(at, byte)),
        any::<Index>().prop_map(ByteEdit::Truncate),
        (
            any::<Index>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(at, bytes)| ByteEdit::Insert(at, bytes)),
    ]
}

/// `body` with `edits` applied in turn.
pub(super) fn mangled(body: &[u8], edits: Vec<ByteEdit>) -> Vec<u8> {
    let mut body = body.to_vec();
    for edit in edits {
        apply_bytes(&mut body, edit);
    }
    body
}

fn apply_bytes(body: &mut Vec<u8>, edit: ByteEdit) {
    let len = body.len();
    if len == 0 && !matches!(edit, ByteEdit::Insert(..)) {
        return;
    }
    match edit {
        ByteEdit::FlipBit(at, bit) => body[at.index(len)] ^= 1 << bit,
        ByteEdit::SetByte(at, byte) => body[at.index(len)] = byte,
        ByteEdit::Truncate(at) => body.truncate(at.index(len)),
        ByteEdit::Insert(at, bytes) => {
            let at = at.index(len + 1);
            body.splice(at..at, bytes);
        }
    }
}

/// An ADF node: the types `adf.rs` renders, with attributes it reads (ordered lists'
/// `order` at the edges of u64).
fn adf_node() -> impl Strategy<Value = Value> {
    let node_type = proptest::sample::select(vec![
        "doc",
        "paragraph",
        "heading",
        "codeBlock",
        "bulletList",
        "orderedList",
        "listItem",
        "blockquote",
        "rule",
        "table",
        "tableRow",
        "tableCell",
        "tableHeader",
        "text",
        "hardBreak",
        "mention",
        "emoji",
        "inlineCard",
        "date",
        "status",
        "panel",
        "unknown",
    ]);
    let attrs = (
        number(),
        proptest::option::of(text()),
        proptest::option::of(text()),
    )
        .prop_map(|(order, text, id)| serde_json::json!({"order": order, "text": text, "id": id}))
        .boxed();
    let leaf = (node_type.clone(), text(), attrs.clone()).prop_map(
        |(kind, text, attrs)| serde_json::json!({"type": kind, "text": text, "attrs": attrs}),
    );
    leaf.prop_recursive(8, 128, 5, move |inner| {
        (
            node_type.clone(),
            attrs.clone(),
            proptest::collection::vec(inner, 0..5),
        )
            .prop_map(|(kind, attrs, content)| {
                serde_json::json!({"type": kind, "attrs": attrs, "content": content})
            })
    })
}

fn fixture() -> impl Strategy<Value = (Source, &'static str, &'static [u8])> {
    proptest::sample::select(FIXTURES.to_vec())
}

#[test]
fn the_fixtures_parse_as_tickets() {
    for (source, name, body) in FIXTURES {
        let parsed = parse_and_check(*source, &sender_headers(*source, "issues"), body);
        assert!(
            matches!(parsed, Ok(Parsed::Ticket(_))),
            "{name}: {parsed:?}"
        );
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_bytes_and_headers_are_a_parse_error(
        source in source(),
        headers in headers(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        parse_and_check(source, &headers, &body).unwrap_err();
    }

    #[test]
    fn arbitrary_json_is_a_parse_error_or_an_event(
        source in source(),
        event in github_event(),
        payload in json(),
        arbitrary_headers in headers(),
        real_headers in any::<bool>(),
    ) {
        let headers = if real_headers { sender_headers(source, event) } else { arbitrary_headers };
        parse_and_check(source, &headers, &serde_json::to_vec(&payload).unwrap()).ok();
    }

    #[test]
    fn arbitrary_json_objects_are_a_parse_error_or_an_event(
        source in source(),
        event in github_event(),
        fields in proptest::collection::vec((key(), json()), 0..8),
    ) {
        let payload = Value::Object(fields.into_iter().collect());
        let body = serde_json::to_vec(&payload).unwrap();
        parse_and_check(source, &sender_headers(source, event), &body).ok();
    }

    #[test]
    fn edited_fixtures_are_a_parse_error_or_an_event(
        (source, _name, body) in fixture(),
        event in github_event(),
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        let mut payload: Value = serde_json::from_slice(body).unwrap();
        for edit in edits {
            apply(&mut payload, edit);
        }
        let body = serde_json::to_vec(&payload).unwrap();
        parse_and_check(source, &sender_headers(source, event), &body).ok();
    }

    #[test]
    fn adf_descriptions_are_text_or_empty(
        content in proptest::collection::vec(adf_node(), 0..4),
        fixture in 0usize..3,
    ) {
        let (source, _name, body) = FIXTURES[fixture];
        let mut payload: Value = serde_json::from_slice(body).unwrap();
        payload["issue"]["fields"]["description"] =
            serde_json::json!({"type": "doc", "version": 1, "content": content});
        let body = serde_json::to_vec(&payload).unwrap();
        let parsed = parse_and_check(source, &sender_headers(source, "issues"), &body);
        prop_assert!(matches!(parsed, Ok(Parsed::Ticket(_))), "{:?}", parsed);
    }

    #[test]
    fn mangled_fixture_bytes_are_a_parse_error_or_an_event(
        (source, _name, body) in fixture(),
        edits in proptest::collection::vec(byte_edit(), 1..4),
        headers in headers(),
        real_headers in any::<bool>(),
    ) {
        let body = mangled(body, edits);
        let headers = if real_headers { sender_headers(source, "issues") } else { headers };
        parse_and_check(source, &headers, &body).ok();
    }
}
