//! The GitHub parser against its `Value`-based [`oracle`]: the same outcome, error details
//! included, for the fixture, for it with the fields we read set to other kinds, removed or
//! given twice, for arbitrary objects and for mangled bytes.

use axum::http::HeaderMap;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::super::proptests::{
    apply, byte_edit, edit, github_event, headers, json, key, mangled, number, sender_headers, text,
};
use super::super::{Parsed, parse_body};
use super::oracle;
use crate::proptest_config as config;
use crate::source::Source;

const FIXTURE: &[u8] =
    include_bytes!("../../../tests/fixtures/github/issues.opened.octokit-webhooks.json");

/// Every node the parser reads, and the objects holding them.
const READ: &[&str] = &[
    "/action",
    "/issue",
    "/issue/node_id",
    "/issue/id",
    "/issue/number",
    "/issue/title",
    "/issue/body",
    "/issue/state",
    "/issue/labels",
    "/issue/labels/0",
    "/issue/labels/0/name",
    "/issue/labels/1",
    "/issue/user",
    "/issue/user/login",
    "/issue/html_url",
    "/issue/repository_url",
    "/repository",
    "/repository/full_name",
    "/sender",
    "/sender/login",
];

/// Both parsers' outcomes, asserted equal; the outcome, for more checks.
fn agree(headers: &HeaderMap, body: &[u8]) -> Result<Parsed, super::ParseError> {
    let new = parse_body(Source::GitHub, headers, body, 1_700_000_000_000, "");
    let old = oracle::parse_body(headers, body, 1_700_000_000_000);
    assert_eq!(new, old, "body: {}", String::from_utf8_lossy(body));
    new
}

fn issues() -> HeaderMap {
    sender_headers(Source::GitHub, "issues")
}

fn fixture() -> Value {
    serde_json::from_slice(FIXTURE).unwrap()
}

/// Sets the node at `pointer` if its parent is an object (or an array holding that index).
fn set(payload: &mut Value, pointer: &str, value: Value) {
    let (parent, name) = pointer.rsplit_once('/').unwrap();
    match payload.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(name.to_string(), value);
        }
        Some(Value::Array(items)) => {
            if let Some(item) = name.parse().ok().and_then(|at: usize| items.get_mut(at)) {
                *item = value;
            }
        }
        _ => {}
    }
}

fn remove(payload: &mut Value, pointer: &str) {
    let (parent, name) = pointer.rsplit_once('/').unwrap();
    if let Some(Value::Object(map)) = payload.pointer_mut(parent) {
        map.remove(name);
    }
}

/// The payload as JSON text with the key at `pointer` given twice, `first` then `second`
/// (unchanged if the key's parent is not an object).
fn twice(mut payload: Value, pointer: &str, first: &Value, second: &Value) -> Vec<u8> {
    const MARK: &str = "\"__twice__\"";
    let (parent, name) = pointer.rsplit_once('/').unwrap();
    if !payload.pointer(parent).is_some_and(Value::is_object) {
        return serde_json::to_vec(&payload).unwrap();
    }
    set(&mut payload, pointer, json!("__twice__"));
    let name = Value::from(name);
    let text = serde_json::to_string(&payload).unwrap();
    text.replacen(
        &format!("{name}:{MARK}"),
        &format!("{name}:{first},{name}:{second}"),
        1,
    )
    .into_bytes()
}

/// Values of every kind, and the strings the parser treats specially.
fn any_kind() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
        proptest::sample::select(vec![
            json!(""),
            json!("  "),
            json!(" x "),
            json!("https://api.github.com/repos/o/r/"),
            json!("priority: High"),
            json!([]),
            json!({}),
            json!([{"name": " priority:low "}, {"name": 1}, "bug", {"name": "p"}]),
            json!({"login": " someone ", "full_name": "o/r", "name": "n"}),
        ]),
        json(),
    ]
}

#[derive(Debug, Clone)]
enum FieldEdit {
    Set(&'static str, Value),
    Remove(&'static str),
}

fn twice_edit() -> impl Strategy<Value = Option<(&'static str, Value, Value)>> {
    proptest::option::of((
        proptest::sample::select(READ.to_vec()),
        any_kind(),
        any_kind(),
    ))
}

fn field_edit() -> impl Strategy<Value = FieldEdit> {
    let at = proptest::sample::select(READ.to_vec());
    prop_oneof![
        3 => (at.clone(), any_kind()).prop_map(|(at, value)| FieldEdit::Set(at, value)),
        1 => at.prop_map(FieldEdit::Remove),
    ]
}

/// JSON text of objects whose keys, mostly the ones read, may repeat (a `Value` keeps the last).
fn repeating_keys() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        3 => proptest::sample::select(
            READ.iter().map(|at| at.rsplit('/').next().unwrap()).collect::<Vec<_>>()
        ).prop_map(str::to_string),
        1 => key(),
    ];
    let leaf = any_kind().prop_map(|value| value.to_string());
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|items| format!("[{}]", items.join(","))),
            proptest::collection::vec((key.clone(), inner), 0..6).prop_map(|fields| {
                let fields: Vec<String> = fields
                    .iter()
                    .map(|(key, value)| format!("{}:{value}", Value::from(key.as_str())))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

#[test]
fn the_fixture_agrees() {
    let parsed = agree(&issues(), FIXTURE);
    let Ok(Parsed::Ticket(ticket)) = parsed else {
        panic!("{parsed:?}")
    };
    assert_eq!(ticket.event.ticket_key, "Codertocat/Hello-World#1");
    assert_eq!(ticket.event.labels, ["bug"]);
    for event in ["issue_comment", "ping", "push"] {
        agree(&sender_headers(Source::GitHub, event), FIXTURE).unwrap();
    }
    agree(&HeaderMap::new(), FIXTURE).unwrap_err();
}

#[test]
fn each_field_read_of_each_kind_agrees() {
    let kinds = [
        Value::Null,
        json!(true),
        json!(7),
        json!(-7),
        json!(1.5),
        json!(""),
        json!("  "),
        json!(" x "),
        json!([]),
        json!(["x"]),
        json!({}),
        json!({"name": "x", "login": "x", "full_name": "x"}),
    ];
    for at in READ {
        let mut payload = fixture();
        remove(&mut payload, at);
        agree(&issues(), &serde_json::to_vec(&payload).unwrap()).ok();
        for kind in &kinds {
            let mut payload = fixture();
            set(&mut payload, at, kind.clone());
            agree(&issues(), &serde_json::to_vec(&payload).unwrap()).ok();
        }
    }
}

#[test]
fn each_field_read_given_twice_agrees() {
    let kinds = [
        Value::Null,
        json!(7),
        json!(" x "),
        json!("y"),
        json!([{"name": "x"}]),
        json!({"name": "x", "login": "x", "full_name": "x"}),
    ];
    for at in READ {
        for first in &kinds {
            for second in &kinds {
                agree(&issues(), &twice(fixture(), at, first, second)).ok();
            }
        }
    }
}

#[test]
fn the_last_of_a_repeated_key_counts() {
    let cases = [
        (
            r#"{"issue": {"node_id": "a", "number": 1}, "issue": 5}"#,
            "the payload has no usable issue",
        ),
        (
            r#"{"issue": 5, "issue": {"node_id": "a", "number": 1},
                "repository": {"full_name": "o/r"}}"#,
            "a o/r#1 issues []",
        ),
        (
            r#"{"issue": {"node_id": "a", "node_id": 3, "id": 9, "number": 1, "number": "2",
                          "repository_url": "https://x/repos/u/v"},
                "repository": {"full_name": "o/r", "full_name": " "},
                "action": "opened", "action": "closed"}"#,
            "9 u/v#2 issues.closed []",
        ),
        (
            r#"{"issue": {"node_id": "a", "number": 1, "repository_url": "https://x/repos/o/r",
                          "labels": [{"name": "x"}], "labels": [{"name": "x", "name": "y"}]}}"#,
            "a o/r#1 issues [\"y\"]",
        ),
    ];
    for (body, expected) in cases {
        let outcome = match agree(&issues(), body.as_bytes()) {
            Ok(Parsed::Ticket(ticket)) => {
                let event = ticket.event;
                let (id, key, kind) = (event.ticket_id, event.ticket_key, event.event_type);
                format!("{id} {key} {kind} {:?}", event.labels)
            }
            Ok(parsed) => format!("{parsed:?}"),
            Err(error) => error.detail,
        };
        assert_eq!(outcome, expected, "{body}");
    }
}

#[test]
fn escaped_keys_are_the_keys_they_spell() {
    let body = r#"{"iss\u0075e": {"node_\u0069d": "a", "number": 1, "title": "t\u00e9\n"},
                   "repository": {"full_name": "o/r"}}"#;
    let Ok(Parsed::Ticket(ticket)) = agree(&issues(), body.as_bytes()) else {
        panic!()
    };
    assert_eq!(
        (ticket.event.ticket_id.as_str(), ticket.event.title.as_str()),
        ("a", "t\u{e9}")
    );
}

/// What serde_json refuses in a `Value` is refused in a field nobody reads, with the same
/// error: `IgnoredAny` would let the first three through.
#[test]
fn malformed_json_anywhere_is_malformed_json() {
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let ignored = [
        "1e400",
        r#""\ud800""#,
        deep.as_str(),
        "\"a\u{1}b\"",
        r#""\x""#,
        "[1,]",
        "{\"a\" 1}",
        "01",
        "tru",
    ];
    for value in ignored {
        let body = format!(
            r#"{{"issue": {{"node_id": "a", "number": 1}}, "repository": {{"x": {value}}}}}"#
        );
        let error = agree(&issues(), body.as_bytes()).unwrap_err();
        assert_eq!(error.error, "malformed_json", "{value}: {error:?}");
    }
    for body in ["", "{", "{} {}", "{}x", "\u{feff}{}"] {
        let error = agree(&issues(), body.as_bytes()).unwrap_err();
        assert_eq!(error.error, "malformed_json", "{body:?}: {error:?}");
    }
    for body in ["[]", "null", "1", "\"{}\"", " [{\"issue\": {}}] "] {
        let error = agree(&HeaderMap::new(), body.as_bytes()).unwrap_err();
        assert_eq!(error.error, "invalid_payload", "{body:?}: {error:?}");
    }
    let error = agree(&issues(), b"{\"a\": \"\xff\"}").unwrap_err();
    assert_eq!(error.error, "malformed_json");
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn fields_read_set_to_any_kind_removed_or_repeated_agree(
        edits in proptest::collection::vec(field_edit(), 1..5),
        repeated in twice_edit(),
        event in github_event(),
    ) {
        let mut payload = fixture();
        for edit in edits {
            match edit {
                FieldEdit::Set(at, value) => set(&mut payload, at, value),
                FieldEdit::Remove(at) => remove(&mut payload, at),
            }
        }
        let body = match repeated {
            Some((at, first, second)) => twice(payload, at, &first, &second),
            None => serde_json::to_vec(&payload).unwrap(),
        };
        agree(&sender_headers(Source::GitHub, event), &body).ok();
    }

    #[test]
    fn edited_fixtures_agree(
        edits in proptest::collection::vec(edit(), 1..4),
        event in github_event(),
    ) {
        let mut payload = fixture();
        for edit in edits {
            apply(&mut payload, edit);
        }
        agree(&sender_headers(Source::GitHub, event), &serde_json::to_vec(&payload).unwrap()).ok();
    }

    #[test]
    fn objects_with_repeated_keys_agree(
        fields in proptest::collection::vec((key(), repeating_keys()), 0..8),
        issue in repeating_keys(),
        event in github_event(),
    ) {
        let mut fields: Vec<String> = fields
            .iter()
            .map(|(key, value)| format!("{}:{value}", Value::from(key.as_str())))
            .collect();
        fields.push(format!("\"issue\":{issue}"));
        let body = format!("{{{}}}", fields.join(","));
        agree(&sender_headers(Source::GitHub, event), body.as_bytes()).ok();
    }

    #[test]
    fn mangled_bytes_agree(
        edits in proptest::collection::vec(byte_edit(), 1..4),
        headers in headers(),
        real_headers in any::<bool>(),
    ) {
        let body = mangled(FIXTURE, edits);
        let headers = if real_headers { issues() } else { headers };
        agree(&headers, &body).ok();
    }
}
