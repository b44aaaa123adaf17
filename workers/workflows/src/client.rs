//! Starting and following runs from outside: the HTTP API and the CLI.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatgptd_registry::Workflows;
use chatgptd_runtime::{OutputRecord, Producer};
use chatgptd_types::avro::Codec;
use chatgptd_types::records::WorkflowStep;
use serde_json::Value;

use crate::engine::start_record;
use crate::state::{RunState, RunStatus, RunStore, RunView, StepStatus};

/// The longest pause between two looks at a run while waiting.
const MAX_POLL: Duration = Duration::from_millis(100);

/// Why a request about a run was refused.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no workflow `{0}`")]
    UnknownWorkflow(String),
    #[error("no run `{0}`")]
    UnknownRun(String),
    #[error("invalid input: {}", .0.join("; "))]
    InvalidInput(Vec<String>),
    #[error("{0}")]
    Conflict(String),
    #[error("sending: {0}")]
    Send(String),
    #[error(transparent)]
    Memory(#[from] chatgptd_memory::Error),
}

impl ClientError {
    /// True when the caller asked for something that is not there.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            ClientError::UnknownWorkflow(_) | ClientError::UnknownRun(_)
        )
    }

    /// True when the caller's request is at fault.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            ClientError::InvalidInput(_) | ClientError::Conflict(_)
        )
    }
}

/// Starts, follows, resumes and approves runs.
#[derive(Debug, Clone)]
pub struct WorkflowsClient {
    producer: Producer,
    store: RunStore,
    workflows: Arc<Workflows>,
    topic: String,
    codec: Codec,
}

impl WorkflowsClient {
    /// A client producing steps to `topic` and reading runs from `store`.
    pub fn new(
        producer: Producer,
        store: RunStore,
        workflows: Arc<Workflows>,
        topic: &str,
    ) -> Self {
        WorkflowsClient {
            producer,
            store,
            workflows,
            topic: topic.to_string(),
            codec: Codec::builtin(),
        }
    }

    /// The workflows.
    pub fn workflows(&self) -> &Workflows {
        &self.workflows
    }

    async fn send(&self, record: &WorkflowStep) -> Result<(), ClientError> {
        let output = OutputRecord::avro(&self.codec, &self.topic, record.run_id.clone(), record)
            .map_err(|err| ClientError::Send(err.to_string()))?;
        self.producer
            .send(&output)
            .await
            .map_err(|err| ClientError::Send(err.to_string()))?;
        Ok(())
    }

    /// Starts a run of `workflow` with `input`, checked first; returns its id.
    pub async fn start(
        &self,
        workflow: &str,
        input: &Value,
        started_by: &str,
    ) -> Result<String, ClientError> {
        let spec = self
            .workflows
            .get(workflow)
            .ok_or_else(|| ClientError::UnknownWorkflow(workflow.to_string()))?;
        spec.prepare_input(input).map_err(|err| match err {
            chatgptd_registry::Error::Input { problems, .. } => ClientError::InvalidInput(problems),
            other => ClientError::InvalidInput(vec![other.to_string()]),
        })?;
        let run_id = uuid::Uuid::new_v4().to_string();
        self.send(&start_record(&run_id, workflow, input, started_by))
            .await?;
        Ok(run_id)
    }

    /// A run and its steps.
    pub async fn view(&self, run: &str) -> Result<RunView, ClientError> {
        self.store
            .view(&self.workflows, run)
            .await?
            .ok_or_else(|| ClientError::UnknownRun(run.to_string()))
    }

    /// The runs `query` asks for, newest first.
    pub async fn runs(
        &self,
        query: &crate::list::RunsQuery,
    ) -> Result<crate::list::RunsPage, ClientError> {
        Ok(crate::list::list(&self.store, &self.workflows, query).await?)
    }

    /// Waits up to `timeout` for a run to finish (or to wait for an approval); returns it as
    /// it is then. A run not recorded yet (its start record still on its way) is waited for.
    pub async fn wait(&self, run: &str, timeout: Duration) -> Result<RunView, ClientError> {
        let started = Instant::now();
        let mut pauses = chatgptd_runtime::retry::polling(MAX_POLL);
        loop {
            let view = self.store.view(&self.workflows, run).await?;
            let settled = view.as_ref().is_some_and(|view| {
                view.run.status != RunStatus::Running
                    || view.steps.iter().any(|s| {
                        matches!(
                            s.state.status,
                            StepStatus::WaitingApproval | StepStatus::Waiting
                        )
                    })
            });
            if settled || started.elapsed() >= timeout {
                return view.ok_or_else(|| ClientError::UnknownRun(run.to_string()));
            }
            tokio::time::sleep(pauses.next().unwrap_or(MAX_POLL)).await;
        }
    }

    /// Runs a failed run again from where it stopped; returns the steps sent again.
    ///
    /// That is every step not yet succeeded whose dependencies all have: the failed step,
    /// and also a second failed branch, or a sibling whose record arrived while the run was
    /// failed and was set aside. Sending only the failed step would leave a fan-in waiting
    /// for those forever.
    ///
    /// This is the only way out of `failed`: the engine sets aside step records that find
    /// their run failed, so a failure (a step's, or the dead-letter hook's) stands until then.
    pub async fn resume(&self, run: &str, by: &str) -> Result<Vec<String>, ClientError> {
        let view = self.view(run).await?;
        if view.run.status != RunStatus::Failed {
            return Err(ClientError::Conflict(format!(
                "run {run} is {:?}, not failed",
                view.run.status
            )));
        }
        let succeeded: Vec<&str> = view
            .steps
            .iter()
            .filter(|s| s.state.status == StepStatus::Succeeded)
            .map(|s| s.id.as_str())
            .collect();
        let frontier: Vec<String> = view
            .steps
            .iter()
            .filter(|s| {
                !matches!(
                    s.state.status,
                    StepStatus::Succeeded | StepStatus::WaitingApproval | StepStatus::Waiting
                ) && s.depends_on.iter().all(|d| succeeded.contains(&d.as_str()))
            })
            .map(|s| s.id.clone())
            .collect();
        // Running from now on, so that a wait right after the resume waits for the outcome
        // instead of returning the old failure; put back if the steps cannot be sent.
        let failed = view.run.clone();
        let running = RunState {
            status: RunStatus::Running,
            error: None,
            failed_step: None,
            finished_at_ms: None,
            resumed_by: Some(by.to_string()),
            ..failed.clone()
        };
        self.store.put_run(run, &running).await?;
        for step in &frontier {
            let record = self.step_record(run, &view.run.workflow, step, &view.run.input, "resume");
            if let Err(err) = self.send(&record).await {
                self.store.put_run(run, &failed).await?;
                return Err(err);
            }
        }
        Ok(frontier)
    }

    /// Approves a step held for approval, which then runs.
    pub async fn approve(&self, run: &str, step: &str, by: &str) -> Result<(), ClientError> {
        let view = self.view(run).await?;
        let held = view
            .steps
            .iter()
            .find(|s| s.id == step)
            .ok_or_else(|| ClientError::Conflict(format!("run {run} has no step `{step}`")))?;
        if held.state.status != StepStatus::WaitingApproval {
            return Err(ClientError::Conflict(format!(
                "step {step} is not waiting for approval"
            )));
        }
        self.store.approve(run, step, by).await?;
        // Approved and queued: no longer waiting, so the run reads as running again.
        let queued = crate::state::StepState {
            status: StepStatus::Pending,
            ..held.state.clone()
        };
        self.store.put_step(run, step, &queued).await?;
        let record = self.step_record(run, &view.run.workflow, step, &view.run.input, "execute");
        self.send(&record).await
    }

    fn step_record(
        &self,
        run: &str,
        workflow: &str,
        step: &str,
        input: &Value,
        kind: &str,
    ) -> WorkflowStep {
        let agent = self
            .workflows
            .get(workflow)
            .and_then(|spec| spec.step(step))
            .map(|s| s.agent.clone());
        WorkflowStep {
            run_id: run.to_string(),
            workflow: workflow.to_string(),
            step_id: step.to_string(),
            kind: kind.to_string(),
            agent,
            input_json: input.to_string(),
            attempt: 1,
            requested_at_ms: chatgptd_types::now_ms(),
        }
    }
}
