//! Where the write-back may write: the Jira projects and GitHub repositories its options
//! list. A record about anything else is a forged or misrouted event (the ingest gateway
//! checks its own list, but a record can come from anywhere that can produce to the topic),
//! and the bot's credential must not be used on it: a permanent `target_not_allowed` error,
//! so the record is dead-lettered at once, visibly, rather than retried or skipped in silence.

use chatgptd_runtime::ProcessError;
use chatgptd_types::source::AllowList as Targets;

use crate::source::Source;

/// The targets a tracker may be written to (see [`Targets`]), named by its setting for the
/// error message.
#[derive(Debug, Clone)]
pub(crate) struct AllowList {
    targets: Targets,
    /// The setting, for the error message: `writeback.github.repositories`.
    setting: &'static str,
}

impl AllowList {
    pub(crate) fn new(setting: &'static str, listed: &[String]) -> Self {
        AllowList {
            targets: Targets::new(listed),
            setting,
        }
    }

    /// Whether the list allows nothing at all (a configuration that cannot work).
    pub(crate) fn is_empty(listed: &[String]) -> bool {
        Targets::new(listed).allows_nothing()
    }

    /// Ok if `target` is listed; else the permanent error. A record whose target is unknown
    /// (`None`) passes only under `"*"`.
    pub(crate) fn check(&self, source: Source, target: Option<&str>) -> Result<(), ProcessError> {
        if self.targets.allows(target) {
            return Ok(());
        }
        let what = match target {
            Some(target) => format!("{target:?} is not in {}", self.setting),
            None => format!(
                "the record names no target and {} is not [\"*\"]",
                self.setting
            ),
        };
        Err(ProcessError::permanent(
            "target_not_allowed",
            format!("{}: {what}; nothing was written", source.as_str()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(names: &[&str]) -> AllowList {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        AllowList::new("writeback.github.repositories", &names)
    }

    #[test]
    fn only_listed_targets_pass_and_a_star_passes_all() {
        let listed = list(&["Codertocat/Hello-World"]);
        assert!(
            listed
                .check(Source::GitHub, Some("codertocat/hello-world"))
                .is_ok()
        );
        let err = listed
            .check(Source::GitHub, Some("victim/repo"))
            .unwrap_err();
        assert_eq!(err.class, "target_not_allowed");
        assert!(
            err.message.contains("writeback.github.repositories"),
            "{}",
            err.message
        );
        assert!(listed.check(Source::GitHub, None).is_err());
        assert!(list(&["*"]).check(Source::GitHub, None).is_ok());
        assert!(AllowList::is_empty(&[]) && AllowList::is_empty(&[" ".into()]));
        assert!(!AllowList::is_empty(&["*".into()]));
    }
}
