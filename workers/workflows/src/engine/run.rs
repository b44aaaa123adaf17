//! Run state transitions: a run starts, fails with a step, or succeeds once its final steps
//! finished.

use chatgptd_registry::{StepSpec, WorkflowSpec};
use chatgptd_runtime::{OutputRecord, ProcessError};
use chatgptd_types::records::WorkflowStep;
use serde_json::Value;
use tracing::info;

use super::Engine;
use super::step::pending;
use crate::state::{RunState, RunStatus, StepState, StepStatus};
use crate::telemetry::{RunFinished, RunOutcome};

impl Engine {
    /// Records the run and emits its root steps. A redelivered start changes nothing.
    pub(super) async fn start(
        &self,
        record: &WorkflowStep,
        spec: &WorkflowSpec,
    ) -> Result<Vec<OutputRecord>, ProcessError> {
        let run = &record.run_id;
        let given: Value = serde_json::from_str(&record.input_json).map_err(|err| {
            ProcessError::permanent("invalid_input", format!("input is not JSON: {err}"))
        })?;
        let existing = self
            .store
            .run(run)
            .await
            .map_err(ProcessError::classified)?;
        let input = match (&existing, spec.prepare_input(&given)) {
            (Some(state), _) => {
                // Listed again in case a crash came between recording and listing it; a run
                // already listed stays listed once.
                self.store
                    .index_run(run, &state.workflow, state.started_at_ms)
                    .await
                    .map_err(ProcessError::classified)?;
                state.input.clone()
            }
            (None, Ok(input)) => {
                let state = RunState {
                    workflow: spec.name.clone(),
                    status: RunStatus::Running,
                    input: input.clone(),
                    started_at_ms: chatgptd_types::now_ms(),
                    finished_at_ms: None,
                    error: None,
                    failed_step: None,
                    started_by: record.step_id.clone(),
                    resumed_by: None,
                };
                self.store
                    .put_run(run, &state)
                    .await
                    .map_err(ProcessError::classified)?;
                self.store
                    .index_run(run, &state.workflow, state.started_at_ms)
                    .await
                    .map_err(ProcessError::classified)?;
                info!(run = %run, workflow = %spec.name, started_by = %record.step_id, "run started");
                input
            }
            (None, Err(err)) => {
                // A bad input fails the run where people look for it, not in the dead letters.
                let state = RunState {
                    workflow: spec.name.clone(),
                    status: RunStatus::Failed,
                    input: given,
                    started_at_ms: chatgptd_types::now_ms(),
                    finished_at_ms: Some(chatgptd_types::now_ms()),
                    error: Some(err.to_string()),
                    failed_step: None,
                    started_by: record.step_id.clone(),
                    resumed_by: None,
                };
                self.store
                    .put_run(run, &state)
                    .await
                    .map_err(ProcessError::classified)?;
                self.store
                    .index_run(run, &state.workflow, state.started_at_ms)
                    .await
                    .map_err(ProcessError::classified)?;
                return Ok(Vec::new());
            }
        };
        spec.roots()
            .into_iter()
            .map(|step| self.step_record(run, spec, step, &input))
            .collect()
    }

    /// Fails the step (after `attempts` in this round, `sent` in all) and its run with `error`.
    pub(super) async fn fail(
        &self,
        run_id: &str,
        run: &mut RunState,
        step: &StepSpec,
        (attempts, sent): (u32, u32),
        error: String,
    ) -> Result<Vec<OutputRecord>, ProcessError> {
        let failed = StepState {
            status: StepStatus::Failed,
            attempts,
            sent,
            error: Some(error.clone()),
            finished_at_ms: Some(chatgptd_types::now_ms()),
            ..pending(step)
        };
        self.store
            .put_step(run_id, &step.id, &failed)
            .await
            .map_err(ProcessError::classified)?;
        run.status = RunStatus::Failed;
        run.error = Some(format!("step {} failed: {error}", step.id));
        run.failed_step = Some(step.id.clone());
        run.finished_at_ms = Some(chatgptd_types::now_ms());
        self.store
            .put_run(run_id, run)
            .await
            .map_err(ProcessError::classified)?;
        self.store
            .release(run_id, &step.id)
            .await
            .map_err(ProcessError::classified)?;
        RunFinished {
            run: run_id,
            workflow: &run.workflow,
            outcome: RunOutcome::Failed {
                step: &step.id,
                error: &error,
            },
        }
        .emit();
        Ok(Vec::new())
    }

    /// What follows a finished step: its dependents (a fan-in once all its dependencies
    /// finished), or, for a final step, the run's success once every final step finished.
    /// Idempotent, so a redelivered step emits what it emitted before and nothing more.
    pub(super) async fn after(
        &self,
        run_id: &str,
        spec: &WorkflowSpec,
        step: &StepSpec,
        input: &Value,
    ) -> Result<Vec<OutputRecord>, ProcessError> {
        let mut records = Vec::new();
        let dependents = spec.dependents(&step.id);
        for dependent in &dependents {
            if spec.is_fan_in(&dependent.id) {
                let finished = self
                    .store
                    .join(run_id, &dependent.id, &step.id)
                    .await
                    .map_err(ProcessError::classified)?;
                if finished < spec.dependencies(&dependent.id).len() {
                    continue;
                }
            }
            records.push(self.step_record(run_id, spec, dependent, input)?);
        }
        if dependents.is_empty() {
            let finished = self
                .store
                .leaf_done(run_id, &step.id)
                .await
                .map_err(ProcessError::classified)?;
            if finished >= spec.leaves().len()
                && let Some(mut run) = self
                    .store
                    .run(run_id)
                    .await
                    .map_err(ProcessError::classified)?
                && run.status == RunStatus::Running
            {
                run.status = RunStatus::Succeeded;
                run.finished_at_ms = Some(chatgptd_types::now_ms());
                self.store
                    .put_run(run_id, &run)
                    .await
                    .map_err(ProcessError::classified)?;
                RunFinished {
                    run: run_id,
                    workflow: &spec.name,
                    outcome: RunOutcome::Succeeded,
                }
                .emit();
            }
        }
        Ok(records)
    }
}
