//! Jira Cloud (and Server) webhooks.
//!
//! - delivery id: `X-Atlassian-Webhook-Identifier` (the same across Jira's retries);
//! - event type: `webhookEvent` (`jira:issue_created`, `comment_created`, ...);
//! - ticket: `issue.id` / `issue.key`; title `fields.summary`; description a string (plain
//!   or wiki markup, kept as is) or an ADF document (flattened); priority, status, labels;
//!   reporter's display name; the actor is `user`, or the comment's author on comment events
//!   (Jira Cloud sends those without `user`);
//! - URL: the site of `issue.self` (up to `/rest/api/`, so a Server context path stays) +
//!   `/browse/KEY`.
//!
//! Events without an `issue` (project, version, user events) are recorded, not produced;
//! issue and comment events without one are malformed.

use serde_json::Value;

use super::{
    Envelope, ParseError, Parsed, Ticket, adf, header, id_at, new_event, strings_at, text_at,
};
use crate::source::{JIRA_DELIVERY_HEADER, Source};

/// Parses a Jira webhook.
pub fn parse(envelope: Envelope<'_>) -> Result<Parsed, ParseError> {
    let delivery_id = header(envelope.headers, JIRA_DELIVERY_HEADER)
        .ok_or_else(|| ParseError::missing_header("X-Atlassian-Webhook-Identifier"))?
        .to_string();
    let payload = envelope.payload;
    let event_type = text_at(payload, "/webhookEvent")
        .ok_or_else(|| ParseError::missing_field("webhookEvent"))?;
    let Some(issue) = payload.get("issue").filter(|issue| issue.is_object()) else {
        if event_type.starts_with("jira:issue_") || event_type.starts_with("comment_") {
            return Err(ParseError::missing_field("issue"));
        }
        return Ok(Parsed::NotTicket {
            delivery_id,
            event_type,
        });
    };
    let ticket_id = id_at(issue, "/id").ok_or_else(|| ParseError::missing_field("issue.id"))?;
    let ticket_key =
        text_at(issue, "/key").ok_or_else(|| ParseError::missing_field("issue.key"))?;

    let mut event = new_event(
        Source::Jira,
        envelope.raw,
        envelope.received_at_ms,
        delivery_id,
        event_type,
        ticket_id,
        ticket_key,
    );
    event.title = text_at(issue, "/fields/summary").unwrap_or_default();
    event.description = description(issue.pointer("/fields/description"));
    event.priority = text_at(issue, "/fields/priority/name");
    event.status = text_at(issue, "/fields/status/name");
    event.labels = strings_at(issue, "/fields/labels");
    event.reporter = issue
        .pointer("/fields/reporter")
        .and_then(|reporter| text_at(reporter, "/displayName").or_else(|| user_id(reporter)));
    let actor = actor(payload);
    event.actor = actor.and_then(user_id);
    event.url = browse_url(issue, &event.ticket_key);
    Ok(Parsed::Ticket(Box::new(Ticket {
        event,
        actor_ids: actor.map(user_ids).unwrap_or_default(),
    })))
}

/// A description as text: a string as is, an ADF document flattened, anything else empty.
fn description(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(document) if adf::is_document(document) => adf::to_text(document),
        _ => String::new(),
    }
}

/// Who caused the event: `user`, else the comment's (update) author.
fn actor(payload: &Value) -> Option<&Value> {
    ["/user", "/comment/updateAuthor", "/comment/author"]
        .into_iter()
        .filter_map(|pointer| payload.pointer(pointer))
        .find(|user| user.is_object())
}

/// A user's stable id: Cloud `accountId`, Server `name` or `key`.
fn user_id(user: &Value) -> Option<String> {
    text_at(user, "/accountId")
        .or_else(|| text_at(user, "/name"))
        .or_else(|| text_at(user, "/key"))
}

/// Every id of a user, for the integration-account filter.
fn user_ids(user: &Value) -> Vec<String> {
    ["/accountId", "/name", "/key"]
        .into_iter()
        .filter_map(|pointer| text_at(user, pointer))
        .collect()
}

/// `https://site/browse/KEY`, from the issue's REST `self` URL.
fn browse_url(issue: &Value, key: &str) -> Option<String> {
    let self_url = text_at(issue, "/self")?;
    let base = match self_url.find("/rest/api/") {
        Some(end) => &self_url[..end],
        None => {
            let host_start = self_url.find("://")? + 3;
            let host_end = self_url[host_start..]
                .find('/')
                .map_or(self_url.len(), |end| host_start + end);
            &self_url[..host_end]
        }
    };
    Some(format!("{base}/browse/{key}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn browse_urls_keep_the_site_and_its_context_path() {
        let url = |self_url: &str| browse_url(&json!({ "self": self_url }), "KT-22");
        assert_eq!(
            url("https://mmtest.atlassian.net/rest/api/2/issue/10509").as_deref(),
            Some("https://mmtest.atlassian.net/browse/KT-22")
        );
        assert_eq!(
            url("https://jira.example.com/jira/rest/api/2/issue/1").as_deref(),
            Some("https://jira.example.com/jira/browse/KT-22")
        );
        assert_eq!(
            url("https://jira.example.com/other").as_deref(),
            Some("https://jira.example.com/browse/KT-22")
        );
        assert_eq!(url("not a url"), None);
    }

    #[test]
    fn descriptions_may_be_strings_adf_or_null() {
        assert_eq!(
            description(Some(&json!("h1. Title\n*bold*"))),
            "h1. Title\n*bold*"
        );
        let document = json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "from ADF"}]}
        ]});
        assert_eq!(description(Some(&document)), "from ADF");
        assert_eq!(description(Some(&json!(null))), "");
        assert_eq!(description(None), "");
    }
}
