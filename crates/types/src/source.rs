//! The trackers tickets come from and go back to.

use std::collections::HashSet;
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

/// The targets of a source that may be acted on (Jira project keys, GitHub `owner/name`
/// repositories), as configured: compared case-insensitively (GitHub repository names are;
/// Jira project keys are upper case), `"*"` for any. Ingest accepts webhooks and write-back
/// writes only for targets listed.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    any: bool,
    names: HashSet<String>,
}

impl AllowList {
    /// The list configured as `listed`; blank entries are ignored.
    pub fn new(listed: &[String]) -> Self {
        AllowList {
            any: listed.iter().any(|name| name.trim() == "*"),
            names: listed
                .iter()
                .map(|name| name.trim().to_lowercase())
                .filter(|name| !name.is_empty() && name != "*")
                .collect(),
        }
    }

    /// Whether `target` is listed; an event or record without one only under `"*"`.
    pub fn allows(&self, target: Option<&str>) -> bool {
        self.any || target.is_some_and(|target| self.names.contains(&target.trim().to_lowercase()))
    }

    /// Whether nothing at all is allowed.
    pub fn allows_nothing(&self) -> bool {
        !self.any && self.names.is_empty()
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

    #[test]
    fn allow_lists_match_without_case_and_a_star_allows_all() {
        let listed = AllowList::new(&["Codertocat/Hello-World".into(), " ".into()]);
        assert!(listed.allows(Some("codertocat/hello-world ")));
        assert!(!listed.allows(Some("octo/other")));
        assert!(!listed.allows(None));
        let any = AllowList::new(&["*".into()]);
        assert!(any.allows(None) && any.allows(Some("anyone/anything")));
        assert!(AllowList::new(&[" ".into()]).allows_nothing());
        assert!(!any.allows_nothing() && !listed.allows_nothing());
    }
}
