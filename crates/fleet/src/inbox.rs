//! Inboxes: where answers to the API and the CLI wait. A request that wants its answer sets
//! `reply_to` to `inbox:<its id>`; the worker appends each answer (several, for a fleet
//! broadcast) to that inbox in the memory backend, where the caller polls for it.

use std::sync::Arc;
use std::time::Duration;

use chatgptd_memory::{HistoryEntry, HistoryLimits, Memory};
use chatgptd_types::records::AgentMessage;

/// The most answers one inbox keeps (a broadcast to a large fleet).
const INBOX_CAP: usize = 100;

/// The `reply_to` address of the inbox for a message id.
pub fn inbox_address(message_id: &str) -> String {
    format!("inbox:{message_id}")
}

/// The inboxes in the memory backend.
#[derive(Debug, Clone)]
pub struct Inbox {
    memory: Arc<dyn Memory>,
    ttl: Duration,
}

impl Inbox {
    /// Inboxes in `memory`, kept for `ttl`.
    pub fn new(memory: Arc<dyn Memory>, ttl: Duration) -> Self {
        Inbox { memory, ttl }
    }

    /// Delivers `answer` to the inbox `address` (`inbox:<id>`). Idempotent by answer id.
    pub async fn deliver(
        &self,
        address: &str,
        answer: &AgentMessage,
    ) -> Result<(), chatgptd_memory::Error> {
        let entry = HistoryEntry {
            id: answer.id.clone(),
            role: "assistant".into(),
            text: serde_json::to_string(&answer_json(answer)).unwrap_or_default(),
            at_ms: answer.sent_at_ms,
            attributes: Default::default(),
        };
        let limits = HistoryLimits {
            cap: INBOX_CAP,
            ttl: Some(self.ttl),
        };
        self.memory
            .append_history(address, &entry, limits)
            .await
            .map(|_| ())
    }

    /// The answers delivered to `address` so far, oldest first, as JSON.
    pub async fn read(
        &self,
        address: &str,
    ) -> Result<Vec<serde_json::Value>, chatgptd_memory::Error> {
        let entries = self.memory.history(address, INBOX_CAP).await?;
        Ok(entries
            .into_iter()
            .filter_map(|entry| serde_json::from_str(&entry.text).ok())
            .collect())
    }
}

/// An answer as the API shows it.
pub fn answer_json(message: &AgentMessage) -> serde_json::Value {
    serde_json::json!({
        "id": message.id,
        "from": message.from,
        "kind": message.kind,
        "body": message.body,
        "in_reply_to": message.in_reply_to,
        "conversation_id": message.conversation_id,
        "hop_count": message.hop_count,
        "sent_at_ms": message.sent_at_ms,
        "provenance": message.provenance.as_ref().map(|p| serde_json::json!({
            "provider": p.provider, "model": p.model, "prompt_version": p.prompt_version,
            "request_id": p.request_id, "total_tokens": p.total_tokens, "cached": p.cached,
        })),
    })
}
