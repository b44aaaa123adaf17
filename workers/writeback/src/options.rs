//! The write-back worker's configuration: one struct configures every layer of the outbound
//! HTTP (timeout, rate limit per tracker; retry classification is fixed, see `http.rs`) and
//! what is written where.

use std::time::Duration;

use chatgptd_runtime::ConsumerOptions;
use chatgptd_types::topics::names;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::allow::AllowList;

/// How enriched tickets are written back to the trackers they came from.
///
/// A source that is disabled, or enabled without its credential in the environment, is not
/// an error: its records are acknowledged and skipped (logged, and counted as
/// `chatgptd_writeback_writes_total{outcome="skipped"}`), never dead-lettered, so turning a
/// tracker off does not fill the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WritebackOptions {
    /// The topic of enriched tickets to write back.
    pub topic: String,

    /// How the worker consumes: concurrency, retries and dead letters. A tracker's 429 is
    /// retried up to `consumer.max_attempts` tries, each waiting at least the tracker's
    /// `Retry-After` (capped at `consumer.backoff.max`). One try makes up to four requests
    /// (more when a ticket has hundreds of comments), so keep `consumer.process_timeout`
    /// well above four times `request_timeout`.
    pub consumer: ConsumerOptions,

    /// How long one HTTP request to a tracker may take, from connecting to the last byte.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,

    /// How long a completed write is remembered in the memory backend. Within it, a
    /// redelivered record costs one memory read and no tracker call; after it, the marker in
    /// the posted comment still prevents a second comment (at the cost of a listing).
    #[serde(with = "humantime_serde")]
    pub done_ttl: Duration,

    /// The topic of agents' ticket actions (comment, create, update) to execute, each once;
    /// the answers go to `agents.messages`. Run by the same `writeback` role, with the same
    /// trackers, credentials and allow-lists.
    pub actions_topic: String,

    /// How the ticket actions are consumed: in their own consumer group
    /// (`chatgptd-ticket-actions` unless `group_id` says otherwise), so a backlog of triage
    /// notes never delays an agent waiting on its action. A retryable failure (5xx, timeout)
    /// that lasts `max_attempts` tries is answered as a refusal, so the conversation is not
    /// left waiting.
    pub actions_consumer: ConsumerOptions,

    /// Jira Cloud (REST v3).
    pub jira: JiraOptions,

    /// ServiceNow (Table API).
    pub servicenow: ServiceNowOptions,

    /// GitHub Issues (REST).
    pub github: GitHubOptions,
}

impl Default for WritebackOptions {
    fn default() -> Self {
        WritebackOptions {
            topic: names::TICKETS_ENRICHED.to_string(),
            consumer: ConsumerOptions::default(),
            request_timeout: Duration::from_secs(10),
            done_ttl: default_done_ttl(),
            actions_topic: names::TICKET_ACTIONS.to_string(),
            actions_consumer: ConsumerOptions::default(),
            jira: JiraOptions::default(),
            servicenow: ServiceNowOptions::default(),
            github: GitHubOptions::default(),
        }
    }
}

/// Jira Cloud: a comment (an ADF document) and labels through REST v3, basic auth with an
/// account's email and API token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JiraOptions {
    /// Whether records from Jira are written back.
    pub enabled: bool,

    /// The site, e.g. `https://example.atlassian.net`; requests go to
    /// `{base_url}/rest/api/3/...`.
    pub base_url: String,

    /// The account the API token belongs to (the basic-auth user).
    pub email: String,

    /// The environment variable holding the account's API token. The token is never part
    /// of the configuration and never logged.
    pub api_token_env: String,

    /// Whether the suggested reply is posted as is. When false (the default) it appears in
    /// the comment marked as a draft not sent to the customer, and the comment is flagged
    /// internal for Jira Service Management (`sd.public.comment`), where REST comments are
    /// customer-visible by default. When true the comment opens with the reply and is
    /// public in Service Management projects.
    pub post_replies: bool,

    /// Whether the ticket's labels are added to the issue (spaces become dashes: Jira labels
    /// cannot contain them).
    pub add_labels: bool,

    /// The project keys (`PROJ`) whose issues may be written to, taken from the record's
    /// `ticket_key` (`PROJ-12`); `["*"]` for any. A record about another project is
    /// dead-lettered (`target_not_allowed`) without calling Jira. Required when enabled.
    pub projects: Vec<String>,

    /// The issue type of the issues agents create (`create` actions): a name every listed
    /// project's scheme has (Jira Service Management projects have no `Task` by default).
    pub issue_type: String,

    /// Requests per second to this site, from this replica and worker (the write-back and
    /// the ticket actions each have their own); 0 for no limit. Waiting for it counts
    /// against `consumer.process_timeout`.
    pub requests_per_second: u32,
}

impl Default for JiraOptions {
    fn default() -> Self {
        JiraOptions {
            enabled: false,
            base_url: String::new(),
            email: String::new(),
            api_token_env: default_jira_token_env(),
            post_replies: false,
            add_labels: true,
            projects: Vec::new(),
            issue_type: "Task".to_string(),
            requests_per_second: default_requests_per_second(),
        }
    }
}

/// ServiceNow: `work_notes` (and, when replies are posted, `comments`) on the incident
/// through the Table API, basic auth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceNowOptions {
    /// Whether records from ServiceNow are written back.
    pub enabled: bool,

    /// The instance, e.g. `https://example.service-now.com`; requests go to
    /// `{instance_url}/api/now/table/incident/{sys_id}`. A record's `ticket_id` must be the
    /// incident's `sys_id`.
    pub instance_url: String,

    /// The integration user (the basic-auth user). Business rules should skip it, or the
    /// write-back comes back as a new event.
    pub username: String,

    /// The environment variable holding the user's password, never logged.
    pub password_env: String,

    /// Whether the suggested reply is also written to `comments`, which the caller sees.
    /// When false (the default) the reply is a draft inside the private `work_notes` only.
    pub post_replies: bool,

    /// Requests per second to this instance, from this replica and worker (the write-back
    /// and the ticket actions each have their own); 0 for no limit. Waiting for it counts
    /// against `consumer.process_timeout`.
    pub requests_per_second: u32,
}

impl Default for ServiceNowOptions {
    fn default() -> Self {
        ServiceNowOptions {
            enabled: false,
            instance_url: String::new(),
            username: String::new(),
            password_env: default_servicenow_password_env(),
            post_replies: false,
            requests_per_second: default_requests_per_second(),
        }
    }
}

/// GitHub Issues: an issue comment and labels, with a bearer token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitHubOptions {
    /// Whether records from GitHub are written back.
    pub enabled: bool,

    /// The REST API root: `https://api.github.com`, or `https://HOST/api/v3` for GitHub
    /// Enterprise Server.
    pub api_url: String,

    /// The environment variable holding the token (a fine-grained token or an app
    /// installation token with issues write access), never logged.
    pub token_env: String,

    /// Whether the suggested reply is posted. Issue comments are public, so when false (the
    /// default) the comment holds the triage note only and not the draft reply.
    pub post_replies: bool,

    /// Whether the ticket's labels are added to the issue (GitHub creates missing ones).
    pub add_labels: bool,

    /// The repositories (`owner/name`, case-insensitive) the token may comment on; `["*"]`
    /// for any. A record about another repository (a forged webhook naming it, say) is
    /// dead-lettered (`target_not_allowed`) without calling GitHub. Required when enabled.
    pub repositories: Vec<String>,

    /// Requests per second to the API, from this replica and worker (the write-back and the
    /// ticket actions each have their own); 0 for no limit. GitHub's
    /// secondary limits allow about 80 content-creating requests a minute; beyond them it
    /// answers 403 or 429 with `Retry-After`, which is honoured. Waiting for this limit
    /// counts against `consumer.process_timeout`.
    pub requests_per_second: u32,
}

impl Default for GitHubOptions {
    fn default() -> Self {
        GitHubOptions {
            enabled: false,
            api_url: default_github_api_url(),
            token_env: default_github_token_env(),
            post_replies: false,
            add_labels: true,
            repositories: Vec::new(),
            requests_per_second: default_requests_per_second(),
        }
    }
}

fn default_done_ttl() -> Duration {
    Duration::from_secs(90 * 24 * 3600)
}

fn default_requests_per_second() -> u32 {
    10
}

fn default_jira_token_env() -> String {
    "JIRA_API_TOKEN".to_string()
}

fn default_servicenow_password_env() -> String {
    "SERVICENOW_PASSWORD".to_string()
}

fn default_github_token_env() -> String {
    "GITHUB_TOKEN".to_string()
}

fn default_github_api_url() -> String {
    "https://api.github.com".to_string()
}

impl WritebackOptions {
    /// Rejects settings that cannot work, naming the field. Disabled sources are not checked.
    pub fn validate(&self) -> Result<(), Error> {
        let config = |message: String| Err(Error::Config(message));
        if self.topic.trim().is_empty() {
            return config("topic must name a topic".into());
        }
        if self.actions_topic.trim().is_empty() {
            return config("actions_topic must name a topic".into());
        }
        if self.request_timeout.is_zero() {
            return config("request_timeout must be longer than 0s".into());
        }
        if self.done_ttl.is_zero() {
            return config("done_ttl must be longer than 0s".into());
        }
        if self.jira.enabled {
            check_url("jira.base_url", &self.jira.base_url)?;
            if self.jira.email.trim().is_empty() {
                return config("jira.email must name the API token's account".into());
            }
            if self.jira.issue_type.trim().is_empty() {
                return config("jira.issue_type must name an issue type (e.g. Task)".into());
            }
            if AllowList::is_empty(&self.jira.projects) {
                return config(
                    "jira.projects is empty: list the project keys write-backs may go to, \
                     or [\"*\"] for any"
                        .into(),
                );
            }
        }
        if self.servicenow.enabled {
            check_url("servicenow.instance_url", &self.servicenow.instance_url)?;
            if self.servicenow.username.trim().is_empty() {
                return config("servicenow.username must name the integration user".into());
            }
        }
        if self.github.enabled {
            check_url("github.api_url", &self.github.api_url)?;
            if AllowList::is_empty(&self.github.repositories) {
                return config(
                    "github.repositories is empty: list the repositories (owner/name) the \
                     token may comment on, or [\"*\"] for any"
                        .into(),
                );
            }
        }
        Ok(())
    }
}

fn check_url(field: &str, value: &str) -> Result<(), Error> {
    let url = reqwest::Url::parse(value)
        .map_err(|err| Error::Config(format!("{field} {value:?}: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(Error::Config(format!(
            "{field} {value:?} must be an http(s) URL"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_read_nothing_and_write_nothing() {
        let options = WritebackOptions::default();
        options.validate().unwrap();
        assert_eq!(options.topic, "tickets.enriched");
        assert_eq!(options.actions_topic, "tickets.actions");
        assert!(!options.jira.enabled && !options.servicenow.enabled && !options.github.enabled);
        assert!(!options.jira.post_replies && !options.github.post_replies);
        assert_eq!(options.github.token_env, "GITHUB_TOKEN");
    }

    #[test]
    fn an_enabled_source_needs_its_address() {
        let mut options = WritebackOptions::default();
        options.jira.enabled = true;
        let err = options.validate().unwrap_err().to_string();
        assert!(err.contains("jira.base_url"), "{err}");
        options.jira.base_url = "https://example.atlassian.net".into();
        let err = options.validate().unwrap_err().to_string();
        assert!(err.contains("jira.email"), "{err}");
        options.jira.email = "bot@example.com".into();
        let err = options.validate().unwrap_err().to_string();
        assert!(err.contains("jira.projects"), "{err}");
        options.jira.projects = vec!["*".into()];
        options.validate().unwrap();
        options.github.enabled = true;
        let err = options.validate().unwrap_err().to_string();
        assert!(err.contains("github.repositories"), "{err}");
    }

    #[test]
    fn unknown_fields_are_refused_and_durations_read_as_text() {
        let parsed: WritebackOptions = serde_json::from_value(serde_json::json!({
            "request_timeout": "3s",
            "github": {"enabled": true, "post_replies": true}
        }))
        .unwrap();
        assert_eq!(parsed.request_timeout, Duration::from_secs(3));
        assert!(parsed.github.post_replies);
        assert_eq!(parsed.github.api_url, "https://api.github.com");
        let unknown = serde_json::from_value::<WritebackOptions>(serde_json::json!({
            "jira": {"token": "x"}
        }));
        assert!(unknown.is_err());
    }
}
