//! The three senders and what differs between them at the HTTP level.

pub use chatgptd_types::Source;

/// The route a source posts its webhooks to.
pub fn route(source: Source) -> &'static str {
    match source {
        Source::Jira => "/webhooks/jira",
        Source::ServiceNow => "/webhooks/servicenow",
        Source::GitHub => "/webhooks/github",
    }
}

/// Jira's idempotency key: the same across its retries.
pub const JIRA_DELIVERY_HEADER: &str = "x-atlassian-webhook-identifier";
/// Jira's signature header (admin webhooks with a secret): `sha256=<hex>`.
pub const JIRA_SIGNATURE_HEADER: &str = "x-hub-signature";
/// GitHub's idempotency key: the same on a redelivery.
pub const GITHUB_DELIVERY_HEADER: &str = "x-github-delivery";
/// GitHub's event name (`issues`, `issue_comment`, `ping`, ...).
pub const GITHUB_EVENT_HEADER: &str = "x-github-event";
/// GitHub's signature header: `sha256=<hex>`.
pub const GITHUB_SIGNATURE_HEADER: &str = "x-hub-signature-256";
