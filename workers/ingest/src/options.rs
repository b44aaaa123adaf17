//! The gateway's configuration (`[ingest]`): one section per source.

use std::time::Duration;

use chatgptd_types::topics::names;
use serde::{Deserialize, Serialize};

use crate::source::Source;

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
    pub jira: JiraOptions,

    /// ServiceNow Business Rule webhooks (`POST /webhooks/servicenow`).
    #[serde(default)]
    pub servicenow: ServiceNowOptions,

    /// GitHub webhooks (`POST /webhooks/github`).
    #[serde(default)]
    pub github: GitHubOptions,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            topic: default_topic(),
            max_body_bytes: default_max_body_bytes(),
            ack_timeout: default_ack_timeout(),
            dedupe_ttl: default_dedupe_ttl(),
            jira: JiraOptions::default(),
            servicenow: ServiceNowOptions::default(),
            github: GitHubOptions::default(),
        }
    }
}

impl IngestOptions {
    /// The settings of `source` that every source has.
    pub fn source(&self, source: Source) -> SourceOptions {
        match source {
            Source::Jira => self.jira.common(),
            Source::ServiceNow => self.servicenow.common(),
            Source::GitHub => self.github.common(),
        }
    }
}

/// What every source is configured with, whatever its section calls its targets.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceOptions {
    /// See `secret_env` of each source.
    pub secret_env: String,
    /// See `allow_unsigned` of each source.
    pub allow_unsigned: bool,
    /// See `integration_accounts` of each source.
    pub integration_accounts: Vec<String>,
    /// See `requests_per_second` of each source.
    pub requests_per_second: u32,
    /// See `burst` of each source.
    pub burst: u32,
    /// The targets (Jira `projects`, GitHub `repositories`) webhooks may be about; `None`
    /// for a source whose events carry no target to check (ServiceNow).
    pub targets: Option<Vec<String>>,
}

/// Jira Cloud webhooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraOptions {
    /// The environment variable holding the webhook secret Jira signs with
    /// (`X-Hub-Signature: sha256=<hex>`). Empty: webhooks are refused with 401, unless
    /// `allow_unsigned` is true. Set but missing from the environment: the gateway does not
    /// start, rather than accept unsigned webhooks by accident.
    #[serde(default)]
    pub secret_env: String,

    /// Accept webhooks without a signature when `secret_env` is empty. Anyone who can reach
    /// the gateway can then post events: for a trusted network or a demo only; a warning is
    /// logged at every start. Ignored when a secret is configured.
    #[serde(default)]
    pub allow_unsigned: bool,

    /// Accounts whose events are ignored (200 `ignored`), so the comments and updates
    /// chatgptd writes back do not come back as new events: `user.accountId` (or the
    /// comment author's).
    #[serde(default)]
    pub integration_accounts: Vec<String>,

    /// The project keys (`PROJ`) whose issues are accepted; a webhook about another project
    /// gets 403. Empty (the default) accepts none: list your projects, or `["*"]` for any.
    #[serde(default)]
    pub projects: Vec<String>,

    /// Sustained webhooks per second accepted (per gateway replica), counted after the
    /// signature check; more get 429 with `Retry-After`. 0 turns the limit off.
    #[serde(default = "default_requests_per_second")]
    pub requests_per_second: u32,

    /// Webhooks accepted at once above the sustained rate (a bulk edit fires many).
    #[serde(default = "default_burst")]
    pub burst: u32,
}

impl Default for JiraOptions {
    fn default() -> Self {
        JiraOptions {
            secret_env: String::new(),
            allow_unsigned: false,
            integration_accounts: Vec::new(),
            projects: Vec::new(),
            requests_per_second: default_requests_per_second(),
            burst: default_burst(),
        }
    }
}

impl JiraOptions {
    /// The settings every source shares.
    pub fn common(&self) -> SourceOptions {
        SourceOptions {
            secret_env: self.secret_env.clone(),
            allow_unsigned: self.allow_unsigned,
            integration_accounts: self.integration_accounts.clone(),
            requests_per_second: self.requests_per_second,
            burst: self.burst,
            targets: Some(self.projects.clone()),
        }
    }
}

/// GitHub webhooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitHubOptions {
    /// The environment variable holding the webhook secret (`X-Hub-Signature-256`). Empty:
    /// webhooks are refused with 401, unless `allow_unsigned` is true. Set but missing from
    /// the environment: the gateway does not start.
    #[serde(default)]
    pub secret_env: String,

    /// Accept webhooks without a signature when `secret_env` is empty (a warning at every
    /// start). GitHub always signs when the hook has a secret: prefer giving it one.
    #[serde(default)]
    pub allow_unsigned: bool,

    /// Accounts whose events are ignored (200 `ignored`): `sender.login` of chatgptd's bot.
    #[serde(default)]
    pub integration_accounts: Vec<String>,

    /// The repositories (`owner/name`, case-insensitive) whose issues are accepted; a
    /// webhook about another repository gets 403. Empty (the default) accepts none: list
    /// your repositories, or `["*"]` for any.
    #[serde(default)]
    pub repositories: Vec<String>,

    /// Sustained webhooks per second accepted (per gateway replica), counted after the
    /// signature check; more get 429 with `Retry-After`. 0 turns the limit off.
    #[serde(default = "default_requests_per_second")]
    pub requests_per_second: u32,

    /// Webhooks accepted at once above the sustained rate.
    #[serde(default = "default_burst")]
    pub burst: u32,
}

impl Default for GitHubOptions {
    fn default() -> Self {
        GitHubOptions {
            secret_env: String::new(),
            allow_unsigned: false,
            integration_accounts: Vec::new(),
            repositories: Vec::new(),
            requests_per_second: default_requests_per_second(),
            burst: default_burst(),
        }
    }
}

impl GitHubOptions {
    /// The settings every source shares.
    pub fn common(&self) -> SourceOptions {
        SourceOptions {
            secret_env: self.secret_env.clone(),
            allow_unsigned: self.allow_unsigned,
            integration_accounts: self.integration_accounts.clone(),
            requests_per_second: self.requests_per_second,
            burst: self.burst,
            targets: Some(self.repositories.clone()),
        }
    }
}

/// ServiceNow: the common settings plus where the signature is and where the instance is.
///
/// There is no list of targets: a Business Rule's payload names no instance, and the key it
/// signs with belongs to one instance, so the signature already says where an event is from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNowOptions {
    /// The environment variable holding the HMAC key the Business Rule signs with
    /// (`CertificateEncryption.generateMac(key, "HmacSHA256", body)`). Empty: webhooks are
    /// refused with 401, unless `allow_unsigned` is true.
    #[serde(default)]
    pub secret_env: String,

    /// Accept webhooks without a signature when `secret_env` is empty (a warning at every
    /// start).
    #[serde(default)]
    pub allow_unsigned: bool,

    /// Users whose updates are ignored (`sys_updated_by`): the integration user that
    /// chatgptd's work notes are written as.
    #[serde(default)]
    pub integration_accounts: Vec<String>,

    /// Sustained webhooks per second accepted (per gateway replica), counted after the
    /// signature check; 0 turns the limit off.
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
            allow_unsigned: false,
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
            allow_unsigned: self.allow_unsigned,
            integration_accounts: self.integration_accounts.clone(),
            requests_per_second: self.requests_per_second,
            burst: self.burst,
            targets: None,
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
            repositories = ["acme/app"]
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
        assert_eq!(
            options.source(Source::GitHub).targets,
            Some(vec!["acme/app".to_string()])
        );
        assert_eq!(options.servicenow.common().secret_env, "");
        assert_eq!(options.source(Source::ServiceNow).targets, None);
        assert_eq!(options.jira, JiraOptions::default());
    }

    #[test]
    fn signatures_are_required_and_targets_refused_unless_configured() {
        let defaults = IngestOptions::default();
        for source in Source::ALL {
            let common = defaults.source(source);
            assert!(!common.allow_unsigned, "{source:?}");
            assert!(common.secret_env.is_empty(), "{source:?}");
            assert!(common.targets.is_none_or(|targets| targets.is_empty()));
        }
        let options: IngestOptions = toml::from_str(
            r#"
            [jira]
            allow_unsigned = true
            projects = ["*"]
            "#,
        )
        .unwrap();
        assert!(options.source(Source::Jira).allow_unsigned);
        assert_eq!(options.jira.projects, ["*"]);
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
