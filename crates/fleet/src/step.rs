//! A workflow step answered by its agent's tool loop: the message the engine sends to the
//! agent, the address its answer goes to, and the step-result record that carries the
//! answer back on `workflows.steps`.
//!
//! Ids derive from run, step and attempt, so the engine sending a step again (a redelivered
//! step record) sends the same message, which the agent's ledger answers once; a new attempt
//! is a new conversation.

use chatgptd_types::records::{AgentMessage, WorkflowStep};
use serde::{Deserialize, Serialize};

/// The kind of the `workflows.steps` record that carries an agent's answer to a step.
pub const RESULT_KIND: &str = "result";

/// One attempt of one step of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepCall {
    pub workflow: String,
    pub run: String,
    pub step: String,
    /// Counts every time the step was sent, over its retries and the run's resumes.
    pub attempt: u32,
}

/// An agent's answer to a step, as the result record's `input_json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepAnswer {
    /// `reply` or `refusal`.
    pub kind: String,
    pub body: String,
    /// For a refusal: why, a bounded code (`step_timeout`, `model_retryable`, `hop_limit`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Refusal reasons a new attempt may fix: the step's retry policy applies to them; any other
/// refusal fails the step at once.
pub const RETRYABLE_REASONS: [&str; 2] = ["step_timeout", "model_retryable"];

impl StepCall {
    /// Where the agent's answer goes (its message's `reply_to`):
    /// `workflow:<workflow>:<step>:<attempt>:<run>`. The run id comes last, whatever it holds.
    pub fn address(&self) -> String {
        format!(
            "workflow:{}:{}:{}:{}",
            self.workflow, self.step, self.attempt, self.run
        )
    }

    /// The step an answer's address names, if it names one.
    pub fn parse(address: &str) -> Option<StepCall> {
        let rest = address.strip_prefix("workflow:")?;
        let mut parts = rest.splitn(4, ':');
        let (workflow, step, attempt, run) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        Some(StepCall {
            workflow: workflow.to_string(),
            step: step.to_string(),
            attempt: attempt.parse().ok()?,
            run: run.to_string(),
        })
    }

    /// The id of this attempt's message to the agent.
    pub fn message_id(&self) -> String {
        format!("step:{}:{}:{}", self.run, self.step, self.attempt)
    }

    /// This attempt as a request to `agent` in `conversation`, from `sender`, saying `body`.
    pub fn message(
        &self,
        agent: &str,
        sender: &str,
        body: &str,
        conversation: &str,
    ) -> AgentMessage {
        let id = self.message_id();
        AgentMessage {
            conversation_id: conversation.to_string(),
            correlation_id: id.clone(),
            reply_to: Some(self.address()),
            from: sender.to_string(),
            to: agent.to_string(),
            kind: "request".into(),
            body: body.to_string(),
            in_reply_to: None,
            hop_count: 0,
            token_budget: 0,
            path: Vec::new(),
            sent_at_ms: chatgptd_types::now_ms(),
            provenance: None,
            id,
        }
    }

    /// The record that brings `answer` (from `agent`) back to the engine, keyed by the run.
    pub fn result(&self, agent: &str, answer: &StepAnswer) -> WorkflowStep {
        WorkflowStep {
            run_id: self.run.clone(),
            workflow: self.workflow.clone(),
            step_id: self.step.clone(),
            kind: RESULT_KIND.into(),
            agent: Some(agent.to_string()),
            input_json: serde_json::to_string(answer).unwrap_or_default(),
            attempt: i32::try_from(self.attempt).unwrap_or(i32::MAX),
            requested_at_ms: chatgptd_types::now_ms(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_names_its_step_and_the_run_may_hold_colons() {
        let call = StepCall {
            workflow: "research".into(),
            run: "run:with:colons".into(),
            step: "plan".into(),
            attempt: 3,
        };
        assert_eq!(StepCall::parse(&call.address()), Some(call.clone()));
        let message = call.message("atlas-sentinel", "workflow research", "PLAN", "run:x");
        assert_eq!(message.id, call.message_id());
        assert_eq!(message.reply_to.as_deref(), Some(&*call.address()));
        assert_eq!(StepCall::parse("inbox:abc"), None);
        assert_eq!(StepCall::parse("workflow:research:plan:x:r"), None);
    }
}
