//! A [`TicketAction`] record read into what to do. Everything that can be checked without a
//! tracker is checked here, so a malformed action is refused before any call.

use chatgptd_runtime::ProcessError;
use chatgptd_types::records::TicketAction;

use crate::note::Marker;
use crate::source::Source;

/// The longest action id taken: ids are `act-<32 hex>`; a little slack for other schemes.
const MAX_ID_CHARS: usize = 128;

/// What an action asks for.
#[derive(Debug)]
pub(crate) enum Request<'a> {
    Comment {
        ticket: &'a str,
        text: &'a str,
    },
    Create(Create<'a>),
    Update {
        ticket: &'a str,
        changes: Changes<'a>,
    },
}

/// A new ticket.
#[derive(Debug)]
pub(crate) struct Create<'a> {
    /// A Jira project key or a GitHub `owner/repo`; ServiceNow has none.
    pub project: Option<&'a str>,
    pub title: &'a str,
    pub body: Option<&'a str>,
    pub priority: Option<Priority>,
    pub labels: &'a [String],
    pub assignee: Option<&'a str>,
}

/// The fields an update sets; absent ones are left alone.
#[derive(Debug)]
pub(crate) struct Changes<'a> {
    pub priority: Option<Priority>,
    pub status: Option<&'a str>,
    /// Added to the ticket's labels, none removed.
    pub labels: &'a [String],
    pub assignee: Option<&'a str>,
}

/// The priorities an agent may give; each tracker maps them onto its own scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Priority {
    Low,
    Medium,
    High,
    Critical,
}

impl Priority {
    fn parse(text: &str) -> Option<Priority> {
        match text.trim().to_ascii_lowercase().as_str() {
            "low" => Some(Priority::Low),
            "medium" => Some(Priority::Medium),
            "high" => Some(Priority::High),
            "critical" => Some(Priority::Critical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }
}

/// A checked action: its source, what it asks, and what marks its effect on the tracker.
#[derive(Debug)]
pub(crate) struct Action<'a> {
    pub record: &'a TicketAction,
    pub source: Source,
    pub request: Request<'a>,
    pub marker: Marker,
}

impl<'a> Action<'a> {
    /// Reads `record`; a permanent `invalid_action` error says what is wrong with it.
    pub fn parse(record: &'a TicketAction) -> Result<Action<'a>, ProcessError> {
        check_id(&record.id)?;
        let source = Source::parse(&record.source).ok_or_else(|| {
            invalid(format!(
                "source {:?} is not jira, servicenow or github",
                record.source
            ))
        })?;
        let given =
            |field: &'a Option<String>| field.as_deref().map(str::trim).filter(|v| !v.is_empty());
        let ticket = || given(&record.ticket).ok_or_else(|| invalid("it names no ticket".into()));
        let priority = match given(&record.priority) {
            None => None,
            Some(text) => Some(Priority::parse(text).ok_or_else(|| {
                invalid(format!(
                    "priority {text:?} is not low, medium, high or critical"
                ))
            })?),
        };
        let request = match record.kind.as_str() {
            "comment" => Request::Comment {
                ticket: ticket()?,
                text: given(&record.body).ok_or_else(|| invalid("the comment is empty".into()))?,
            },
            "create" => Request::Create(Create {
                project: given(&record.project),
                title: given(&record.title)
                    .ok_or_else(|| invalid("a new ticket needs a title".into()))?,
                body: given(&record.body),
                priority,
                labels: &record.labels,
                assignee: given(&record.assignee),
            }),
            "update" => {
                let changes = Changes {
                    priority,
                    status: given(&record.status),
                    labels: &record.labels,
                    assignee: given(&record.assignee),
                };
                if changes.is_empty() {
                    return Err(invalid(
                        "it changes nothing: give priority, status, labels or assignee".into(),
                    ));
                }
                Request::Update {
                    ticket: ticket()?,
                    changes,
                }
            }
            other => {
                return Err(invalid(format!(
                    "kind {other:?} is not comment, create or update"
                )));
            }
        };
        Ok(Action {
            record,
            source,
            request,
            marker: Marker::action(&record.id),
        })
    }

    /// `jira:OPS-12`, `github:new`: how answers and logs name the target.
    pub fn target_name(&self) -> String {
        let ticket = match &self.request {
            Request::Comment { ticket, .. } | Request::Update { ticket, .. } => ticket,
            Request::Create(create) => create.project.unwrap_or("new"),
        };
        format!("{}:{ticket}", self.source.as_str())
    }

    /// The line that says who wrote what the action posts: people reading the ticket should
    /// know an agent did, and which.
    pub fn signature(&self) -> String {
        format!("Posted by chatgptd for agent {}", self.record.agent)
    }
}

impl Changes<'_> {
    fn is_empty(&self) -> bool {
        self.priority.is_none()
            && self.status.is_none()
            && self.labels.iter().all(|l| l.trim().is_empty())
            && self.assignee.is_none()
    }
}

/// Whether an action id can serve as the once-only key and the marker: an id with spaces,
/// quotes or brackets would be changed by the marker's cleaning, and two ids could then
/// share one marker.
fn check_id(id: &str) -> Result<(), ProcessError> {
    let valid = !id.is_empty()
        && id.chars().count() <= MAX_ID_CHARS
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    if valid {
        Ok(())
    } else {
        Err(invalid(format!(
            "its id {id:?} is not 1 to {MAX_ID_CHARS} of [A-Za-z0-9-_.:]"
        )))
    }
}

fn invalid(why: String) -> ProcessError {
    ProcessError::permanent("invalid_action", format!("the action is invalid: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatgptd_types::records::examples::ticket_action;

    #[test]
    fn a_comment_needs_a_ticket_and_text() {
        let mut record = ticket_action();
        let action = Action::parse(&record).unwrap();
        assert!(matches!(
            action.request,
            Request::Comment {
                ticket: "OPS-12",
                ..
            }
        ));
        assert_eq!(action.target_name(), "jira:OPS-12");
        assert_eq!(
            action.marker.as_str(),
            "chatgptd-action:act-0123456789abcdef0123456789abcdef"
        );
        record.body = Some("  ".into());
        let err = Action::parse(&record).unwrap_err();
        assert_eq!(err.class, "invalid_action");
        assert!(err.message.contains("empty"), "{}", err.message);
        record.body = Some("x".into());
        record.ticket = None;
        assert!(Action::parse(&record).is_err());
    }

    #[test]
    fn kinds_sources_and_priorities_are_checked() {
        let mut record = ticket_action();
        record.kind = "delete".into();
        let err = Action::parse(&record).unwrap_err();
        assert!(err.message.contains("\"delete\""), "{}", err.message);
        record.kind = "update".into();
        record.priority = Some("urgent".into());
        assert!(Action::parse(&record).is_err());
        record.priority = Some("Critical".into());
        let action = Action::parse(&record).unwrap();
        let Request::Update { changes, .. } = action.request else {
            panic!("an update");
        };
        assert_eq!(changes.priority, Some(Priority::Critical));
        record.priority = None;
        record.labels.clear();
        let err = Action::parse(&record).unwrap_err();
        assert!(err.message.contains("changes nothing"), "{}", err.message);
        record.source = "email".into();
        assert!(Action::parse(&record).is_err());
    }

    #[test]
    fn a_create_needs_a_title() {
        let mut record = ticket_action();
        record.kind = "create".into();
        record.ticket = None;
        record.project = Some("OPS".into());
        assert!(Action::parse(&record).is_err());
        record.title = Some("VPN down".into());
        let action = Action::parse(&record).unwrap();
        assert_eq!(action.target_name(), "jira:OPS");
    }

    #[test]
    fn ids_are_safe_for_markers() {
        assert!(check_id("act-0123456789abcdef0123456789abcdef").is_ok());
        for bad in ["", "act 1", "act-\"1\"", "act-[1]", &"a".repeat(129)] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }
}
