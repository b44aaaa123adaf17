//! The answer to an action: remembered under `ticket-action:<id>` once the action is done
//! (or refused for good), and sent as an [`AgentMessage`] to the agent that waits for it.

use chatgptd_runtime::ProcessError;
use chatgptd_types::records::{AgentMessage, TicketAction};
use serde::{Deserialize, Serialize};

/// Who the answers are from.
pub(crate) const FROM: &str = "writeback";

/// The memory key of an action's answer.
pub(crate) fn memory_key(id: &str) -> String {
    format!("ticket-action:{id}")
}

/// An action's result, as stored: sent again, unchanged, when the record comes back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Answer {
    /// `reply` (done) or `refusal` (not done, for good).
    pub kind: String,
    pub body: String,
    /// When the action was settled: the answer's `sent_at_ms`, so a repeat is the same.
    pub at_ms: i64,
}

impl Answer {
    pub fn reply(body: String) -> Answer {
        Answer {
            kind: "reply".into(),
            body,
            at_ms: chatgptd_types::now_ms(),
        }
    }

    /// A refusal: `could not <what the record asked>: <why>`.
    pub fn refusal(record: &TicketAction, why: &str) -> Answer {
        Answer {
            kind: "refusal".into(),
            body: format!("could not {}: {why}", asked(record)),
            at_ms: chatgptd_types::now_ms(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The stored answer. One that cannot be read is a permanent error: answering anything
    /// else could contradict the answer sent, and acting again could act twice.
    pub fn decode(bytes: &[u8], key: &str) -> Result<Answer, ProcessError> {
        serde_json::from_slice(bytes).map_err(|err| {
            ProcessError::permanent(
                "stored_answer_unreadable",
                format!("the answer stored under {key} cannot be read: {err}"),
            )
        })
    }

    /// The message to the agent waiting in `record`'s conversation: it finds it by
    /// `correlation_id`, the action id.
    pub fn message(&self, record: &TicketAction) -> AgentMessage {
        // An action without `reply_to` still answers its agent rather than no one.
        let to = if record.reply_to.trim().is_empty() {
            record.agent.clone()
        } else {
            record.reply_to.clone()
        };
        AgentMessage {
            id: format!("{}:result", record.id),
            conversation_id: record.conversation_id.clone(),
            correlation_id: record.id.clone(),
            from: FROM.to_string(),
            to,
            kind: self.kind.clone(),
            body: self.body.clone(),
            reply_to: None,
            in_reply_to: Some(record.message_id.clone()),
            hop_count: 0,
            token_budget: 0,
            path: Vec::new(),
            sent_at_ms: self.at_ms,
            provenance: None,
        }
    }
}

/// What the record asked, in words, from its raw fields (it may be invalid).
fn asked(record: &TicketAction) -> String {
    let given = |field: &Option<String>| {
        field
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
    };
    let source = &record.source;
    match record.kind.as_str() {
        "create" => {
            let place = given(&record.project).unwrap_or_else(|| "new".into());
            format!("create a ticket in {source}:{place}")
        }
        kind => {
            let ticket = given(&record.ticket).unwrap_or_else(|| "?".into());
            match kind {
                "comment" => format!("comment on {source}:{ticket}"),
                "update" => format!("update {source}:{ticket}"),
                other => format!("{other:?} {source}:{ticket}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatgptd_types::records::examples::ticket_action;

    #[test]
    fn the_answer_names_the_action_and_its_conversation() {
        let record = ticket_action();
        let answer = Answer::reply("commented on jira:OPS-12 (comment 10021)".into());
        let message = answer.message(&record);
        assert_eq!(message.id, format!("{}:result", record.id));
        assert_eq!(message.correlation_id, record.id);
        assert_eq!(message.in_reply_to.as_deref(), Some("m1"));
        assert_eq!(
            (message.from.as_str(), message.to.as_str()),
            ("writeback", "atlas-sentinel")
        );
        assert_eq!(message.sent_at_ms, answer.at_ms);
        let stored = Answer::decode(&answer.encode(), "k").unwrap();
        assert_eq!(stored, answer);
        assert_eq!(
            Answer::decode(b"{", "k").unwrap_err().class,
            "stored_answer_unreadable"
        );
    }

    #[test]
    fn a_refusal_says_what_was_asked() {
        let mut record = ticket_action();
        let refusal = Answer::refusal(&record, "not allowed");
        assert_eq!(refusal.kind, "refusal");
        assert_eq!(
            refusal.body,
            "could not comment on jira:OPS-12: not allowed"
        );
        record.kind = "create".into();
        record.project = Some("OPS".into());
        let refusal = Answer::refusal(&record, "why");
        assert_eq!(refusal.body, "could not create a ticket in jira:OPS: why");
    }
}
