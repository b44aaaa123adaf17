//! The three senders and what differs between them at the HTTP level.

/// A webhook sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Jira,
    ServiceNow,
    Github,
}

impl Source {
    /// Every source, in route order.
    pub const ALL: [Source; 3] = [Source::Jira, Source::ServiceNow, Source::Github];

    /// The name in TicketEvents, keys, routes, metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Source::Jira => "jira",
            Source::ServiceNow => "servicenow",
            Source::Github => "github",
        }
    }

    /// The route this source posts to.
    pub fn route(self) -> &'static str {
        match self {
            Source::Jira => "/webhooks/jira",
            Source::ServiceNow => "/webhooks/servicenow",
            Source::Github => "/webhooks/github",
        }
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
