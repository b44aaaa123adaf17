//! `executor: {kind: http, ...}`: one declared HTTP request per call of the action.
//!
//! ```yaml
//! executor:
//!   kind: http
//!   method: POST
//!   base_url_env: ACTIONS_BASE_URL      # optional: `url` is then a path below it
//!   url: /publish
//!   headers: [{name: X-Token, env: PUBLISH_TOKEN}, {name: X-Source, value: chatgptd}]
//!   body: {title: "{{ arguments.title }}", by: "{{ agent }}"}   # default: the arguments
//!   signature: {header: X-Signature, secret_env: PUBLISH_SIGNING_KEY}
//!   timeout: 10s
//!   statuses: {retry: ["500", "502"], wait: ["429", "503"], fail: ["4xx"]}
//! ```
//!
//! The body template is JSON in which every string may hold `{{ ... }}` tags over
//! `arguments.<name>` (the call's arguments), `action.id`, `agent` and `conversation`. A
//! string that is one tag and nothing else becomes the value itself (a number stays a
//! number); an argument the call left out renders as `null` (or nothing, inside text).
//! Every request also carries `Idempotency-Key: <action id>`, the same on every retry.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::SecretUse;
use crate::Error;
use crate::catalogue::ActionSpec;
use crate::template::{Segment, lookup, parse, render_segments, to_text};

/// A declared HTTP request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCall {
    /// `GET`, `POST` (the default), `PUT`, `PATCH` or `DELETE`.
    #[serde(default = "default_method")]
    pub method: String,

    /// The request's URL; with `base_url_env`, a path (starting with `/`) below that base.
    pub url: String,

    /// The environment variable holding the endpoint's base URL (`https://hooks.example.com`),
    /// so one catalogue serves every deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url_env: Option<String>,

    /// Headers sent with every request, each with a fixed `value` or one read from `env`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderSpec>,

    /// The JSON body template; absent sends the call's arguments as they are (no body for
    /// `GET` and `DELETE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,

    /// An HMAC-SHA256 of the body sent in a header, for receivers that check who sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,

    /// How long one request may take (10s by default, at most 5m).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,

    /// Which answers mean retry, wait or fail.
    #[serde(default)]
    pub statuses: StatusClasses,
}

/// One header of a declared request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderSpec {
    /// The header's name.
    pub name: String,
    /// A fixed value (not for secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The environment variable holding the value (a token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
}

/// How the body is signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// The header the signature goes in, e.g. `X-Signature-256`.
    pub header: String,
    /// The environment variable holding the key.
    pub secret_env: String,
    /// Written before the hex digest (`sha256=` by default, as GitHub's webhooks do).
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

/// Which non-2xx answers mean what. Entries are a status (`503`) or a class (`5xx`); an exact
/// status beats a class. A status in none of them fails the call (the model is told).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusClasses {
    /// Transient: the record is tried again, a bounded number of times.
    pub retry: Vec<String>,
    /// The receiver is unavailable (rate limited, down): the call waits until it is back,
    /// never dead-lettered, honouring `Retry-After`.
    pub wait: Vec<String>,
    /// Failed for good; the outcome tells the model why.
    pub fail: Vec<String>,
}

impl Default for StatusClasses {
    fn default() -> Self {
        let list = |codes: &[&str]| codes.iter().map(|c| c.to_string()).collect();
        StatusClasses {
            retry: list(&["408", "500", "502", "504"]),
            wait: list(&["429", "503"]),
            fail: Vec::new(),
        }
    }
}

/// What an answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// 2xx (unless declared otherwise): done.
    Done,
    Retry,
    Wait,
    Fail,
}

impl StatusClasses {
    /// What `status` means.
    pub fn class_of(&self, status: u16) -> StatusClass {
        let exact = status.to_string();
        let class = format!("{}xx", status / 100);
        let lists = [
            (&self.wait, StatusClass::Wait),
            (&self.retry, StatusClass::Retry),
            (&self.fail, StatusClass::Fail),
        ];
        for wanted in [&exact, &class] {
            for (list, meaning) in &lists {
                if list.iter().any(|entry| entry.eq_ignore_ascii_case(wanted)) {
                    return *meaning;
                }
            }
        }
        if (200..300).contains(&status) {
            StatusClass::Done
        } else {
            StatusClass::Fail
        }
    }

    fn problems(&self) -> Vec<String> {
        let all = self.retry.iter().chain(&self.wait).chain(&self.fail);
        all.filter(|entry| !valid_status_entry(entry))
            .map(|entry| format!("statuses: `{entry}` is neither a status (503) nor a class (5xx)"))
            .collect()
    }
}

fn valid_status_entry(entry: &str) -> bool {
    let bytes = entry.as_bytes();
    if bytes.len() != 3 || !(b'1'..=b'5').contains(&bytes[0]) {
        return false;
    }
    let rest = &entry[1..];
    rest.eq_ignore_ascii_case("xx") || rest.bytes().all(|b| b.is_ascii_digit())
}

fn default_method() -> String {
    "POST".to_string()
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_prefix() -> String {
    "sha256=".to_string()
}

/// The longest timeout a declaration may ask for: a call holds its record's processing.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);

/// Headers chatgptd sets itself.
const RESERVED_HEADERS: [&str; 3] = ["idempotency-key", "content-type", "content-length"];

impl HttpCall {
    /// The method, uppercase.
    pub fn method(&self) -> String {
        self.method.to_ascii_uppercase()
    }

    pub(super) fn secrets(&self) -> Vec<SecretUse> {
        let mut secrets = Vec::new();
        if let Some(env) = &self.base_url_env {
            secrets.push(SecretUse {
                env: env.clone(),
                purpose: "the endpoint's base URL",
                required: true,
            });
        }
        for header in &self.headers {
            if let Some(env) = &header.env {
                secrets.push(SecretUse {
                    env: env.clone(),
                    purpose: "a header's value",
                    required: true,
                });
            }
        }
        if let Some(signature) = &self.signature {
            secrets.push(SecretUse {
                env: signature.secret_env.clone(),
                purpose: "the signing key",
                required: true,
            });
        }
        secrets
    }

    pub(super) fn problems(&self, action: &ActionSpec) -> Vec<String> {
        let mut problems = Vec::new();
        if !matches!(
            self.method().as_str(),
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE"
        ) {
            problems.push(format!(
                "method `{}` is not GET, POST, PUT, PATCH or DELETE",
                self.method
            ));
        }
        match &self.base_url_env {
            Some(env) if env.trim().is_empty() => problems.push("base_url_env is empty".into()),
            Some(_) if !self.url.starts_with('/') => {
                problems.push("with base_url_env, url is a path starting with `/`".into());
            }
            None if !(self.url.starts_with("http://") || self.url.starts_with("https://")) => {
                problems.push(format!(
                    "url `{}` is not an http(s) URL (or set base_url_env and give a path)",
                    self.url
                ));
            }
            _ => {}
        }
        for header in &self.headers {
            let name = &header.name;
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                problems.push(format!("header `{name}` is not a valid header name"));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                problems.push(format!("header `{name}` is set by chatgptd"));
            }
            match (&header.value, &header.env) {
                (Some(_), None) => {}
                (None, Some(env)) if !env.trim().is_empty() => {}
                _ => problems.push(format!(
                    "header `{name}` needs exactly one of `value` or `env`"
                )),
            }
        }
        if let Some(signature) = &self.signature {
            if signature.header.is_empty() || !signature.header.bytes().all(is_token_byte) {
                problems.push(format!(
                    "signature header `{}` is not a valid header name",
                    signature.header
                ));
            }
            if signature.secret_env.trim().is_empty() {
                problems.push("signature: secret_env is empty".into());
            }
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            problems.push("timeout must be between 1ms and 5m".into());
        }
        problems.extend(self.statuses.problems());
        if let Some(body) = &self.body {
            let declared = declared_arguments(action);
            check_template(body, &declared, &mut problems);
        }
        problems
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The argument names an action's schema declares.
fn declared_arguments(action: &ActionSpec) -> Vec<String> {
    action
        .parameters
        .get("properties")
        .and_then(Value::as_object)
        .map(|properties| properties.keys().cloned().collect())
        .unwrap_or_default()
}

/// Checks every tag of a body template: syntax, and what it refers to.
fn check_template(template: &Value, declared: &[String], problems: &mut Vec<String>) {
    match template {
        Value::String(text) => match parse(text) {
            Ok(segments) => {
                for segment in segments {
                    if let Segment::Tag(path) = segment
                        && let Err(message) = known_reference(&path, declared)
                    {
                        problems.push(format!("body: {message}"));
                    }
                }
            }
            Err(err) => problems.push(format!("body: {err}")),
        },
        Value::Array(items) => {
            for item in items {
                check_template(item, declared, problems);
            }
        }
        Value::Object(map) => {
            for item in map.values() {
                check_template(item, declared, problems);
            }
        }
        _ => {}
    }
}

fn known_reference(path: &[String], declared: &[String]) -> Result<(), String> {
    match path {
        [root] if root == "arguments" || root == "agent" || root == "conversation" => Ok(()),
        [root, name, ..] if root == "arguments" => {
            if declared.contains(name) {
                Ok(())
            } else {
                Err(format!(
                    "`{}`: the action declares no argument `{name}`",
                    path.join(".")
                ))
            }
        }
        [root, id] if root == "action" && id == "id" => Ok(()),
        _ => Err(format!(
            "`{}`: a body refers to arguments.<name>, action.id, agent or conversation",
            path.join(".")
        )),
    }
}

/// Renders a body template over `context` (`{"arguments": ..., "action": {"id": ...},
/// "agent": ..., "conversation": ...}`).
pub fn render_body(template: &Value, context: &Value) -> Result<Value, Error> {
    Ok(match template {
        Value::String(text) => {
            let segments = parse(text)?;
            if let [Segment::Tag(path)] = segments.as_slice() {
                lookup(context, path).cloned().unwrap_or(Value::Null)
            } else {
                let resolve = |path: &[String]| {
                    Ok(Some(lookup(context, path).map(to_text).unwrap_or_default()))
                };
                Value::String(render_segments(&segments, resolve)?)
            }
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| render_body(item, context))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| Ok((key.clone(), render_body(item, context)?)))
                .collect::<Result<_, Error>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn call(yaml: &str) -> HttpCall {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn statuses_map_exact_codes_before_classes() {
        let classes = StatusClasses {
            retry: vec!["5xx".into()],
            wait: vec!["503".into()],
            fail: vec!["409".into()],
        };
        assert_eq!(classes.class_of(503), StatusClass::Wait);
        assert_eq!(classes.class_of(500), StatusClass::Retry);
        assert_eq!(classes.class_of(409), StatusClass::Fail);
        assert_eq!(classes.class_of(404), StatusClass::Fail);
        assert_eq!(classes.class_of(201), StatusClass::Done);
        let defaults = StatusClasses::default();
        assert_eq!(defaults.class_of(429), StatusClass::Wait);
        assert_eq!(defaults.class_of(502), StatusClass::Retry);
        assert_eq!(defaults.class_of(400), StatusClass::Fail);
    }

    #[test]
    fn bodies_render_values_and_text() {
        let template = json!({
            "amount": "{{ arguments.amount }}",
            "note": "{{ agent }} pays {{ arguments.amount }} for {{ arguments.purpose }}",
            "missing": "{{ arguments.memo }}",
            "fixed": [1, true],
            "key": "{{ action.id }}",
        });
        let context = json!({
            "arguments": {"amount": 12.5, "purpose": "a room"},
            "agent": "hotel-optimizer-x",
            "action": {"id": "act-1"},
        });
        assert_eq!(
            render_body(&template, &context).unwrap(),
            json!({
                "amount": 12.5,
                "note": "hotel-optimizer-x pays 12.5 for a room",
                "missing": null,
                "fixed": [1, true],
                "key": "act-1",
            })
        );
    }

    #[test]
    fn declarations_are_checked() {
        let action: ActionSpec = serde_yaml::from_str(
            "{id: pay, description: d, risk: low, parameters: {type: object, properties: {amount: {type: number}}}}",
        )
        .unwrap();
        let good = call(
            "{url: /pay, base_url_env: BASE, body: {a: '{{ arguments.amount }}'}, signature: {header: X-Sig, secret_env: KEY}}",
        );
        assert_eq!(good.problems(&action), Vec::<String>::new());
        assert_eq!(good.secrets().len(), 2);
        let bad = call(
            "{method: FETCH, url: pay, headers: [{name: X-Token}, {name: Idempotency-Key, value: x}], body: {a: '{{ arguments.amout }}'}, timeout: 1h, statuses: {wait: ['5x']}}",
        );
        let problems = bad.problems(&action).join("\n");
        for expected in [
            "method `FETCH`",
            "not an http(s) URL",
            "exactly one of `value` or `env`",
            "set by chatgptd",
            "no argument `amout`",
            "timeout",
            "`5x`",
        ] {
            assert!(problems.contains(expected), "{expected}: {problems}");
        }
    }
}
