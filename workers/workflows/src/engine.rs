//! The engine: `start`, `execute` and `resume` records of `workflows.steps`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chatgptd_agents::workflow::Approval;
use chatgptd_agents::{Registry, StepSpec, WorkflowSpec, Workflows};
use chatgptd_memory::Memory;
use chatgptd_model::{Classify, ErrorKind};
use chatgptd_runtime::{
    ConsumerRuntime, Incoming, OutputRecord, ProcessError, Processor, RecordMeta, WorkerContext,
};
use chatgptd_types::avro::Codec;
use chatgptd_types::records::{MemoryRecord, WorkflowStep};
use chatgptd_types::waiting;
use chatgptd_worker_agents::{Brain, BrainContext};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::options::WorkflowsOptions;
use crate::state::{RunState, RunStatus, RunStore, StepState, StepStatus};
use crate::trigger::Trigger;

/// Metric names.
pub mod metric {
    /// Runs finished, by `workflow` and `status` (succeeded, failed).
    pub const RUNS: &str = "chatgptd_workflow_runs_total";
    /// Step attempts, by `workflow`, `step` and `outcome` (succeeded, failed, retried).
    pub const STEP_ATTEMPTS: &str = "chatgptd_workflow_step_attempts_total";
}

/// A `start` record: begins run `run_id` of `workflow` with `input`. `started_by` says who
/// (`api`, `cli`, `ticket:<source>:<id>`); it travels in `step_id`, unused by start records.
pub fn start_record(run_id: &str, workflow: &str, input: &Value, started_by: &str) -> WorkflowStep {
    WorkflowStep {
        run_id: run_id.to_string(),
        workflow: workflow.to_string(),
        step_id: started_by.to_string(),
        kind: "start".into(),
        agent: None,
        input_json: input.to_string(),
        attempt: 1,
        requested_at_ms: chatgptd_types::now_ms(),
    }
}

/// Runs steps.
pub struct Engine {
    workflows: Arc<Workflows>,
    registry: Arc<Registry>,
    brain: Brain,
    store: RunStore,
    options: WorkflowsOptions,
    codec: Codec,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("workflows", &self.workflows.list().len())
            .finish()
    }
}

impl Engine {
    /// An engine running `workflows` with the agents of `registry`.
    pub fn new(
        options: WorkflowsOptions,
        workflows: Arc<Workflows>,
        registry: Arc<Registry>,
        brain: Brain,
        memory: Arc<dyn Memory>,
    ) -> Self {
        let store = RunStore::new(memory, options.run_ttl);
        Engine {
            workflows,
            registry,
            brain,
            store,
            options,
            codec: Codec::builtin(),
        }
    }

    async fn handle(
        &self,
        incoming: &Incoming<WorkflowStep>,
    ) -> Result<Vec<OutputRecord>, ProcessError> {
        let record = &incoming.value;
        let Some(spec) = self.workflows.get(&record.workflow) else {
            return Err(ProcessError::permanent(
                "unknown_workflow",
                format!("no workflow `{}`", record.workflow),
            ));
        };
        match record.kind.as_str() {
            "start" => self.start(record, spec).await,
            "execute" => self.execute(incoming, spec, false).await,
            "resume" => self.execute(incoming, spec, true).await,
            other => Err(ProcessError::permanent(
                "unknown_step_kind",
                format!("step kind `{other}`"),
            )),
        }
    }

    /// Records the run and emits its root steps. A redelivered start changes nothing.
    async fn start(
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
            (Some(state), _) => state.input.clone(),
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
                };
                self.store
                    .put_run(run, &state)
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
                };
                self.store
                    .put_run(run, &state)
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

    fn step_record(
        &self,
        run: &str,
        spec: &WorkflowSpec,
        step: &StepSpec,
        input: &Value,
    ) -> Result<OutputRecord, ProcessError> {
        let record = WorkflowStep {
            run_id: run.to_string(),
            workflow: spec.name.clone(),
            step_id: step.id.clone(),
            kind: "execute".into(),
            agent: Some(step.agent.clone()),
            input_json: input.to_string(),
            attempt: 1,
            requested_at_ms: chatgptd_types::now_ms(),
        };
        OutputRecord::avro(&self.codec, &self.options.topic, run.to_string(), &record)
    }

    async fn execute(
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
                    metrics::counter!(metric::STEP_ATTEMPTS, "workflow" => spec.name.clone(), "step" => step_id.clone(), "outcome" => "succeeded").increment(1);
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
                    break;
                }
                Ok(Err(err)) => format!("{}: {err}", err.class()),
                Err(_) => format!(
                    "timed out after {}",
                    humantime::format_duration(step.timeout)
                ),
            };
            metrics::counter!(metric::STEP_ATTEMPTS, "workflow" => spec.name.clone(), "step" => step_id.clone(), "outcome" => "retried").increment(1);
            warn!(run = %run_id, step = %step_id, attempt, max_attempts, error = %error, "step attempt failed");
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

    /// Fails the step and its run with `error`.
    async fn fail(
        &self,
        run_id: &str,
        run: &mut RunState,
        step: &StepSpec,
        attempts: u32,
        error: String,
    ) -> Result<Vec<OutputRecord>, ProcessError> {
        let failed = StepState {
            status: StepStatus::Failed,
            attempts,
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
        metrics::counter!(metric::RUNS, "workflow" => run.workflow.clone(), "status" => "failed")
            .increment(1);
        warn!(run = %run_id, step = %step.id, %error, "run failed");
        Ok(Vec::new())
    }

    /// What follows a finished step: its dependents (a fan-in once all its dependencies
    /// finished), or, for a final step, the run's success once every final step finished.
    /// Idempotent, so a redelivered step emits what it emitted before and nothing more.
    async fn after(
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
                metrics::counter!(metric::RUNS, "workflow" => spec.name.clone(), "status" => "succeeded").increment(1);
                info!(run = %run_id, workflow = %spec.name, "run succeeded");
            }
        }
        Ok(records)
    }

    /// The step's result as memory of the run.
    fn remember(
        &self,
        incoming: &Incoming<WorkflowStep>,
        spec: &WorkflowSpec,
        step: &StepSpec,
        state: &StepState,
    ) -> Result<OutputRecord, ProcessError> {
        let run_id = &incoming.value.run_id;
        let record = MemoryRecord {
            id: format!("step:{run_id}:{}", step.id),
            owner: format!("run:{run_id}"),
            kind: "step_result".into(),
            text: state.output.clone().unwrap_or_default(),
            tags: vec![spec.name.clone()],
            created_at_ms: chatgptd_types::now_ms(),
            source_topic: incoming.meta.topic.clone(),
            source_partition: incoming.meta.partition,
            source_offset: incoming.meta.offset,
            attributes: BTreeMap::from([
                ("workflow".to_string(), spec.name.clone()),
                ("step".to_string(), step.id.clone()),
                ("agent".to_string(), step.agent.clone()),
            ]),
        };
        OutputRecord::avro(
            &self.codec,
            &self.options.memory_topic,
            record.owner.clone(),
            &record,
        )
    }
}

/// A step state with nothing recorded yet.
fn pending(step: &StepSpec) -> StepState {
    StepState::pending(&step.agent)
}

/// How long a claim holds a step: every attempt with its timeout and the waits between, and
/// a margin. A worker that dies holding it delays only duplicated records of the step.
fn claim_ttl(step: &StepSpec) -> Duration {
    attempts_budget(step) + Duration::from_secs(60)
}

/// The longest a step's attempts can take: each with its timeout, and the waits between.
fn attempts_budget(step: &StepSpec) -> Duration {
    let attempts = step.retry.max_attempts.max(1);
    let waits: Duration = (1..=attempts)
        .map(|attempt| step.retry.delay_before(attempt))
        .sum();
    step.timeout.saturating_mul(attempts) + waits
}

/// Every attempt of a step runs within one record's processing, so a step whose attempts
/// can outlast the consumer's `process_timeout` would be cut off and started over with the
/// model called again. Refused at start, naming the step.
fn check_step_budgets(
    workflows: &Workflows,
    process_timeout: Duration,
) -> Result<(), chatgptd_runtime::Error> {
    for spec in workflows.list() {
        for step in &spec.steps {
            let attempts = step.retry.max_attempts.max(1);
            let needed = attempts_budget(step);
            if needed >= process_timeout {
                return Err(chatgptd_runtime::Error::Config(format!(
                    "workflow {} step {}: its {attempts} attempt(s) can take {} (timeout, retries \
                     and backoff), not within workflows.consumer.process_timeout ({}); lower the \
                     step's timeout or max_attempts, or raise process_timeout",
                    spec.name,
                    step.id,
                    humantime::format_duration(needed),
                    humantime::format_duration(process_timeout)
                )));
            }
        }
    }
    Ok(())
}

impl Processor for Engine {
    type Input = WorkflowStep;

    fn process(
        &self,
        record: &Incoming<WorkflowStep>,
    ) -> impl Future<Output = Result<Vec<OutputRecord>, ProcessError>> + Send {
        self.handle(record)
    }

    fn output_topics(&self) -> Vec<String> {
        vec![
            self.options.topic.clone(),
            self.options.memory_topic.clone(),
        ]
    }

    /// A run's steps share a key (and a partition) but are independent records: a step is
    /// emitted only once what it needs is done, so parallel branches may run concurrently.
    fn ordered_by_key(&self) -> bool {
        false
    }

    /// A step record of a run (the key) went to the dead-letter topic: that step will not
    /// run, so the run cannot finish. It is failed, naming where the letter came from, so
    /// that it does not read as running forever; it can be resumed once the cause is fixed.
    fn dead_lettered(&self, meta: &RecordMeta) {
        let Some(run_id) = meta
            .key
            .as_deref()
            .and_then(|key| std::str::from_utf8(key).ok())
            .map(str::to_string)
        else {
            return;
        };
        let store = self.store.clone();
        let location = format!("{}[{}]@{}", meta.topic, meta.partition, meta.offset);
        // Best effort, after the letter is safe: at worst the run reads as running, as a
        // run whose step never arrives would.
        tokio::spawn(async move {
            let Ok(Some(mut run)) = store.run(&run_id).await else {
                return;
            };
            if run.status != RunStatus::Running {
                return;
            }
            run.status = RunStatus::Failed;
            run.error = Some(format!(
                "a step record ({location}) was dead-lettered; see the dead-letter topic, fix \
                 the cause, then resume the run"
            ));
            run.finished_at_ms = Some(chatgptd_types::now_ms());
            if let Err(err) = store.put_run(&run_id, &run).await {
                warn!(run = %run_id, %err, "could not mark the run failed after a dead letter");
            }
        });
    }
}

/// The workflow worker: the engine, and the trigger consumer that starts runs from events.
pub struct WorkflowsService {
    engine: ConsumerRuntime<Engine>,
    triggers: Option<ConsumerRuntime<Trigger>>,
}

impl WorkflowsService {
    /// The worker for `chatgptd worker workflows` (and `up`).
    pub fn new(
        options: &WorkflowsOptions,
        context: &WorkerContext,
        workflows: Arc<Workflows>,
        registry: Arc<Registry>,
        brain: Brain,
        memory: Arc<dyn Memory>,
    ) -> Result<Self, chatgptd_runtime::Error> {
        check_step_budgets(&workflows, options.consumer.process_timeout)?;
        let engine = Engine::new(options.clone(), workflows.clone(), registry, brain, memory);
        let engine = ConsumerRuntime::new(
            "workflows",
            context,
            options.consumer.clone(),
            vec![options.topic.clone()],
            engine,
        )?;
        let triggers = if options.triggers && workflows.list().iter().any(|w| w.trigger.is_some()) {
            let trigger = Trigger::new(workflows, options.topic.clone());
            Some(ConsumerRuntime::new(
                "workflow-triggers",
                context,
                options.trigger_consumer.clone(),
                vec![options.trigger_topic.clone()],
                trigger,
            )?)
        } else {
            None
        };
        Ok(WorkflowsService { engine, triggers })
    }

    /// Runs steps (and starts triggered runs) until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), chatgptd_runtime::Error> {
        let triggers = self
            .triggers
            .map(|triggers| tokio::spawn(triggers.run(shutdown.clone())));
        let result = self.engine.run(shutdown).await;
        if let Some(triggers) = triggers {
            match triggers.await {
                Ok(Err(err)) => warn!(%err, "trigger consumer failed"),
                Err(err) => warn!(%err, "trigger consumer panicked"),
                Ok(Ok(())) => {}
            }
        }
        result
    }
}
