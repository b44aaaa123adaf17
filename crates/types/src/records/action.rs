//! The records of agents acting: the audit trail of every call, approval requests and their
//! outcomes, and escalations to people.

use serde::{Deserialize, Serialize};

use crate::avro::AvroRecord;

/// One event in the life of an action an agent called (`schemas/action_audit.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionAudit {
    pub id: String,
    pub conversation_id: String,
    pub action_id: String,
    pub agent: String,
    pub action: String,
    pub arguments: String,
    pub event: String,
    pub decision: Option<String>,
    pub risk_score: i32,
    pub reason: String,
    pub actor: Option<String>,
    pub result: Option<String>,
    pub traceparent: Option<String>,
    pub at_ms: i64,
    pub message_id: String,
}

impl AvroRecord for ActionAudit {
    const SCHEMA_NAME: &'static str = "chatgptd.ActionAudit";
}

impl ActionAudit {
    /// The most characters of `result` kept: an action's output can be a whole page, and
    /// the audit trail needs to say what happened, not hold it.
    pub const MAX_RESULT_CHARS: usize = 4000;

    /// `text` clipped to [`ActionAudit::MAX_RESULT_CHARS`], saying so when it was.
    pub fn clip_result(text: &str) -> String {
        match text.char_indices().nth(Self::MAX_RESULT_CHARS) {
            None => text.to_string(),
            Some((end, _)) => format!("{}… [clipped]", &text[..end]),
        }
    }
}

/// What happened to an action, as `ActionAudit.event` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditEvent {
    /// The model called it.
    Proposed,
    /// The policy decided (allowed, needs approval, refused).
    Decided,
    /// A person's approval was asked for.
    ApprovalRequested,
    /// A person approved.
    Approved,
    /// A person denied.
    Denied,
    /// Nobody decided in time.
    Expired,
    /// It ran and took effect.
    Executed,
    /// It ran and failed.
    Failed,
    /// It was not run: the policy, or invalid arguments, refused it.
    Refused,
}

impl AuditEvent {
    /// Every event, in the order an action can go through them.
    pub const ALL: [AuditEvent; 9] = [
        AuditEvent::Proposed,
        AuditEvent::Decided,
        AuditEvent::ApprovalRequested,
        AuditEvent::Approved,
        AuditEvent::Denied,
        AuditEvent::Expired,
        AuditEvent::Executed,
        AuditEvent::Failed,
        AuditEvent::Refused,
    ];

    /// The record's spelling; bounded, so also a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::Proposed => "proposed",
            AuditEvent::Decided => "decided",
            AuditEvent::ApprovalRequested => "approval_requested",
            AuditEvent::Approved => "approved",
            AuditEvent::Denied => "denied",
            AuditEvent::Expired => "expired",
            AuditEvent::Executed => "executed",
            AuditEvent::Failed => "failed",
            AuditEvent::Refused => "refused",
        }
    }

    /// The event a record names; `None` for a spelling this build does not know.
    pub fn parse(value: &str) -> Option<AuditEvent> {
        Self::ALL.into_iter().find(|event| event.as_str() == value)
    }
}

/// A request for a person's approval of an action, or its outcome
/// (`schemas/approval_request.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    pub id: String,
    pub conversation_id: String,
    pub action_id: String,
    pub agent: String,
    pub action: String,
    pub arguments: String,
    pub risk_score: i32,
    pub reasons: Vec<String>,
    pub message_id: String,
    pub requested_at_ms: i64,
    pub expires_at_ms: i64,
    pub state: String,
    pub decided_by: Option<String>,
    pub decision_reason: Option<String>,
    pub decided_at_ms: Option<i64>,
}

impl AvroRecord for ApprovalRequest {
    const SCHEMA_NAME: &'static str = "chatgptd.ApprovalRequest";
}

/// Where an approval stands, as `ApprovalRequest.state` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApprovalState {
    /// Waiting for a person.
    Pending,
    /// Approved: the action runs.
    Approved,
    /// Denied: the model is told why.
    Denied,
    /// Nobody decided in time: escalated, then denied.
    Expired,
}

impl ApprovalState {
    /// Every state.
    pub const ALL: [ApprovalState; 4] = [
        ApprovalState::Pending,
        ApprovalState::Approved,
        ApprovalState::Denied,
        ApprovalState::Expired,
    ];

    /// The record's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Denied => "denied",
            ApprovalState::Expired => "expired",
        }
    }

    /// The state a record names; `None` for a spelling this build does not know.
    pub fn parse(value: &str) -> Option<ApprovalState> {
        Self::ALL.into_iter().find(|state| state.as_str() == value)
    }

    /// Whether the approval is decided; a decided one never changes again.
    pub fn is_final(self) -> bool {
        self != ApprovalState::Pending
    }
}

/// A conversation handed to the on-duty humans (`schemas/escalation.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    pub id: String,
    pub conversation_id: String,
    pub agent: String,
    pub summary: String,
    pub severity: String,
    pub ticket: Option<String>,
    pub message_id: String,
    pub at_ms: i64,
}

impl AvroRecord for Escalation {
    const SCHEMA_NAME: &'static str = "chatgptd.Escalation";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_parse_back() {
        for event in AuditEvent::ALL {
            assert_eq!(AuditEvent::parse(event.as_str()), Some(event));
        }
        for state in ApprovalState::ALL {
            assert_eq!(ApprovalState::parse(state.as_str()), Some(state));
        }
        assert_eq!(AuditEvent::parse("Executed"), None);
        assert!(!ApprovalState::Pending.is_final() && ApprovalState::Expired.is_final());
    }

    #[test]
    fn results_are_clipped_on_a_character_boundary() {
        let short = "é".repeat(ActionAudit::MAX_RESULT_CHARS);
        assert_eq!(ActionAudit::clip_result(&short), short);
        let long = format!("{short}é");
        let clipped = ActionAudit::clip_result(&long);
        assert_eq!(clipped, format!("{short}… [clipped]"));
    }
}
