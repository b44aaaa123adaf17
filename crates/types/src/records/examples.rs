//! One plausible value of each record type, every field set: for tests, benches and examples
//! that need a record rather than a particular one.

use super::{
    ActionAudit, ApprovalRequest, EnrichedTicket, Escalation, Provenance, TicketAction, TicketEvent,
};

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

/// An agent's grant of access, refused by the policy: every optional field set, a result
/// and a trace context.
pub fn action_audit() -> ActionAudit {
    ActionAudit {
        id: "m7:0:refused".into(),
        conversation_id: "c7".into(),
        action_id: "m7:0".into(),
        agent: "shield-core".into(),
        action: "modify_access".into(),
        arguments: r#"{"system":"okta","principal":"mallory","change":"grant","role":"admin"}"#
            .into(),
        event: "refused".into(),
        decision: Some("refused".into()),
        risk_score: 95,
        reason: "high risk: base score 70; administrative roles: +20".into(),
        actor: Some("policy".into()),
        result: Some("refused: score 95 is at or above refuse_at 95 — ünïcode".into()),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        at_ms: 1_700_000_000_700,
        message_id: "m7".into(),
    }
}

/// A decided approval: denied, with who, why and when (the nullable timestamp set).
pub fn approval_request() -> ApprovalRequest {
    ApprovalRequest {
        id: "appr-m8-1".into(),
        conversation_id: "c8".into(),
        action_id: "m8:1".into(),
        agent: "hotel-optimizer-x".into(),
        action: "spend_budget".into(),
        arguments: r#"{"amount":1500,"currency":"EUR","purpose":"hotel"}"#.into(),
        risk_score: 85,
        reasons: vec![
            "high risk: base score 70".into(),
            "amounts over 1000: +15".into(),
        ],
        message_id: "m8".into(),
        requested_at_ms: 1_700_000_000_800,
        expires_at_ms: 1_700_014_400_800,
        state: "denied".into(),
        decided_by: Some("alice".into()),
        decision_reason: Some("over the trip's budget".into()),
        decided_at_ms: Some(1_700_000_100_000),
    }
}

/// An escalation about a ticket.
pub fn escalation() -> Escalation {
    Escalation {
        id: "esc-m9-0".into(),
        conversation_id: "c9".into(),
        agent: "core-ticket-triage".into(),
        summary: "Customer reports a data leak; needs a person today".into(),
        severity: "critical".into(),
        ticket: Some("jira:10001".into()),
        message_id: "m9".into(),
        at_ms: 1_700_000_000_900,
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
