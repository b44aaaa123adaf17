//! The trackers tickets come from and go back to.

use std::fmt;

/// A tracker: the `source` of a TicketEvent, a webhook sender, a write-back target. Its
/// name is the same everywhere: records, keys, routes, metric labels and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Jira,
    ServiceNow,
    GitHub,
}

impl Source {
    /// Every source.
    pub const ALL: [Source; 3] = [Source::Jira, Source::ServiceNow, Source::GitHub];

    /// The name in records, keys, routes, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Jira => "jira",
            Source::ServiceNow => "servicenow",
            Source::GitHub => "github",
        }
    }

    /// The source a record's `source` names, if it is one we know (case and surrounding
    /// whitespace ignored).
    pub fn parse(source: &str) -> Option<Source> {
        let source = source.trim();
        Source::ALL
            .into_iter()
            .find(|known| known.as_str().eq_ignore_ascii_case(source))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for source in Source::ALL {
            assert_eq!(Source::parse(source.as_str()), Some(source));
        }
        assert_eq!(Source::parse(" GitHub "), Some(Source::GitHub));
        assert_eq!(Source::parse("gitlab"), None);
    }
}
