//! What resumes a parked conversation: the replies it waits for, or a person's decision.

use chatgptd_actions::{ActionId, Outcome, WaitOn};
use chatgptd_runtime::{Incoming, OutputRecord, ProcessError};
use chatgptd_types::records::AgentMessage;

use super::classified;
use crate::worker::AgentWorker;

/// The kind of the message that tells an agent a decision was made on one of its approvals
/// (sent by the approvals API and the expiry sweep).
pub(crate) const DECISION_KIND: &str = "approval";

/// The kind of the message that wakes a conversation whose wait the sweep ended (no reply
/// in time): the call's outcome is in the ledger already.
pub(crate) const WAKE_KIND: &str = "wake";

impl AgentWorker {
    /// If `incoming` is something a parked conversation waits for, takes it and resumes the
    /// conversation when nothing else is missing. `None`: not for a wait, handle as usual.
    pub(crate) async fn arrival(
        &self,
        incoming: &Incoming<AgentMessage>,
    ) -> Result<Option<Vec<OutputRecord>>, ProcessError> {
        let message = &incoming.value;
        let kind = message.kind.as_str();
        if !matches!(kind, "reply" | "refusal" | DECISION_KIND | WAKE_KIND) {
            return Ok(None);
        }
        // Decisions and wakes are for waits only: never answered as requests.
        let internal = matches!(kind, DECISION_KIND | WAKE_KIND);
        let Some(action) = ActionId::parse(&message.correlation_id) else {
            return Ok(internal.then(Vec::new));
        };
        let wait = self
            .act
            .waits
            .get(action.as_str())
            .await
            .map_err(classified)?;
        let Some(wait) = wait.filter(|wait| wait.agent == message.to) else {
            // A decision nobody waits for (forgotten, or for another worker's agent) has no
            // one to answer; a stray reply is answered as before.
            return Ok(internal.then(Vec::new));
        };
        let origin = super::origin_of(&incoming.meta);
        match (&wait.on, kind) {
            (WaitOn::Replies { from }, "reply" | "refusal") => {
                let text = if kind == "refusal" {
                    format!("(refused) {}", message.body)
                } else {
                    message.body.clone()
                };
                let arrived = self
                    .act
                    .waits
                    .arrived(&action, from, &message.from, &text)
                    .await
                    .map_err(classified)?;
                let Some(replies) = arrived else {
                    return Ok(Some(Vec::new()));
                };
                let result = replies
                    .iter()
                    .map(|(agent, text)| format!("{agent}: {text}"))
                    .collect::<Vec<_>>()
                    .join("\n\n");
                self.act
                    .ledger
                    .record(&action, Outcome::done(result), &origin)
                    .await
                    .map_err(classified)?;
            }
            // The decision itself is in the approvals store; the loop reads it.
            (WaitOn::Approval { .. }, DECISION_KIND) => {}
            // The sweep recorded the outcome before it woke us.
            (_, WAKE_KIND) => {}
            _ => return Ok(Some(Vec::new())),
        }
        let registry = self.registry();
        let Some(agent) = registry.get(&wait.agent) else {
            return Ok(Some(Vec::new()));
        };
        self.respond(
            agent,
            &wait.message,
            wait.source.clone(),
            origin,
            &incoming.meta.trace.to_header(),
        )
        .await
        .map(Some)
    }
}
