//! The `Value`-based GitHub parser this module replaced, kept as the oracle the new one is
//! checked against: same outcome (event, `NotTicket` or error with its detail) for any body.

use axum::http::HeaderMap;
use serde_json::Value;

use super::super::{Envelope, ParseError, Parsed, Ticket, header, id_at, new_event, text_at};
use super::{label_priority, repository_from_url};
use crate::source::{GITHUB_DELIVERY_HEADER, GITHUB_EVENT_HEADER, Source};

/// `parse_body` for GitHub as it was: UTF-8, a `Value` object, then [`parse`].
pub(crate) fn parse_body(
    headers: &HeaderMap,
    body: &[u8],
    received_at_ms: i64,
) -> Result<Parsed, ParseError> {
    let raw = std::str::from_utf8(body)
        .map_err(|_| ParseError::malformed_json("the body is not UTF-8"))?;
    let payload: Value =
        serde_json::from_str(raw).map_err(|err| ParseError::malformed_json(err.to_string()))?;
    if !payload.is_object() {
        return Err(ParseError::not_an_object());
    }
    parse(Envelope {
        headers,
        payload: &payload,
        raw,
        received_at_ms,
    })
}

/// Parses a GitHub webhook: the parser before [`super::parse`], verbatim.
pub fn parse(envelope: Envelope<'_>) -> Result<Parsed, ParseError> {
    let delivery_id = header(envelope.headers, GITHUB_DELIVERY_HEADER)
        .ok_or_else(|| ParseError::missing_header("X-GitHub-Delivery"))?
        .to_string();
    let event_name = header(envelope.headers, GITHUB_EVENT_HEADER)
        .ok_or_else(|| ParseError::missing_header("X-GitHub-Event"))?;
    let payload = envelope.payload;
    let event_type = match text_at(payload, "/action") {
        Some(action) => format!("{event_name}.{action}"),
        None => event_name.to_string(),
    };
    let Some(issue) = payload.get("issue").filter(|issue| issue.is_object()) else {
        if matches!(event_name, "issues" | "issue_comment") {
            return Err(ParseError::missing_field("issue"));
        }
        return Ok(Parsed::NotTicket {
            delivery_id,
            event_type,
        });
    };
    let ticket_id = text_at(issue, "/node_id")
        .or_else(|| id_at(issue, "/id"))
        .ok_or_else(|| ParseError::missing_field("issue.node_id"))?;
    let number =
        id_at(issue, "/number").ok_or_else(|| ParseError::missing_field("issue.number"))?;
    let repository = text_at(payload, "/repository/full_name")
        .or_else(|| repository_from_url(&text_at(issue, "/repository_url")?))
        .ok_or_else(|| ParseError::missing_field("repository.full_name"))?;

    let mut event = new_event(
        Source::GitHub,
        envelope.raw,
        envelope.received_at_ms,
        delivery_id,
        event_type,
        ticket_id,
        format!("{repository}#{number}"),
    );
    event.title = text_at(issue, "/title").unwrap_or_default();
    event.description = issue
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    event.status = text_at(issue, "/state");
    event.labels = issue
        .get("labels")
        .and_then(Value::as_array)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|label| text_at(label, "/name"))
                .collect()
        })
        .unwrap_or_default();
    event.priority = event.labels.iter().find_map(|label| label_priority(label));
    event.reporter = text_at(issue, "/user/login");
    event.actor = text_at(payload, "/sender/login");
    event.url = text_at(issue, "/html_url");
    let actor_ids = event.actor.iter().cloned().collect();
    Ok(Parsed::Ticket(Box::new(Ticket { event, actor_ids })))
}
