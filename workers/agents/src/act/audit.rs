//! The audit trail of the tool loop: every call's decision and outcome, as `ActionAudit`
//! records on the audit topic (keyed by conversation) and as memory, so it can be searched.

use chatgptd_actions::outcome::bounded;
use chatgptd_actions::{ActionId, Outcome};
use chatgptd_model::ToolCall;
use chatgptd_registry::{ActionDecision, Assessment};
use chatgptd_runtime::{OutputRecord, ProcessError};
use chatgptd_types::avro::AvroRecord;
use chatgptd_types::records::{ActionAudit, ApprovalRequest, MemoryRecord};

use super::Conversation;
use crate::worker::AgentWorker;

/// One audit event, before it becomes records.
pub(crate) struct Event(ActionAudit);

impl Event {
    fn new(cx: &Conversation<'_>, id: &ActionId, call: &ToolCall, event: &str) -> Self {
        Event(ActionAudit {
            id: format!("{id}:{event}"),
            conversation_id: cx.message.conversation_id.clone(),
            action_id: id.to_string(),
            agent: cx.agent.id.clone(),
            action: call.name.clone(),
            arguments: bounded(call.arguments.clone()),
            event: event.to_string(),
            decision: None,
            risk_score: 0,
            reason: String::new(),
            actor: None,
            result: None,
            traceparent: Some(cx.traceparent.clone()),
            at_ms: chatgptd_types::now_ms(),
            message_id: cx.message.id.clone(),
        })
    }

    /// The policy's decision on a call.
    pub(crate) fn decided(
        cx: &Conversation<'_>,
        id: &ActionId,
        call: &ToolCall,
        assessment: &Assessment,
    ) -> Self {
        Event::new(cx, id, call, "decided").scored(assessment)
    }

    /// A call that now waits for a person.
    pub(crate) fn approval_requested(
        cx: &Conversation<'_>,
        id: &ActionId,
        call: &ToolCall,
        assessment: &Assessment,
        request: &ApprovalRequest,
    ) -> Self {
        let mut event = Event::new(cx, id, call, "approval_requested").scored(assessment);
        event.0.result = Some(format!(
            "approval {} pending until {}",
            request.id, request.expires_at_ms
        ));
        event
    }

    /// What came of a call.
    pub(crate) fn outcome(
        cx: &Conversation<'_>,
        id: &ActionId,
        call: &ToolCall,
        outcome: &Outcome,
    ) -> Self {
        let mut event = Event::new(cx, id, call, outcome.event());
        match outcome {
            Outcome::Refused { reason } => event.0.reason = reason.clone(),
            Outcome::Invalid { detail } => event.0.reason = format!("invalid arguments: {detail}"),
            Outcome::Denied { by, reason } => {
                event.0.actor = Some(by.clone());
                event.0.reason = reason.clone();
            }
            _ => {}
        }
        event.0.result = Some(bounded(outcome.tool_result()));
        event
    }

    /// The event with the policy's score, decision and reasons.
    pub(crate) fn scored(mut self, assessment: &Assessment) -> Self {
        self.0.decision = Some(decision_name(assessment.decision).to_string());
        self.0.risk_score = i32::from(assessment.risk_score);
        if self.0.reason.is_empty() {
            self.0.reason = assessment.reasons.join("; ");
        }
        self
    }
}

/// `allowed`, `needs_approval` or `refused`.
pub(crate) fn decision_name(decision: ActionDecision) -> &'static str {
    match decision {
        ActionDecision::Allowed => "allowed",
        ActionDecision::NeedsApproval => "needs_approval",
        ActionDecision::Refused => "refused",
    }
}

impl AgentWorker {
    /// The records of `event`: the audit record, and the same as memory of the conversation.
    pub(crate) fn audit(
        &self,
        cx: &Conversation<'_>,
        event: Event,
    ) -> Result<Vec<OutputRecord>, ProcessError> {
        let audit = event.0;
        let memory = MemoryRecord {
            id: format!("audit:{}", audit.id),
            owner: format!("agent:{}", audit.agent),
            kind: "action".to_string(),
            text: format!(
                "{} {} {} ({}){}",
                audit.agent,
                audit.event,
                audit.action,
                audit.arguments,
                audit
                    .result
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
            tags: vec![cx.agent.fleet.to_lowercase(), "audit".to_string()],
            created_at_ms: audit.at_ms,
            source_topic: cx.source.topic.clone(),
            source_partition: cx.source.partition,
            source_offset: cx.source.offset,
            attributes: [
                ("conversation_id", audit.conversation_id.clone()),
                ("agent", audit.agent.clone()),
                ("action", audit.action.clone()),
                ("event", audit.event.clone()),
                ("action_id", audit.action_id.clone()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        };
        Ok(vec![
            self.output(
                &self.options.audit_topic,
                audit.conversation_id.clone(),
                &audit,
            )?,
            self.output(&self.options.memory_topic, memory.owner.clone(), &memory)?,
        ])
    }

    /// An Avro record for `topic`, keyed by `key`.
    pub(crate) fn output<T: AvroRecord>(
        &self,
        topic: &str,
        key: String,
        value: &T,
    ) -> Result<OutputRecord, ProcessError> {
        OutputRecord::avro(&self.codec, topic, key, value)
    }
}
