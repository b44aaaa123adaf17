//! The whole gateway on arbitrary requests (a bounded property test): whatever the body and
//! headers, the answer is JSON, a 4xx carries `error` and `detail`, and nothing is a 5xx
//! but the documented 503s (`unavailable`, `in_flight`) with `Retry-After`; a panic would
//! be a 500. Bodies are arbitrary bytes, arbitrary JSON, and byte or field edits of the
//! real payloads, signed correctly or not. The parsers' own property tests (in the crate)
//! go deeper at no HTTP cost; `PROPTEST_CASES=N` runs N requests here.

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

use chatgptd_worker_ingest::Source;
use chatgptd_worker_ingest::signature::{sign_base64, sign_hex};

use crate::support::*;

/// A request to send.
#[derive(Debug, Clone)]
struct Request {
    source: Source,
    body: Vec<u8>,
    /// Sign the body with the right secret, or send `signature` as the header.
    signed: bool,
    signature: String,
    delivery_id: Option<String>,
    github_event: Option<String>,
    extra: Vec<(String, String)>,
}

impl Request {
    fn webhook(&self) -> Webhook {
        let mut headers = Vec::new();
        let signature = if self.signed {
            match self.source {
                Source::ServiceNow => sign_base64(SECRET.as_bytes(), &self.body),
                _ => sign_hex(SECRET.as_bytes(), &self.body),
            }
        } else {
            self.signature.clone()
        };
        let signature_header = match self.source {
            Source::Jira => "X-Hub-Signature",
            Source::ServiceNow => "X-Signature",
            Source::GitHub => "X-Hub-Signature-256",
        };
        headers.push((signature_header.to_string(), signature));
        if let Some(id) = &self.delivery_id {
            let name = match self.source {
                Source::Jira => "X-Atlassian-Webhook-Identifier",
                _ => "X-GitHub-Delivery",
            };
            headers.push((name.to_string(), id.clone()));
        }
        if let Some(event) = &self.github_event {
            headers.push(("X-GitHub-Event".to_string(), event.clone()));
        }
        headers.extend(self.extra.iter().cloned());
        // Only what an HTTP client can send reaches the gateway.
        headers.retain(|(name, value)| {
            axum::http::HeaderName::from_bytes(name.as_bytes()).is_ok()
                && axum::http::HeaderValue::from_str(value).is_ok()
        });
        Webhook {
            source: self.source,
            body: self.body.clone(),
            headers,
        }
    }
}

const FIXTURES: &[(Source, &str)] = &[
    (Source::Jira, JIRA_CREATED),
    (Source::Jira, JIRA_UPDATED),
    (Source::Jira, JIRA_COMMENT),
    (Source::ServiceNow, SERVICENOW_RULE),
    (Source::ServiceNow, SERVICENOW_TABLE),
    (Source::GitHub, GITHUB_OPENED),
];

/// Header values: text (non-ASCII too), empty, and signature look-alikes.
fn header_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,40}",
        "[ -~]{0,40}",
        "(sha256=)?[0-9a-f]{0,70}",
        Just(String::new()),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::String),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("\\PC{0,8}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A fixture's body, edited: bytes changed, cut or inserted, or a top-level or `issue`
/// field replaced.
fn edited_fixture() -> impl Strategy<Value = (Source, Vec<u8>)> {
    (
        proptest::sample::select(FIXTURES.to_vec()),
        prop_oneof![
            (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| (0, at, byte, Value::Null)),
            any::<Index>().prop_map(|at| (1, at, 0, Value::Null)),
            (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| (2, at, byte, Value::Null)),
            (any::<Index>(), json()).prop_map(|(at, value)| (3, at, 0, value)),
        ],
    )
        .prop_map(|((source, path), (kind, at, byte, value))| {
            let mut body = fixture(path);
            let len = body.len();
            match kind {
                0 => body[at.index(len)] = byte,
                1 => body.truncate(at.index(len)),
                2 => body.insert(at.index(len + 1), byte),
                _ => {
                    let mut payload: Value = serde_json::from_slice(&body).unwrap();
                    let target = match payload.get_mut("issue") {
                        Some(issue @ Value::Object(_)) if at.index(2) == 0 => issue,
                        _ => &mut payload,
                    };
                    if let Value::Object(map) = target {
                        let key = map.keys().nth(at.index(map.len())).cloned().unwrap();
                        map.insert(key, value);
                    }
                    body = serde_json::to_vec(&payload).unwrap();
                }
            }
            (source, body)
        })
}

fn request() -> impl Strategy<Value = Request> {
    let source = prop_oneof![
        Just(Source::Jira),
        Just(Source::ServiceNow),
        Just(Source::GitHub)
    ];
    let body = prop_oneof![
        (
            source.clone(),
            proptest::collection::vec(any::<u8>(), 0..256)
        ),
        (
            source.clone(),
            json().prop_map(|value| serde_json::to_vec(&value).unwrap())
        ),
        edited_fixture(),
    ];
    let extra_name = prop_oneof![
        Just("X-Hub-Signature".to_string()),
        Just("X-Hub-Signature-256".to_string()),
        Just("X-Signature".to_string()),
        Just("X-GitHub-Event".to_string()),
        Just("traceparent".to_string()),
        "x-[a-z0-9-]{1,12}",
    ];
    (
        body,
        any::<bool>(),
        header_text(),
        proptest::option::weighted(0.8, header_text()),
        proptest::option::weighted(
            0.8,
            prop_oneof![
                Just("issues".to_string()),
                Just("issue_comment".to_string()),
                Just("ping".to_string()),
                header_text(),
            ],
        ),
        proptest::collection::vec((extra_name, header_text()), 0..3),
    )
        .prop_map(
            |((source, body), signed, signature, delivery_id, github_event, extra)| Request {
                source,
                body,
                signed,
                signature,
                delivery_id,
                github_event,
                extra,
            },
        )
}

#[test]
fn arbitrary_requests_get_a_json_answer_and_never_a_5xx() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (_setup, gateway) = runtime.block_on(async {
        let setup = Setup::start().await;
        let mut options = options();
        // Unlimited: a 429 would hide what comes after the rate limit.
        options.jira.requests_per_second = 0;
        options.github.requests_per_second = 0;
        options.servicenow.requests_per_second = 0;
        let gateway = setup.gateway(options).await;
        (setup, gateway)
    });
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() {
        Config::default().cases
    } else {
        128
    };
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let seen = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    runner
        .run(&request(), |request| {
            let webhook = request.webhook();
            // `send` fails the case if the answer is not JSON.
            let answer = runtime.block_on(gateway.send(&webhook));
            let status = answer.status;
            *seen.lock().unwrap().entry(status.as_u16()).or_default() += 1;
            if status.is_success() {
                prop_assert!(answer.body["status"].is_string(), "{}", answer.body);
            } else if status.is_client_error() {
                prop_assert!(answer.body["error"].is_string(), "{}", answer.body);
                prop_assert!(answer.body["detail"].is_string(), "{}", answer.body);
            } else {
                // The documented 503s only: never a 500 (a panic or a bug).
                prop_assert_eq!(status.as_u16(), 503, "{}", answer.body);
                let error = answer.body["error"].as_str().unwrap_or_default();
                prop_assert!(
                    error == "unavailable" || error == "in_flight",
                    "{}",
                    answer.body
                );
                prop_assert!(answer.retry_after().is_some());
            }
            Ok(())
        })
        .unwrap();
    // The requests reach past the signature and into the parsers.
    let seen = seen.into_inner().unwrap();
    eprintln!("answers by status: {seen:?}");
    assert!(
        seen.contains_key(&401) && seen.contains_key(&400),
        "{seen:?}"
    );
}
