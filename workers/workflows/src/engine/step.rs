//! Executing one step: its claim and approval, then its first attempt, sent to the step's
//! agent as a message. The agent answers through its tool loop (policy, approvals, audit,
//! once-only) in the agent worker; the answer comes back as a `result` record (`result.rs`).
//! Nothing here waits for it: a step waiting on its agent, another agent or a person holds
//! no worker.

use std::collections::BTreeMap;
use std::time::Duration;

use chatgptd_fleet::StepCall;
use chatgptd_registry::workflow::Approval;
use chatgptd_registry::{StepSpec, WorkflowSpec};
use chatgptd_runtime::{Incoming, OutputRecord, ProcessError};
use chatgptd_types::records::WorkflowStep;
use tracing::{info, warn};

use super::service::attempts_budget;
use super::{Engine, step_of};
use crate::state::{RunState, RunStatus, StepState, StepStatus};

impl Engine {
    pub(super) async fn execute(
        &self,
        incoming: &Incoming<WorkflowStep>,
        spec: &WorkflowSpec,
        resume: bool,
    ) -> Result<Vec<OutputRecord>, ProcessError> {
        let record = &incoming.value;
        let (run_id, step_id) = (&record.run_id, &record.step_id);
        let step = step_of(spec, step_id)?;
        let Some(mut run) = self
            .store
            .run(run_id)
            .await
            .map_err(ProcessError::classified)?
        else {
            warn!(run = %run_id, step = %step_id, "step of an unknown (or expired) run ignored");
            return Ok(Vec::new());
        };
        let state = self
            .store
            .step(run_id, step_id)
            .await
            .map_err(ProcessError::classified)?;
        // A failed run leaves `failed` only through an explicit resume
        // (`WorkflowsClient::resume`), which marks it running before it sends its records;
        // the engine never does. So any step record, `execute` or `resume`, that finds its run
        // failed is set aside, however old: a branch of the current resume that comes after
        // another branch failed again, a step emitted before the failure, a record replayed
        // from the dead letters. Flipping the run back here let such a record undo a failure
        // (a step's, or the dead-letter hook's): the run read as running with a fan-in
        // waiting forever, and could not be resumed. Nothing is lost by setting it aside:
        // the next resume sends every step not yet succeeded whose dependencies have.
        // Records of an older resume that arrive once the run runs again need no generation
        // number to tell them apart: a step is claimed by one record at a time and its stored
        // result makes any other record of it only emit again what follows it.
        if run.status == RunStatus::Failed {
            info!(run = %run_id, step = %step_id, kind = %record.kind, "step of a failed run set aside until the run is resumed");
            return Ok(Vec::new());
        }
        match state.as_ref().map(|s| s.status) {
            Some(StepStatus::Succeeded) => return self.after(run_id, spec, step, &run.input).await,
            Some(StepStatus::Failed) if !resume => return Ok(Vec::new()),
            _ => {}
        }
        if let Some(sent) = state
            .as_ref()
            .filter(|s| s.status == StepStatus::Running && s.sent > 0)
        {
            // Sent already (a redelivered step record, or one emitted again by a redelivered
            // dependency, or a resume while its agent still works on it): the same message
            // again, which the agent's ledger answers once, so nothing is asked or done twice.
            let body = sent.input.clone().unwrap_or_default();
            return Ok(vec![self.send(run_id, &run, spec, step, sent.sent, &body)?]);
        }
        let sent = state.as_ref().map_or(0, |s| s.sent);

        let outputs = self.outputs_read_by(run_id, step).await?;
        let rendered = match step.render_input(&run.input, &outputs) {
            Ok(rendered) => rendered,
            Err(err) => {
                return self
                    .fail(
                        run_id,
                        &mut run,
                        step,
                        (0, sent),
                        format!("the step's input does not render: {err}"),
                    )
                    .await;
            }
        };
        if step.approval == Approval::Required
            && !self
                .store
                .approved(run_id, step_id)
                .await
                .map_err(ProcessError::classified)?
        {
            let held = StepState {
                status: StepStatus::WaitingApproval,
                input: Some(rendered),
                sent,
                ..pending(step)
            };
            self.store
                .put_step(run_id, step_id, &held)
                .await
                .map_err(ProcessError::classified)?;
            info!(run = %run_id, step = %step_id, "step waits for approval");
            return Ok(Vec::new());
        }
        let token = format!(
            "{}/{}@{}",
            incoming.meta.topic, incoming.meta.partition, incoming.meta.offset
        );
        if !self
            .store
            .claim(run_id, step_id, &token, claim_ttl(step))
            .await
            .map_err(ProcessError::classified)?
        {
            return Err(ProcessError::unavailable(
                "step_in_progress",
                format!("step {step_id} of run {run_id} runs elsewhere"),
            ));
        }
        let Some(agent) = self.registry.get(&step.agent).filter(|a| a.is_enabled()) else {
            return self
                .fail(
                    run_id,
                    &mut run,
                    step,
                    (0, sent),
                    format!("agent `{}` is not available", step.agent),
                )
                .await;
        };

        // A new attempt: a new conversation of the step's agent, whose id derives from run,
        // step and how many times the step was sent.
        let sent = sent + 1;
        let running = StepState {
            status: StepStatus::Running,
            attempts: 1,
            sent,
            input: Some(rendered.clone()),
            started_at_ms: Some(chatgptd_types::now_ms()),
            ..pending(step)
        };
        // Stored before the message is emitted: a redelivery finds it and sends the same one.
        self.store
            .put_step(run_id, step_id, &running)
            .await
            .map_err(ProcessError::classified)?;
        let message = self.send(run_id, &run, spec, step, sent, &rendered)?;
        self.store
            .release(run_id, step_id)
            .await
            .map_err(ProcessError::classified)?;
        info!(run = %run_id, step = %step_id, agent = %agent.id, attempt = sent, "step sent to its agent");
        Ok(vec![message])
    }

    /// Attempt `attempt` of `step` as a message to its agent, saying `body`. The conversation
    /// is the ticket's when a ticket started the run (so ticket actions find their ticket),
    /// else the run's.
    pub(super) fn send(
        &self,
        run_id: &str,
        run: &RunState,
        spec: &WorkflowSpec,
        step: &StepSpec,
        attempt: u32,
        body: &str,
    ) -> Result<OutputRecord, ProcessError> {
        let call = StepCall {
            workflow: spec.name.clone(),
            run: run_id.to_string(),
            step: step.id.clone(),
            attempt,
        };
        let conversation = if run.started_by.starts_with("ticket:") {
            run.started_by.clone()
        } else {
            format!("run:{run_id}")
        };
        let sender = format!("workflow {} (run {run_id}, step {})", spec.name, step.id);
        let message = call.message(&step.agent, &sender, body, &conversation);
        OutputRecord::avro(
            &self.codec,
            &self.options.agents_topic,
            step.agent.clone(),
            &message,
        )
    }

    /// The outputs of the earlier steps a step's template reads.
    async fn outputs_read_by(
        &self,
        run_id: &str,
        step: &StepSpec,
    ) -> Result<BTreeMap<String, String>, ProcessError> {
        let mut outputs = BTreeMap::new();
        for id in step.reads() {
            let state = self
                .store
                .step(run_id, &id)
                .await
                .map_err(ProcessError::classified)?;
            if let Some(output) = state.and_then(|s| s.output) {
                outputs.insert(id, output);
            }
        }
        Ok(outputs)
    }
}

/// A step state with nothing recorded yet.
pub(super) fn pending(step: &StepSpec) -> StepState {
    StepState::pending(&step.agent)
}

/// How long a claim holds a step: every attempt with its timeout and the waits between, and
/// a margin. A worker that dies holding it delays only duplicated records of the step.
fn claim_ttl(step: &StepSpec) -> Duration {
    attempts_budget(step) + Duration::from_secs(60)
}
