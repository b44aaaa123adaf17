//! Runs and steps in the memory backend: what the engine records and the API shows.
//!
//! Keys (all under the run, expiring `run_ttl` after their last write): `workflow-run:<id>`
//! (state), `workflow-run:<id>:step:<step>` (state), `...:version` (the counter versioning
//! those states, so the latest write wins), `...:join:<step>` (the dependencies of a fan-in
//! that finished), `...:leaves` (the final steps that finished), `...:claim:<step>` (who runs
//! a step now), `...:approved:<step>`.
//!
//! `workflow-runs` and `workflow-runs:<workflow>` index the runs by start time, newest first
//! (`GET /runs`); each keeps at most `RUN_INDEX_CAP` runs and none started longer than
//! `run_ttl` ago (their states are gone by then), trimmed as runs are added.
//!
//! Not `run:<id>`: that is the memory owner of a run's step results, whose latest state the
//! memory writer keeps.

use std::sync::Arc;
use std::time::Duration;

use chatgptd_fleet::StepCall;
use chatgptd_memory::{IndexBounds, IndexEntry, Memory, StateEntry};
use chatgptd_registry::Workflows;
use chatgptd_types::records::{ApprovalRequest, ApprovalState};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
}

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not reached yet.
    Pending,
    /// Sent to its agent, who works on it.
    Running,
    /// Held until a person approves it.
    WaitingApproval,
    /// Its agent's conversation waits for a person to decide an action it proposed
    /// (`approvals` names them). Shown, never stored: the approvals are the record.
    Waiting,
    Succeeded,
    Failed,
}

/// A run's recorded state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub workflow: String,
    pub status: RunStatus,
    pub input: Value,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub error: Option<String>,
    pub failed_step: Option<String>,
    /// What started it: `api:<token name>`, `cli`, `ticket:<source>:<id>`...
    pub started_by: String,
    /// Who last resumed it after a failure: the API token's name, or `cli`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_by: Option<String>,
}

/// A step's recorded state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepState {
    pub status: StepStatus,
    pub agent: String,
    /// Attempts in the current round (a resume starts a new round).
    pub attempts: u32,
    /// How many times the step was sent to its agent, over every attempt and resume: attempt
    /// n's message id derives from run, step and n.
    #[serde(default)]
    pub sent: u32,
    /// The rendered input sent to the agent.
    pub input: Option<String>,
    pub output: Option<String>,
    pub error: Option<String>,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
}

impl StepState {
    /// A step nothing happened to yet, run by `agent`.
    pub fn pending(agent: &str) -> StepState {
        StepState {
            status: StepStatus::Pending,
            agent: agent.to_string(),
            attempts: 0,
            sent: 0,
            input: None,
            output: None,
            error: None,
            started_at_ms: None,
            finished_at_ms: None,
        }
    }
}

/// A run as the API and the CLI show it, and as a client of the API reads it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    pub run_id: String,
    #[serde(flatten)]
    pub run: RunState,
    pub steps: Vec<StepView>,
}

/// A step as the API and the CLI show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepView {
    pub id: String,
    pub depends_on: Vec<String>,
    pub approval_required: bool,
    /// Who approved it (a held step): the API token's name, or `cli`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// The pending approvals its agent's conversation waits for (status `waiting`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<String>,
    #[serde(flatten)]
    pub state: StepState,
}

/// The runs in the memory backend.
#[derive(Debug, Clone)]
pub struct RunStore {
    memory: Arc<dyn Memory>,
    ttl: Duration,
}

type Result<T> = std::result::Result<T, chatgptd_memory::Error>;

/// The prefix of every key of a run.
const RUN: &str = "workflow-run";
/// The index of every run by start time; `<RUN_INDEX>:<workflow>` holds one workflow's.
const RUN_INDEX: &str = "workflow-runs";
/// The most runs an index keeps: enough for a busy day's runs, bounded whatever the rate.
pub const RUN_INDEX_CAP: usize = 10_000;

impl RunStore {
    /// Runs in `memory`, kept `ttl` after their last change.
    pub fn new(memory: Arc<dyn Memory>, ttl: Duration) -> Self {
        RunStore { memory, ttl }
    }

    async fn next_version(&self, run: &str) -> Result<i64> {
        self.memory
            .incr(&format!("{RUN}:{run}:version"), 1, Some(self.ttl))
            .await
    }

    async fn read<T: serde::de::DeserializeOwned>(&self, owner: &str) -> Result<Option<T>> {
        Ok(self
            .memory
            .state(owner)
            .await?
            .and_then(|state| serde_json::from_value(state.value).ok()))
    }

    async fn write<T: Serialize>(&self, run: &str, owner: &str, value: &T) -> Result<()> {
        let version = self.next_version(run).await?;
        let value = serde_json::to_value(value)
            .map_err(|err| chatgptd_memory::Error::Backend(err.to_string()))?;
        self.memory
            .put_state(owner, &StateEntry { version, value }, Some(self.ttl))
            .await
            .map(|_| ())
    }

    /// The run's state.
    pub async fn run(&self, run: &str) -> Result<Option<RunState>> {
        self.read(&format!("{RUN}:{run}")).await
    }

    /// Records the run's state.
    pub async fn put_run(&self, run: &str, state: &RunState) -> Result<()> {
        self.write(run, &format!("{RUN}:{run}"), state).await
    }

    /// Lists the run in the indexes of runs (all, and its workflow's) at its start time. A
    /// run already listed stays where it is, so a redelivered start lists it once.
    pub async fn index_run(&self, run: &str, workflow: &str, started_at_ms: i64) -> Result<()> {
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let bounds = IndexBounds {
            cap: RUN_INDEX_CAP,
            min_score: Some(chatgptd_types::now_ms().saturating_sub(ttl_ms)),
        };
        for key in [RUN_INDEX.to_string(), format!("{RUN_INDEX}:{workflow}")] {
            self.memory
                .index_add(&key, run, started_at_ms, bounds)
                .await?;
        }
        Ok(())
    }

    /// A page of the runs index (of `workflow`'s runs if given), newest first, after `after`.
    pub async fn runs_page(
        &self,
        workflow: Option<&str>,
        after: Option<&IndexEntry>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>> {
        let key = match workflow {
            Some(workflow) => format!("{RUN_INDEX}:{workflow}"),
            None => RUN_INDEX.to_string(),
        };
        self.memory.index_page(&key, after, limit).await
    }

    /// A step's state.
    pub async fn step(&self, run: &str, step: &str) -> Result<Option<StepState>> {
        self.read(&format!("{RUN}:{run}:step:{step}")).await
    }

    /// Records a step's state.
    pub async fn put_step(&self, run: &str, step: &str, state: &StepState) -> Result<()> {
        self.write(run, &format!("{RUN}:{run}:step:{step}"), state)
            .await
    }

    /// Claims a step for `token` (the step record's position): true if it is free, or held by
    /// the same token (a redelivery of the same record after a crash takes over).
    pub async fn claim(&self, run: &str, step: &str, token: &str, ttl: Duration) -> Result<bool> {
        let key = format!("{RUN}:{run}:claim:{step}");
        if self
            .memory
            .put_if_absent(&key, token.as_bytes(), Some(ttl))
            .await?
        {
            return Ok(true);
        }
        Ok(self.memory.get(&key).await?.as_deref() == Some(token.as_bytes()))
    }

    /// Frees a step's claim (after a failed run, so `resume` can claim it at once).
    pub async fn release(&self, run: &str, step: &str) -> Result<()> {
        self.memory
            .delete(&format!("{RUN}:{run}:claim:{step}"))
            .await
    }

    /// Approves a held step.
    pub async fn approve(&self, run: &str, step: &str, by: &str) -> Result<()> {
        self.memory
            .put(
                &format!("{RUN}:{run}:approved:{step}"),
                by.as_bytes(),
                Some(self.ttl),
            )
            .await
    }

    /// Who approved a held step, if someone did (`approved` for approvals recorded before
    /// approvers were).
    pub async fn approved_by(&self, run: &str, step: &str) -> Result<Option<String>> {
        let value = self
            .memory
            .get(&format!("{RUN}:{run}:approved:{step}"))
            .await?;
        Ok(value.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Whether a held step was approved.
    pub async fn approved(&self, run: &str, step: &str) -> Result<bool> {
        Ok(self
            .memory
            .get(&format!("{RUN}:{run}:approved:{step}"))
            .await?
            .is_some())
    }

    /// Counts `member` among the finished dependencies of the fan-in `step`; returns how many
    /// finished. Atomic and idempotent, so concurrent and redelivered branches count once.
    pub async fn join(&self, run: &str, step: &str, member: &str) -> Result<usize> {
        self.memory
            .join(&format!("{RUN}:{run}:join:{step}"), member, Some(self.ttl))
            .await
    }

    /// Counts `step` among the finished final steps; returns how many finished.
    pub async fn leaf_done(&self, run: &str, step: &str) -> Result<usize> {
        self.memory
            .join(&format!("{RUN}:{run}:leaves"), step, Some(self.ttl))
            .await
    }

    /// The approvals nobody decided yet, of every agent.
    pub(crate) async fn pending_approvals(&self) -> Result<Vec<ApprovalRequest>> {
        let approvals = chatgptd_actions::Approvals::new(self.memory.clone(), self.ttl);
        let pending = ApprovalState::Pending.as_str();
        approvals
            .list(Some(pending))
            .await
            .map_err(|err| match err {
                chatgptd_actions::Error::Memory(err) => err,
                other => chatgptd_memory::Error::Backend(other.to_string()),
            })
    }

    /// A run with each of its steps, in the workflow's order, or `None` if unknown.
    pub async fn view(&self, workflows: &Workflows, run: &str) -> Result<Option<RunView>> {
        self.view_with(workflows, run, &mut None).await
    }

    /// [`view`](Self::view) with the pending approvals read at most once into `pending`,
    /// for a caller that views many runs.
    pub(crate) async fn view_with(
        &self,
        workflows: &Workflows,
        run: &str,
        pending: &mut Option<Vec<ApprovalRequest>>,
    ) -> Result<Option<RunView>> {
        let Some(state) = self.run(run).await? else {
            return Ok(None);
        };
        let mut steps = Vec::new();
        if let Some(spec) = workflows.get(&state.workflow) {
            for step in spec.topological_order() {
                let mut recorded = self.step(run, &step.id).await?;
                let mut approvals = Vec::new();
                if let Some(working) = recorded
                    .as_mut()
                    .filter(|s| s.status == StepStatus::Running && s.sent > 0)
                {
                    if pending.is_none() {
                        *pending = Some(self.pending_approvals().await?);
                    }
                    let message = StepCall {
                        workflow: spec.name.clone(),
                        run: run.to_string(),
                        step: step.id.clone(),
                        attempt: working.sent,
                    }
                    .message_id();
                    approvals = pending
                        .iter()
                        .flatten()
                        .filter(|approval| approval.message_id == message)
                        .map(|approval| approval.id.clone())
                        .collect();
                    if !approvals.is_empty() {
                        working.status = StepStatus::Waiting;
                    }
                }
                let approval_required =
                    step.approval == chatgptd_registry::workflow::Approval::Required;
                let approved_by = if approval_required {
                    self.approved_by(run, &step.id).await?
                } else {
                    None
                };
                steps.push(StepView {
                    id: step.id.clone(),
                    depends_on: step.depends_on.clone(),
                    approval_required,
                    approved_by,
                    approvals,
                    state: recorded.unwrap_or_else(|| StepState::pending(&step.agent)),
                });
            }
        }
        Ok(Some(RunView {
            run_id: run.to_string(),
            run: state,
            steps,
        }))
    }
}
