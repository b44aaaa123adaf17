//! Declared HTTP actions (`executor: {kind: http}`): one request per call, built from the
//! catalogue's declaration (`chatgptd_registry::executor::HttpCall`).
//!
//! Every request carries `Idempotency-Key: <action id>`: the same on every retry and
//! redelivery, so a receiver that honours it applies the call once however often it
//! arrives. That is what makes calling again safe after a crash between the call and the
//! outcome's record, or after an answer that says "try again", with no claim needed.
//!
//! What an answer means is declared (`statuses`): `wait` makes the record wait until the
//! receiver is back (unavailable: never dead-lettered, `Retry-After` honoured), `retry` tries
//! the record again a bounded number of times, anything else that is not 2xx fails the call
//! and the model is told. A connection that fails or times out waits like a `503`.
//!
//! Secrets (the base URL, header values, the signing key) come from the worker's secrets
//! and never reach a log, an error or the model: the URL is left out of every message.

use std::time::SystemTime;

use chatgptd_actions::{ActionId, Outcome};
use chatgptd_registry::executor::{HttpCall, StatusClass, render_body};
use chatgptd_runtime::ProcessError;
use chatgptd_types::Secrets;
use hmac::{Hmac, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use sha2::Sha256;

use super::Conversation;
use super::execute::Started;
use crate::telemetry::PluginRequest;
use crate::worker::AgentWorker;

/// The most characters of an answer's body the model is given.
const MAX_ANSWER_TEXT: usize = 2000;

/// Sent with every request.
const USER_AGENT: &str = concat!("chatgptd-agents/", env!("CARGO_PKG_VERSION"));

/// What outbound actions (declared HTTP, GitHub) send with: one client, and the secrets.
#[derive(Debug, Clone)]
pub(crate) struct Outbound {
    pub(crate) client: reqwest::Client,
    secrets: Secrets,
}

impl Default for Outbound {
    /// No secrets: every action that needs one is refused as not configured.
    fn default() -> Self {
        Outbound::new(Secrets::from_map::<&str, &str>([]))
    }
}

impl Outbound {
    pub(crate) fn new(secrets: Secrets) -> Self {
        chatgptd_model::install_crypto_provider();
        // Timeouts are per request (each declaration has its own); redirects are not
        // followed, so a signed body and its token never travel to another host.
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Outbound { client, secrets }
    }

    /// The secret `name`, trimmed, if set.
    pub(crate) fn secret(&self, name: &str) -> Option<String> {
        let value = self.secrets.get(name)?;
        let value = value.trim();
        (!value.is_empty()).then(|| value.to_string())
    }
}

/// The refusal of an action whose secret is not set: what `config check` warned about.
pub(super) fn not_configured(action: &str, env: &str) -> Started {
    Started::Now(Outcome::refused(format!(
        "`{action}` has no executor in this deployment: {env} is not set; nothing was done"
    )))
}

impl AgentWorker {
    /// Sends the request `call` declares for `action` with `arguments`.
    pub(super) async fn execute_http(
        &self,
        cx: &Conversation<'_>,
        id: &ActionId,
        action: &str,
        call: &HttpCall,
        arguments: &Value,
    ) -> Result<Started, ProcessError> {
        let outbound = &self.act.outbound;
        let url = match &call.base_url_env {
            Some(env) => match outbound.secret(env) {
                Some(base) => format!("{}{}", base.trim_end_matches('/'), call.url),
                None => return Ok(not_configured(action, env)),
            },
            None => call.url.clone(),
        };
        let Ok(url) = reqwest::Url::parse(&url) else {
            return Ok(Started::Now(Outcome::refused(format!(
                "`{action}` has no executor in this deployment: its URL does not parse; nothing was done"
            ))));
        };
        let mut headers = HeaderMap::new();
        for header in &call.headers {
            let (value, secret) = match (&header.value, &header.env) {
                (Some(value), _) => (value.clone(), false),
                (None, Some(env)) => match outbound.secret(env) {
                    Some(value) => (value, true),
                    None => return Ok(not_configured(action, env)),
                },
                (None, None) => continue,
            };
            let (Ok(name), Ok(mut value)) = (
                HeaderName::from_bytes(header.name.as_bytes()),
                HeaderValue::from_str(&value),
            ) else {
                return Ok(Started::Now(Outcome::refused(format!(
                    "`{action}`: header `{}` is not a valid header; nothing was done",
                    header.name
                ))));
            };
            value.set_sensitive(secret);
            headers.insert(name, value);
        }
        let method = call.method();
        let context = json!({
            "arguments": arguments,
            "action": {"id": id.as_str()},
            "agent": cx.agent.id,
            "conversation": cx.message.conversation_id,
        });
        let body = match &call.body {
            // The template was checked at load, so this is a bug worth telling the model
            // about rather than a record to dead-letter.
            Some(template) => match render_body(template, &context) {
                Ok(body) => Some(body),
                Err(err) => {
                    return Ok(Started::Now(Outcome::Failed {
                        error: format!("the body template did not render: {err}"),
                    }));
                }
            },
            None if matches!(method.as_str(), "GET" | "DELETE") => None,
            None => Some(arguments.clone()),
        };
        let bytes = body.as_ref().map(Value::to_string).unwrap_or_default();
        if let Some(signature) = &call.signature {
            let Some(key) = outbound.secret(&signature.secret_env) else {
                return Ok(not_configured(action, &signature.secret_env));
            };
            let signed = format!("{}{}", signature.prefix, sign(&key, bytes.as_bytes()));
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(signature.header.as_bytes()),
                HeaderValue::from_str(&signed),
            ) {
                headers.insert(name, value);
            }
        }
        let method =
            reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::POST);
        let mut request = outbound
            .client
            .request(method.clone(), url)
            .timeout(call.timeout)
            .headers(headers)
            .header("idempotency-key", id.as_str());
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json").body(bytes);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                // Down or too slow: waiting is right, and calling again is safe with the key.
                let status = PluginRequest::failure_of(&err);
                PluginRequest {
                    kind: "http",
                    action,
                    status,
                }
                .emit();
                let what = match status {
                    "timeout" => "timed out",
                    "connect" => "could not connect",
                    _ => "failed",
                };
                return Err(ProcessError::unavailable(
                    "action_http_unavailable",
                    format!("`{action}`: the request {what}: {}", err.without_url()),
                ));
            }
        };
        let status = response.status().as_u16();
        PluginRequest {
            kind: "http",
            action,
            status: PluginRequest::status_of(status),
        }
        .emit();
        let wait = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| chatgptd_types::backoff::parse_retry_after(v, SystemTime::now()));
        let text = response.text().await.unwrap_or_default();
        let excerpt = excerpt(&text);
        let message = format!("`{action}`: {method} answered HTTP {status}: {excerpt}");
        let error = match call.statuses.class_of(status) {
            StatusClass::Done => {
                return Ok(Started::Now(Outcome::done(format!(
                    "{method} answered HTTP {status}: {excerpt}"
                ))));
            }
            StatusClass::Fail => {
                return Ok(Started::Now(Outcome::Failed {
                    error: format!("HTTP {status}: {excerpt}"),
                }));
            }
            StatusClass::Wait => ProcessError::unavailable("action_http_wait", message),
            StatusClass::Retry => ProcessError::retryable("action_http_retry", message),
        };
        Err(match wait {
            Some(wait) => error.with_retry_after(wait),
            None => error,
        })
    }
}

/// The hex HMAC-SHA256 of `body` under `key`.
pub(super) fn sign(key: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The start of an answer, on one line.
pub(super) fn excerpt(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= MAX_ANSWER_TEXT {
        return one_line;
    }
    let cut: String = one_line.chars().take(MAX_ANSWER_TEXT).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hex_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn missing_secrets_are_not_configured() {
        let outbound = Outbound::new(Secrets::from_map([("SET", " value ")]));
        assert_eq!(outbound.secret("SET").as_deref(), Some("value"));
        assert_eq!(outbound.secret("UNSET"), None);
    }
}
