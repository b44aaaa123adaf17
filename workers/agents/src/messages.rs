//! Building AgentMessages: answers and refusals from agents.

use chatgptd_types::records::AgentMessage;
use uuid::Uuid;

/// The namespace of answer ids: an answer's id derives from the message it answers, so a
/// redelivered message produces the same answer id (and no second inbox entry).
const ANSWER_NAMESPACE: Uuid = Uuid::from_u128(0x6368_6174_6770_7464_0000_0000_0000_0001);

/// An answer (kind `reply` or `refusal`) from `agent` to `message`.
pub(crate) fn answer(
    message: &AgentMessage,
    agent: &str,
    kind: &str,
    body: String,
) -> AgentMessage {
    let to = message.reply_to.clone().unwrap_or_default();
    let mut path = message.path.clone();
    path.push(agent.to_string());
    AgentMessage {
        id: Uuid::new_v5(
            &ANSWER_NAMESPACE,
            format!("{}:{agent}:{kind}", message.id).as_bytes(),
        )
        .to_string(),
        conversation_id: message.conversation_id.clone(),
        correlation_id: message.correlation_id.clone(),
        from: agent.to_string(),
        // An agent may answer back; an inbox never does.
        reply_to: (!to.starts_with("inbox:") && kind == "reply").then(|| agent.to_string()),
        to,
        kind: kind.to_string(),
        body,
        in_reply_to: Some(message.id.clone()),
        hop_count: message.hop_count + 1,
        token_budget: message.token_budget,
        path,
        sent_at_ms: chatgptd_types::now_ms(),
        provenance: None,
    }
}

/// The copy of a fleet broadcast for one agent: same conversation and budget, its own id.
pub(crate) fn for_agent(message: &AgentMessage, agent: &str) -> AgentMessage {
    AgentMessage {
        id: format!("{}:{agent}", message.id),
        to: agent.to_string(),
        ..message.clone()
    }
}
