//! Webhooks as their senders post them: the real public payloads, the delivery headers, and
//! the signature each sender computes. The HMACs are computed here, independently of the
//! gateway's own code, so a test of the gateway does not check it against itself.

use chatgptd_types::Source;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The secret the tests sign with (GitHub's documented test-vector secret).
pub const SECRET: &str = "It's a Secret to Everybody";

/// A fixture's exact bytes: from `../shared/fixtures/webhooks`, else from the identical copy
/// the ingest crate keeps in the repository.
pub fn fixture(path: &str) -> Vec<u8> {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let candidates = [
        root.join("../shared/fixtures/webhooks").join(path),
        root.join("workers/ingest/tests/fixtures").join(path),
    ];
    candidates
        .iter()
        .find_map(|candidate| std::fs::read(candidate).ok())
        .unwrap_or_else(|| panic!("fixture {path} not found in {candidates:?}"))
}

/// The signature `source` sends for `body` under `secret`: `sha256=<hex>` from Jira and
/// GitHub, plain base64 from a ServiceNow Business Rule (`CertificateEncryption.generateMac`).
pub fn signature(source: Source, secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    match source {
        Source::ServiceNow => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(tag)
        }
        Source::Jira | Source::GitHub => format!("sha256={}", hex::encode(tag)),
    }
}

/// The header `source`'s signature goes in (ServiceNow's is the gateway's default).
pub fn signature_header(source: Source) -> &'static str {
    match source {
        Source::Jira => "X-Hub-Signature",
        Source::ServiceNow => "X-Signature",
        Source::GitHub => "X-Hub-Signature-256",
    }
}

/// A webhook to send: a body and the headers its sender would set.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub source: Source,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Webhook {
    /// A Jira webhook with its delivery id, signed with [`SECRET`].
    pub fn jira(body: Vec<u8>, delivery_id: &str) -> Webhook {
        Webhook::unsigned(Source::Jira, body)
            .with_header("X-Atlassian-Webhook-Identifier", Some(delivery_id))
            .signed_with(SECRET)
    }

    /// A GitHub webhook of `event` with its delivery id, signed with [`SECRET`].
    pub fn github(body: Vec<u8>, event: &str, delivery_id: &str) -> Webhook {
        Webhook::unsigned(Source::GitHub, body)
            .with_header("X-GitHub-Event", Some(event))
            .with_header("X-GitHub-Delivery", Some(delivery_id))
            .signed_with(SECRET)
    }

    /// A ServiceNow Business Rule webhook, signed with [`SECRET`]. Its delivery id comes from
    /// the body (`sys_id:sys_updated_on`).
    pub fn servicenow(body: Vec<u8>) -> Webhook {
        Webhook::unsigned(Source::ServiceNow, body).signed_with(SECRET)
    }

    /// `body` from `source` with no header at all.
    pub fn unsigned(source: Source, body: Vec<u8>) -> Webhook {
        Webhook {
            source,
            body,
            headers: Vec::new(),
        }
    }

    /// The same webhook signed with `secret` (the signature header replaced).
    pub fn signed_with(self, secret: &str) -> Webhook {
        let (signature, header) = (
            signature(self.source, secret, &self.body),
            signature_header(self.source),
        );
        self.with_header(header, Some(&signature))
    }

    /// The same webhook with a header replaced (or removed when `value` is `None`).
    pub fn with_header(mut self, name: &str, value: Option<&str>) -> Webhook {
        self.headers
            .retain(|(existing, _)| !existing.eq_ignore_ascii_case(name));
        if let Some(value) = value {
            self.headers.push((name.to_string(), value.to_string()));
        }
        self
    }

    /// Posts it to `url` as JSON.
    pub async fn post(&self, client: &reqwest::Client, url: &str) -> reqwest::Response {
        let mut request = client.post(url).header("content-type", "application/json");
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request.body(self.body.clone()).send().await;
        response.unwrap_or_else(|err| panic!("posting the webhook to {url}: {err}"))
    }
}
