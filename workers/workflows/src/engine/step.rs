//! Executing one step: its claim, approval, and attempts with the step's retries and timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use chatgptd_fleet::BrainContext;
use chatgptd_model::{Classify, ErrorKind};
use chatgptd_registry::workflow::Approval;
use chatgptd_registry::{StepSpec, WorkflowSpec};
use chatgptd_runtime::{Incoming, OutputRecord, ProcessError};
use chatgptd_types::records::WorkflowStep;
use chatgptd_types::waiting;
use tracing::{info, warn};

use super::Engine;
use super::service::attempts_budget;
use crate::state::{RunStatus, StepState, StepStatus};
use crate::telemetry::{StepAttempted, StepOutcome};

impl Engine {
    pub(super) async fn execute(
        &self,
        incoming: &Incoming<WorkflowStep>,
        spec: &WorkflowSpec,
        resume: bool,
    ) -> Result<Vec<OutputRecord>, ProcessError> {
        let record = &incoming.value;
        let (run_id, step_id) = (&record.run_id, &record.step_id);
        let Some(step) = spec.step(step_id) else {
            return Err(ProcessError::permanent(
                "unknown_step",
                format!("workflow {} has no step `{step_id}`", spec.name),
            ));
        };
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

        let outputs = self.outputs_read_by(run_id, step).await?;
        let rendered = match step.render_input(&run.input, &outputs) {
            Ok(rendered) => rendered,
            Err(err) => {
                return self
                    .fail(
                        run_id,
                        &mut run,
                        step,
                        0,
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
                    0,
                    format!("agent `{}` is not available", step.agent),
                )
                .await;
        };

        let started_at_ms = Some(chatgptd_types::now_ms());
        let sender = format!("workflow {} (run {run_id}, step {step_id})", spec.name);
        let request = self
            .brain
            .request(agent, BrainContext::default(), &sender, &rendered);
        let max_attempts = step.retry.max_attempts.max(1);
        let attempted = |attempt: u32, outcome: StepOutcome, error: &str| {
            StepAttempted {
                run: run_id,
                workflow: &spec.name,
                step: step_id,
                attempt,
                max_attempts,
                outcome,
                error,
            }
            .emit();
        };
        let mut last_error = String::new();
        for attempt in 1..=max_attempts {
            waiting::sleep(step.retry.delay_before(attempt)).await;
            let running = StepState {
                status: StepStatus::Running,
                attempts: attempt,
                input: Some(rendered.clone()),
                started_at_ms,
                ..pending(step)
            };
            self.store
                .put_step(run_id, step_id, &running)
                .await
                .map_err(ProcessError::classified)?;
            // Like the record's, the step's timeout counts working time, not a rate limit.
            let error = match waiting::timeout(step.timeout, self.brain.answer(&request)).await {
                Ok(Ok(reply)) => {
                    attempted(attempt, StepOutcome::Succeeded, "");
                    let done = StepState {
                        status: StepStatus::Succeeded,
                        output: Some(reply.content),
                        finished_at_ms: Some(chatgptd_types::now_ms()),
                        ..running
                    };
                    // Stored before anything after it is emitted.
                    self.store
                        .put_step(run_id, step_id, &done)
                        .await
                        .map_err(ProcessError::classified)?;
                    let mut records = vec![self.remember(incoming, spec, step, &done)?];
                    records.extend(self.after(run_id, spec, step, &run.input).await?);
                    return Ok(records);
                }
                Ok(Err(err)) if err.kind() == ErrorKind::Unavailable => {
                    // The provider or the cache is down, or a rate limit holds: wait it out,
                    // holding the claim.
                    return Err(ProcessError::classified(err));
                }
                Ok(Err(err)) if err.kind() == ErrorKind::Permanent => {
                    last_error = format!("{}: {err}", err.class());
                    attempted(attempt, StepOutcome::Failed, &last_error);
                    break;
                }
                Ok(Err(err)) => format!("{}: {err}", err.class()),
                Err(_) => format!(
                    "timed out after {}",
                    humantime::format_duration(step.timeout)
                ),
            };
            let outcome = StepOutcome::after_failed(attempt, max_attempts);
            attempted(attempt, outcome, &error);
            last_error = error;
        }
        self.fail(run_id, &mut run, step, max_attempts, last_error)
            .await
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
