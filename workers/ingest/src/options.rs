//! The gateway's configuration (`[ingest]`): one section per source.

use std::time::Duration;

use chatgptd_types::topics::names;
use serde::{Deserialize, Serialize};

/// The webhook ingest gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestOptions {
    /// The topic TicketEvents are produced to.
    #[serde(default = "default_topic")]
    pub topic: String,

    /// The largest webhook body accepted, in bytes; a larger one gets 413. Jira's biggest
    /// payloads (many custom fields, a long changelog) stay well under the default.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,

    /// How long a webhook waits for the broker to acknowledge its record before the gateway
    /// answers 503 with `Retry-After` (and the sender retries). It is also the gateway
    /// producer's delivery timeout, so a record answered 503 is not delivered later. Keep it
    /// under the senders' own timeouts: GitHub gives up after 10 s.
    #[serde(default = "default_ack_timeout", with = "humantime_serde")]
    pub ack_timeout: Duration,

    /// How long a delivery id is remembered to drop redeliveries. Jira retries for about 30
    /// minutes, but a GitHub redelivery can be clicked days later.
    #[serde(default = "default_dedupe_ttl", with = "humantime_serde")]
    pub dedupe_ttl: Duration,

    /// Jira Cloud webhooks (`POST /webhooks/jira`).
    #[serde(default)]
    pub jira: SourceOptions,

    /// ServiceNow Business Rule webhooks (`POST /webhooks/servicenow`).
    #[serde(default)]
    pub servicenow: ServiceNowOptions,

    /// GitHub webhooks (`POST /webhooks/github`).
    #[serde(default)]
    pub github: SourceOptions,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            topic: default_topic(),
            max_body_bytes: default_max_body_bytes(),
            ack_timeout: default_ack_timeout(),
            dedupe_ttl: default_dedupe_ttl(),
            jira: SourceOptions::default(),
            servicenow: ServiceNowOptions::default(),
            github: SourceOptions::default(),
        }
    }
}

/// What every source is configured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceOptions {
    /// The environment variable holding the webhook signing secret. Empty: signatures are not
    /// checked (a warning is logged at start). Set but missing from the environment: the
    /// gateway does not start, rather than accept unsigned webhooks by accident.
    #[serde(default)]
    pub secret_env: String,

    /// Accounts whose events are ignored (200 `ignored`), so the comments and updates
    /// chatgptd writes back do not come back as new events: Jira `user.accountId` (or the
    /// comment author's), GitHub `sender.login`.
    #[serde(default)]
    pub integration_accounts: Vec<String>,

    /// Sustained webhooks per second accepted from this source (per gateway replica); more get
    /// 429 with `Retry-After`. 0 turns the limit off.
    #[serde(default = "default_requests_per_second")]
    pub requests_per_second: u32,

    /// Webhooks accepted at once above the sustained rate (a bulk edit fires many).
    #[serde(default = "default_burst")]
    pub burst: u32,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            secret_env: String::new(),
            integration_accounts: Vec::new(),
            requests_per_second: default_requests_per_second(),
            burst: default_burst(),
        }
    }
}

/// ServiceNow: the common settings plus where the signature is and where the instance is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNowOptions {
    /// The environment variable holding the HMAC key the Business Rule signs with
    /// (`CertificateEncryption.generateMac(key, "HmacSHA256", body)`). Empty: not checked.
    #[serde(default)]
    pub secret_env: String,

    /// Users whose updates are ignored (`sys_updated_by`): the integration user that
    /// chatgptd's work notes are written as.
    #[serde(default)]
    pub integration_accounts: Vec<String>,

    /// Sustained webhooks per second accepted (per gateway replica); 0 turns the limit off.
    #[serde(default = "default_requests_per_second")]
    pub requests_per_second: u32,

    /// Webhooks accepted at once above the sustained rate.
    #[serde(default = "default_burst")]
    pub burst: u32,

    /// The request header carrying the base64 HMAC-SHA256 of the body; ServiceNow has no
    /// standard one, the Business Rule sets it.
    #[serde(default = "default_signature_header")]
    pub signature_header: String,

    /// The instance's base URL, e.g. `https://acme.service-now.com`, to link each incident.
    /// Empty: events carry no URL.
    #[serde(default)]
    pub instance_url: String,
}

impl Default for ServiceNowOptions {
    fn default() -> Self {
        ServiceNowOptions {
            secret_env: String::new(),
            integration_accounts: Vec::new(),
            requests_per_second: default_requests_per_second(),
            burst: default_burst(),
            signature_header: default_signature_header(),
            instance_url: String::new(),
        }
    }
}

impl ServiceNowOptions {
    /// The settings every source shares.
    pub fn common(&self) -> SourceOptions {
        SourceOptions {
            secret_env: self.secret_env.clone(),
            integration_accounts: self.integration_accounts.clone(),
            requests_per_second: self.requests_per_second,
            burst: self.burst,
        }
    }
}

fn default_topic() -> String {
    names::TICKET_EVENTS.to_string()
}

fn default_max_body_bytes() -> usize {
    1024 * 1024
}

fn default_ack_timeout() -> Duration {
    Duration::from_secs(8)
}

fn default_dedupe_ttl() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

fn default_requests_per_second() -> u32 {
    100
}

fn default_burst() -> u32 {
    200
}

fn default_signature_header() -> String {
    "X-Signature".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_section_is_the_defaults() {
        let options: IngestOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(options, IngestOptions::default());
        assert_eq!(options.topic, names::TICKET_EVENTS);
        assert_eq!(options.servicenow.signature_header, "X-Signature");
    }

    #[test]
    fn a_toml_section_reads_as_documented() {
        let options: IngestOptions = toml::from_str(
            r#"
            ack_timeout = "5s"
            [github]
            secret_env = "GITHUB_WEBHOOK_SECRET"
            integration_accounts = ["chatgptd-bot"]
            requests_per_second = 20
            [servicenow]
            signature_header = "X-ServiceNow-Signature"
            instance_url = "https://acme.service-now.com"
            "#,
        )
        .unwrap();
        assert_eq!(options.ack_timeout, Duration::from_secs(5));
        assert_eq!(options.github.integration_accounts, ["chatgptd-bot"]);
        assert_eq!(options.github.requests_per_second, 20);
        assert_eq!(options.github.burst, default_burst());
        assert_eq!(options.servicenow.common().secret_env, "");
        assert_eq!(options.jira, SourceOptions::default());
    }

    #[test]
    fn durations_are_human_and_unknown_keys_are_refused() {
        let options: IngestOptions =
            serde_json::from_str(r#"{"ack_timeout": "2s", "dedupe_ttl": "1day"}"#).unwrap();
        assert_eq!(options.ack_timeout, Duration::from_secs(2));
        assert_eq!(options.dedupe_ttl, Duration::from_secs(24 * 3600));
        let err = serde_json::from_str::<IngestOptions>(r#"{"github": {"secret": "x"}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("secret"), "{err}");
    }
}
