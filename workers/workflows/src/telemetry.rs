//! Metrics and logs of the workflow engine. Labels are bounded: `workflow` and `step` are
//! names from the workflow definitions (a record naming an unknown one is refused before
//! anything is counted), `status` and `outcome` come from fixed sets. Never run ids or
//! error text.
//!
//! Logs name the run, the workflow and the step; never inputs or outputs.

use tracing::{debug, info, warn};

/// Metric names, one place.
pub mod metric {
    /// Runs finished, by `workflow` and `status` (succeeded, failed).
    pub const RUNS: &str = "chatgptd_workflow_runs_total";
    /// Step attempts, by `workflow`, `step` and `outcome` (succeeded; retried: failed with an
    /// attempt left; failed: the step's last attempt, or a permanent error).
    pub const STEP_ATTEMPTS: &str = "chatgptd_workflow_step_attempts_total";
}

/// How a run ended.
pub(crate) enum RunOutcome<'a> {
    Succeeded,
    /// Failed with `step`, for `error` (logged, never a label).
    Failed {
        step: &'a str,
        error: &'a str,
    },
}

/// A run finished.
pub(crate) struct RunFinished<'a> {
    /// The run, for the log only.
    pub run: &'a str,
    pub workflow: &'a str,
    pub outcome: RunOutcome<'a>,
}

impl RunFinished<'_> {
    pub(crate) fn emit(&self) {
        let (run, workflow) = (self.run, self.workflow);
        let status = match self.outcome {
            RunOutcome::Succeeded => {
                info!(run, workflow, "run succeeded");
                "succeeded"
            }
            RunOutcome::Failed { step, error } => {
                warn!(run, workflow, step, error, "run failed");
                "failed"
            }
        };
        metrics::counter!(
            metric::RUNS,
            "workflow" => workflow.to_string(),
            "status" => status
        )
        .increment(1);
    }
}

/// How one attempt of a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepOutcome {
    Succeeded,
    /// Failed, and another attempt follows.
    Retried,
    /// Failed, and the step with it.
    Failed,
}

impl StepOutcome {
    /// A failed attempt that may be tried again: retried while attempts are left.
    pub(crate) fn after_failed(attempt: u32, max_attempts: u32) -> Self {
        if attempt < max_attempts {
            StepOutcome::Retried
        } else {
            StepOutcome::Failed
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Succeeded => "succeeded",
            StepOutcome::Retried => "retried",
            StepOutcome::Failed => "failed",
        }
    }
}

/// One attempt of a step ended.
pub(crate) struct StepAttempted<'a> {
    /// The run, for the log only.
    pub run: &'a str,
    pub workflow: &'a str,
    pub step: &'a str,
    pub attempt: u32,
    pub max_attempts: u32,
    pub outcome: StepOutcome,
    /// Why a failed attempt failed (logged, never a label); empty for a success.
    pub error: &'a str,
}

impl StepAttempted<'_> {
    pub(crate) fn emit(&self) {
        let (run, step, attempt, max_attempts) =
            (self.run, self.step, self.attempt, self.max_attempts);
        let outcome = self.outcome.as_str();
        match self.outcome {
            StepOutcome::Succeeded => debug!(run, step, attempt, "step attempt succeeded"),
            StepOutcome::Retried | StepOutcome::Failed => {
                warn!(
                    run,
                    step,
                    attempt,
                    max_attempts,
                    outcome,
                    error = self.error,
                    "step attempt failed"
                )
            }
        }
        metrics::counter!(
            metric::STEP_ATTEMPTS,
            "workflow" => self.workflow.to_string(),
            "step" => step.to_string(),
            "outcome" => outcome
        )
        .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use chatgptd_testkit::metrics::{Labels, record};

    use super::*;

    #[test]
    fn a_failed_attempt_is_retried_only_while_attempts_are_left() {
        assert_eq!(StepOutcome::after_failed(1, 3), StepOutcome::Retried);
        assert_eq!(StepOutcome::after_failed(2, 3), StepOutcome::Retried);
        assert_eq!(StepOutcome::after_failed(3, 3), StepOutcome::Failed);
        assert_eq!(StepOutcome::after_failed(1, 1), StepOutcome::Failed);
    }

    #[test]
    fn step_attempts_and_runs_are_counted_by_outcome() {
        let ((), recorded) = record(|| async {
            for outcome in [
                StepOutcome::Succeeded,
                StepOutcome::Retried,
                StepOutcome::Failed,
            ] {
                StepAttempted {
                    run: "run-1",
                    workflow: "security-audit",
                    step: "triage",
                    attempt: 1,
                    max_attempts: 2,
                    outcome,
                    error: "model_timeout: timed out",
                }
                .emit();
            }
            RunFinished {
                run: "run-1",
                workflow: "security-audit",
                outcome: RunOutcome::Failed {
                    step: "triage",
                    error: "model_timeout: timed out",
                },
            }
            .emit();
        });
        for outcome in ["succeeded", "retried", "failed"] {
            let labels = [("outcome", outcome)];
            let attempts = recorded.counter(metric::STEP_ATTEMPTS, Labels::Including(&labels));
            assert_eq!(attempts, 1, "{outcome}");
        }
        let runs = recorded.labels_of(metric::RUNS);
        assert_eq!(runs.len(), 1, "{runs:?}");
        // Ids and error text go to the log, never to labels.
        for labels in [runs, recorded.labels_of(metric::STEP_ATTEMPTS)].concat() {
            for (_, value) in &labels {
                assert!(
                    !value.contains("run-1") && !value.contains("timed out"),
                    "{labels:?}"
                );
            }
        }
    }
}
