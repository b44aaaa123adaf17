//! A step's answer from its agent (a `result` record, sent by the agent worker): the step
//! succeeds with the reply, or its attempt failed and the step's retry policy decides.

use chatgptd_fleet::StepAnswer;
use chatgptd_fleet::step::RETRYABLE_REASONS;
use chatgptd_registry::WorkflowSpec;
use chatgptd_runtime::{Incoming, OutputRecord, ProcessError};
use chatgptd_types::records::WorkflowStep;
use chatgptd_types::waiting;
use tracing::info;

use super::{Engine, step_of};
use crate::state::{RunStatus, StepState, StepStatus};
use crate::telemetry::{StepAttempted, StepOutcome};

impl Engine {
    pub(super) async fn result(
        &self,
        incoming: &Incoming<WorkflowStep>,
        spec: &WorkflowSpec,
    ) -> Result<Vec<OutputRecord>, ProcessError> {
        let record = &incoming.value;
        let (run_id, step_id) = (&record.run_id, &record.step_id);
        let step = step_of(spec, step_id)?;
        let store = &self.store;
        let run = store.run(run_id).await.map_err(ProcessError::classified)?;
        let state = store
            .step(run_id, step_id)
            .await
            .map_err(ProcessError::classified)?;
        let (Some(mut run), Some(state)) = (run, state) else {
            info!(run = %run_id, step = %step_id, "result of an unknown (or expired) run ignored");
            return Ok(Vec::new());
        };
        let attempt = u32::try_from(record.attempt).unwrap_or(0);
        if state.sent != attempt {
            info!(run = %run_id, step = %step_id, attempt, "result of an earlier attempt ignored");
            return Ok(Vec::new());
        }
        match state.status {
            // A redelivered answer: emit again what followed it, nothing more.
            StepStatus::Succeeded => {
                return self.after(run_id, spec, step, &run.input).await;
            }
            StepStatus::Running => {}
            _ => return Ok(Vec::new()),
        }
        let answer: StepAnswer = serde_json::from_str(&record.input_json).map_err(|err| {
            ProcessError::permanent("invalid_step_result", format!("not a step answer: {err}"))
        })?;
        let max_attempts = step.retry.max_attempts.max(1);
        let attempted = |outcome: StepOutcome, error: &str| {
            StepAttempted {
                run: run_id,
                workflow: &spec.name,
                step: step_id,
                attempt: state.attempts,
                max_attempts,
                outcome,
                error,
            }
            .emit();
        };
        let running = run.status == RunStatus::Running;
        if answer.kind == "reply" {
            attempted(StepOutcome::Succeeded, "");
            let done = StepState {
                status: StepStatus::Succeeded,
                output: Some(answer.body),
                error: None,
                finished_at_ms: Some(chatgptd_types::now_ms()),
                ..state
            };
            // Stored before anything after it is emitted. A run that failed meanwhile (another
            // branch) keeps the answer and counts it in its fan-ins; the steps emitted after it
            // are set aside until the run is resumed, and the resume sends them again.
            store
                .put_step(run_id, step_id, &done)
                .await
                .map_err(ProcessError::classified)?;
            let mut records = vec![self.remember(incoming, spec, step, &done)?];
            records.extend(self.after(run_id, spec, step, &run.input).await?);
            return Ok(records);
        }

        let error = answer.body;
        let retry = answer
            .reason
            .as_deref()
            .is_some_and(|reason| RETRYABLE_REASONS.contains(&reason));
        if retry && running && state.attempts < max_attempts {
            attempted(
                StepOutcome::after_failed(state.attempts, max_attempts),
                &error,
            );
            waiting::sleep(step.retry.delay_before(state.attempts + 1)).await;
            let next = StepState {
                attempts: state.attempts + 1,
                sent: state.sent + 1,
                error: Some(error),
                ..state
            };
            store
                .put_step(run_id, step_id, &next)
                .await
                .map_err(ProcessError::classified)?;
            let body = next.input.clone().unwrap_or_default();
            return Ok(vec![self.send(run_id, &run, spec, step, next.sent, &body)?]);
        }
        attempted(StepOutcome::Failed, &error);
        if running {
            return self
                .fail(run_id, &mut run, step, (state.attempts, state.sent), error)
                .await;
        }
        let failed = StepState {
            status: StepStatus::Failed,
            error: Some(error),
            finished_at_ms: Some(chatgptd_types::now_ms()),
            ..state
        };
        store
            .put_step(run_id, step_id, &failed)
            .await
            .map_err(ProcessError::classified)?;
        Ok(Vec::new())
    }
}
