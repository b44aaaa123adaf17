//! Agents' ticket actions: each executed once on its tracker, and answered on
//! `agents.messages`, as a reply or a refusal.

mod comments;
mod creates;
mod end_to_end;
mod once;
mod refusals;
mod updates;

use std::sync::atomic::{AtomicU64, Ordering};

use chatgptd_runtime::{Incoming, OutputRecord, ProcessError, Processor, RecordMeta};
use chatgptd_types::avro::Codec;
use chatgptd_types::records::{AgentMessage, TicketAction};
use chatgptd_types::trace::TraceContext;
use chatgptd_worker_writeback::TicketActions;
use serde_json::Value;

use crate::support::{Harness, secrets};

/// An action with a fresh id, as the agent worker produces it: `kind` on `source`, about
/// `ticket` (a create's place goes in `project`).
pub fn action(kind: &str, source: &str, ticket: Option<&str>) -> TicketAction {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    TicketAction {
        id: format!("act-{n:032x}"),
        conversation_id: format!("conv-{n}"),
        message_id: format!("msg-{n}"),
        agent: "atlas-sentinel".into(),
        kind: kind.into(),
        source: source.into(),
        ticket: ticket.map(String::from),
        project: None,
        body: None,
        title: None,
        priority: None,
        status: None,
        labels: Vec::new(),
        assignee: None,
        reply_to: "atlas-sentinel".into(),
        requested_at_ms: 1_700_000_000_000,
    }
}

/// A comment action.
pub fn comment(source: &str, ticket: &str, text: &str) -> TicketAction {
    TicketAction {
        body: Some(text.into()),
        ..action("comment", source, Some(ticket))
    }
}

/// The line ending what an action posts.
pub const SIGNATURE: &str = "Posted by chatgptd for agent atlas-sentinel";

/// `[chatgptd-action:<id>]`: what the tracker must carry.
pub fn marker(record: &TicketAction) -> String {
    format!("[chatgptd-action:{}]", record.id)
}

/// Whether a request body carries `text` anywhere (an ADF document's text nodes included).
pub fn carries(body: &Value, text: &str) -> bool {
    body.to_string().contains(text)
}

impl Harness {
    /// The ticket actions over this harness's memory and the fake's credentials, as a
    /// restarted worker builds them.
    pub fn actions(&self) -> TicketActions {
        TicketActions::new(&self.options, self.memory.clone(), &secrets(&self.options)).unwrap()
    }

    /// Processes `record` once (the first try) and returns its answer.
    pub async fn act(&self, record: &TicketAction) -> Result<AgentMessage, ProcessError> {
        self.act_on_try(record, 1).await
    }

    /// Processes `record` as try `attempt`; the one output must be its answer, keyed by the
    /// agent it goes to.
    pub async fn act_on_try(
        &self,
        record: &TicketAction,
        attempt: u32,
    ) -> Result<AgentMessage, ProcessError> {
        let outputs = self.actions().process(&incoming(record, attempt)).await?;
        assert_eq!(outputs.len(), 1, "one answer");
        let message = decode(&outputs[0]);
        assert_eq!(
            message.correlation_id, record.id,
            "how the conversation finds it"
        );
        assert_eq!(message.id, format!("{}:result", record.id));
        assert_eq!(message.conversation_id, record.conversation_id);
        assert_eq!(
            message.in_reply_to.as_deref(),
            Some(record.message_id.as_str())
        );
        assert_eq!(
            (message.from.as_str(), message.to.as_str()),
            ("writeback", "atlas-sentinel")
        );
        Ok(message)
    }
}

/// `record` as the runtime hands it over, on try `attempt`.
pub fn incoming(record: &TicketAction, attempt: u32) -> Incoming<TicketAction> {
    Incoming {
        value: record.clone(),
        meta: RecordMeta {
            topic: "tickets.actions".into(),
            partition: 0,
            offset: 3,
            key: Some(record.key().into_bytes()),
            timestamp_ms: None,
            headers: Vec::new(),
            trace: TraceContext::new_root(),
            attempt,
            previous_offset: None,
        },
    }
}

/// An answer as produced: to `agents.messages`, keyed by the agent it goes to.
pub fn decode(output: &OutputRecord) -> AgentMessage {
    assert_eq!(output.topic, "agents.messages");
    let message: AgentMessage = Codec::builtin().decode(&output.payload).unwrap();
    assert_eq!(output.key.as_deref(), Some(message.to.as_bytes()));
    message
}

/// `(kind, body)` of an answer.
pub fn said(message: &AgentMessage) -> (&str, &str) {
    (message.kind.as_str(), message.body.as_str())
}
