//! One plausible value of each record type, every field set: for tests, benches and examples
//! that need a record rather than a particular one.

use super::{EnrichedTicket, Provenance, TicketAction, TicketEvent};

/// A Jira ticket, with non-ASCII text and a timestamp.
pub fn ticket() -> TicketEvent {
    TicketEvent {
        event_id: "e1".into(),
        source: "jira".into(),
        delivery_id: "d1".into(),
        event_type: "jira:issue_created".into(),
        ticket_id: "10001".into(),
        ticket_key: "PROJ-1".into(),
        title: "Login fails".into(),
        description: "Since this morning — ünïcode".into(),
        priority: Some("High".into()),
        status: None,
        labels: vec!["auth".into(), "sso".into()],
        reporter: Some("alice".into()),
        actor: None,
        url: Some("https://example.atlassian.net/browse/PROJ-1".into()),
        received_at_ms: 1_700_000_000_123,
        raw_payload: "{}".into(),
    }
}

/// Where an output came from: the offline model, from `tickets.events`.
pub fn provenance() -> Provenance {
    Provenance {
        provider: "offline".into(),
        model: "offline-1".into(),
        prompt_version: "enrich.v1".into(),
        request_id: Some("req_123".into()),
        prompt_tokens: 120,
        completion_tokens: 80,
        total_tokens: 200,
        finish_reason: "stop".into(),
        cached: false,
        source_topic: "tickets.events".into(),
        source_partition: 2,
        source_offset: 41,
    }
}

/// The enrichment of [`ticket`]: a record with a timestamp and a named record type
/// ([`Provenance`]) referenced from another schema file.
pub fn enriched() -> EnrichedTicket {
    EnrichedTicket {
        event_id: "e1".into(),
        source: "jira".into(),
        ticket_id: "10001".into(),
        ticket_key: "PROJ-1".into(),
        title: "Login fails".into(),
        url: None,
        category: "access".into(),
        suggested_priority: "high".into(),
        sentiment: "negative".into(),
        language: "en".into(),
        summary: "User cannot log in".into(),
        suggested_reply: "We are looking into it".into(),
        labels: vec!["auth".into()],
        confidence: 0.87,
        related_tickets: vec!["PROJ-0".into()],
        provenance: provenance(),
        enriched_at_ms: 1_700_000_000_500,
    }
}

/// An agent's comment on a Jira issue: nullable fields both set and null, a timestamp.
pub fn ticket_action() -> TicketAction {
    TicketAction {
        id: "act-0123456789abcdef0123456789abcdef".into(),
        conversation_id: "conv-1".into(),
        message_id: "m1".into(),
        agent: "atlas-sentinel".into(),
        kind: "comment".into(),
        source: "jira".into(),
        ticket: Some("OPS-12".into()),
        project: None,
        body: Some("Restarted the SSO pods — ünïcode".into()),
        title: None,
        priority: Some("high".into()),
        status: None,
        labels: vec!["vpn".into()],
        assignee: None,
        reply_to: "atlas-sentinel".into(),
        requested_at_ms: 1_700_000_000_900,
    }
}
