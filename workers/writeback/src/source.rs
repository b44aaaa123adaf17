//! The trackers a ticket can come from.

/// A tracker the worker writes to. Its name is the record's `source` and a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Jira,
    ServiceNow,
    GitHub,
}

impl Source {
    /// The record's `source` value for this tracker.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Jira => "jira",
            Source::ServiceNow => "servicenow",
            Source::GitHub => "github",
        }
    }

    /// The tracker a record's `source` names, if it is one we write to.
    pub fn parse(source: &str) -> Option<Source> {
        match source.trim().to_ascii_lowercase().as_str() {
            "jira" => Some(Source::Jira),
            "servicenow" => Some(Source::ServiceNow),
            "github" => Some(Source::GitHub),
            _ => None,
        }
    }
}
