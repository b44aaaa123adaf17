//! Requests from people (the API, the CLI) to agents, answered into their own inbox.

use chatgptd_types::records::AgentMessage;
use uuid::Uuid;

use crate::inbox::inbox_address;

/// A request from `from` (e.g. `user:alice`, `api`) to `to` (an agent id or `fleet:<name>`),
/// answered into its own inbox. `conversation` continues a conversation; `token_budget` 0
/// means the agent's own budget.
pub fn new_request(
    from: &str,
    to: &str,
    body: &str,
    conversation: Option<&str>,
    token_budget: i64,
) -> AgentMessage {
    let id = Uuid::new_v4().to_string();
    AgentMessage {
        conversation_id: conversation.map_or_else(|| id.clone(), str::to_string),
        correlation_id: id.clone(),
        reply_to: Some(inbox_address(&id)),
        from: from.to_string(),
        to: to.to_string(),
        kind: "request".into(),
        body: body.to_string(),
        in_reply_to: None,
        hop_count: 0,
        token_budget,
        path: Vec::new(),
        sent_at_ms: chatgptd_types::now_ms(),
        provenance: None,
        id,
    }
}
