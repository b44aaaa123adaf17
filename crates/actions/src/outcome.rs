//! What came of an action.

use chatgptd_types::records::ActionAudit;
use serde::{Deserialize, Serialize};

/// How an action ended. Recorded once in the [`Ledger`](crate::Ledger); what the model is
/// told is [`Outcome::tool_result`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// It ran; `result` is what it returned.
    Done { result: String },
    /// The policy refused it, or nothing can execute it here.
    Refused { reason: String },
    /// Its arguments do not match the action's schema.
    Invalid { detail: String },
    /// It ran and failed for good.
    Failed { error: String },
    /// A person denied it.
    Denied { by: String, reason: String },
    /// Nobody decided before the approval expired: escalated, then denied.
    Expired { expires_at_ms: i64 },
}

impl Outcome {
    /// A `Done` outcome, its result cut to the audit's bound.
    pub fn done(result: impl Into<String>) -> Self {
        Outcome::Done {
            result: bounded(result.into()),
        }
    }

    /// A `Refused` outcome.
    pub fn refused(reason: impl Into<String>) -> Self {
        Outcome::Refused {
            reason: reason.into(),
        }
    }

    /// What the model reads as the call's result.
    pub fn tool_result(&self) -> String {
        match self {
            Outcome::Done { result } => result.clone(),
            Outcome::Refused { reason } => format!("refused: {reason}"),
            Outcome::Invalid { detail } => {
                format!("invalid arguments: {detail}. Call again with arguments that match the schema.")
            }
            Outcome::Failed { error } => format!("failed: {error}"),
            Outcome::Denied { by, reason } => format!("denied by {by}: {reason}"),
            Outcome::Expired { .. } => {
                "denied: the approval request expired without a decision; it was escalated to a person".to_string()
            }
        }
    }

    /// The audit event that records this outcome.
    pub fn event(&self) -> &'static str {
        match self {
            Outcome::Done { .. } => "executed",
            Outcome::Refused { .. } | Outcome::Invalid { .. } => "refused",
            Outcome::Failed { .. } => "failed",
            Outcome::Denied { .. } => "denied",
            Outcome::Expired { .. } => "expired",
        }
    }

    /// Whether the action took effect.
    pub fn executed(&self) -> bool {
        matches!(self, Outcome::Done { .. })
    }
}

/// `text` cut to the audit's bound ([`ActionAudit::MAX_RESULT_CHARS`]): what the ledger, the
/// audit and the model's tool message keep of a result.
pub fn bounded(text: String) -> String {
    ActionAudit::clip_result(&text)
}
