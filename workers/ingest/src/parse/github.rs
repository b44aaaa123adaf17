//! GitHub webhooks.
//!
//! - delivery id: `X-GitHub-Delivery` (the same on a redelivery);
//! - event type: `X-GitHub-Event` + `.` + `action` (`issues.opened`, `issue_comment.created`);
//! - ticket: the issue's `node_id` (its numeric `id` if absent) / `owner/repo#number`; title,
//!   body, state, label names, a priority from a `priority:<x>` (or `priority/<x>`,
//!   `priority-<x>`) label; the issue's author as reporter, `sender.login` as actor;
//!   `html_url`.
//!
//! Only payloads with an `issue` (events `issues` and `issue_comment`, the latter for pull
//! requests too) are tickets. Other events (`ping` when a hook is created, `push`,
//! `pull_request`, ...) are answered 200 and recorded in logs and metrics, nothing produced:
//! a hook subscribed to more events than it needs must not fail its deliveries.

#[cfg(test)]
mod agreement;
#[cfg(test)]
mod oracle;
mod payload;
#[cfg(test)]
mod speed;

use axum::http::HeaderMap;

use super::lenient::Object;
use super::{ParseError, Parsed, Ticket, header, id_of, new_event};
use crate::source::{GITHUB_DELIVERY_HEADER, GITHUB_EVENT_HEADER, Source};

/// Parses a GitHub webhook body, known to be UTF-8.
pub fn parse(headers: &HeaderMap, raw: &str, received_at_ms: i64) -> Result<Parsed, ParseError> {
    // The body first: malformed JSON is a `malformed_json` even without the headers.
    let payload = payload::read(raw)?;
    let delivery_id = header(headers, GITHUB_DELIVERY_HEADER)
        .ok_or_else(|| ParseError::missing_header("X-GitHub-Delivery"))?
        .to_string();
    let event_name = header(headers, GITHUB_EVENT_HEADER)
        .ok_or_else(|| ParseError::missing_header("X-GitHub-Event"))?;
    let event_type = match payload.action.trimmed() {
        Some(action) => format!("{event_name}.{action}"),
        None => event_name.to_string(),
    };
    let Object(Some(issue)) = payload.issue else {
        if matches!(event_name, "issues" | "issue_comment") {
            return Err(ParseError::missing_field("issue"));
        }
        return Ok(Parsed::NotTicket {
            delivery_id,
            event_type,
        });
    };
    let ticket_id = issue
        .node_id
        .trimmed()
        .or_else(|| id_of(&issue.id))
        .ok_or_else(|| ParseError::missing_field("issue.node_id"))?;
    let number = id_of(&issue.number).ok_or_else(|| ParseError::missing_field("issue.number"))?;
    let repository = (payload.repository.0)
        .and_then(|repository| repository.full_name.trimmed())
        .or_else(|| repository_from_url(&issue.repository_url.trimmed()?))
        .ok_or_else(|| ParseError::missing_field("repository.full_name"))?;

    let mut event = new_event(
        Source::GitHub,
        raw,
        received_at_ms,
        delivery_id,
        event_type,
        ticket_id,
        format!("{repository}#{number}"),
    );
    event.title = issue.title.trimmed().unwrap_or_default();
    event.description = issue.body.as_str().unwrap_or_default().to_string();
    event.status = issue.state.trimmed();
    event.labels = (issue.labels.0.into_iter().flatten())
        .filter_map(|label| label.0?.name.trimmed())
        .collect();
    event.priority = event.labels.iter().find_map(|label| label_priority(label));
    event.reporter = issue.user.0.and_then(|user| user.login.trimmed());
    event.actor = payload.sender.0.and_then(|sender| sender.login.trimmed());
    event.url = issue.html_url.trimmed();
    let actor_ids = event.actor.iter().cloned().collect();
    Ok(Parsed::Ticket(Box::new(Ticket { event, actor_ids })))
}

/// `owner/repo` from the issue's `repository_url`, for payloads without `repository`.
fn repository_from_url(url: &str) -> Option<String> {
    let (_, path) = url.split_once("/repos/")?;
    let mut parts = path.trim_end_matches('/').splitn(3, '/');
    let (owner, repo) = (parts.next()?, parts.next()?);
    (!owner.is_empty() && !repo.is_empty() && parts.next().is_none())
        .then(|| format!("{owner}/{repo}"))
}

/// The priority a label names: `priority:high`, `priority/high`, `Priority - High`.
fn label_priority(label: &str) -> Option<String> {
    let lower = label.to_ascii_lowercase();
    let rest = lower.strip_prefix("priority")?;
    let value = rest
        .trim_start()
        .strip_prefix([':', '/', '-', '='])?
        .trim_start();
    // `value` is a suffix of the lowercased label, which has the same byte layout as the
    // label (ASCII lowercasing): slice the original to keep its case.
    let original = label[label.len() - value.len()..].trim_end();
    (!original.is_empty()).then(|| original.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_come_from_labels() {
        assert_eq!(label_priority("priority:high").as_deref(), Some("high"));
        assert_eq!(label_priority("Priority: High").as_deref(), Some("High"));
        assert_eq!(label_priority("priority/P1").as_deref(), Some("P1"));
        assert_eq!(label_priority("priority - low ").as_deref(), Some("low"));
        assert_eq!(label_priority("priority"), None);
        assert_eq!(label_priority("priority:"), None);
        assert_eq!(label_priority("bug"), None);
        assert_eq!(label_priority("prioritized"), None);
    }

    #[test]
    fn the_repository_can_come_from_the_issue() {
        assert_eq!(
            repository_from_url("https://api.github.com/repos/Codertocat/Hello-World").as_deref(),
            Some("Codertocat/Hello-World")
        );
        assert_eq!(
            repository_from_url("https://api.github.com/repos/only-owner"),
            None
        );
    }
}
