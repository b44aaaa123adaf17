//! The engine: `start`, `execute` and `resume` records of `workflows.steps`.
//!
//! The `Engine` and its dispatch live here; `step` sends one step to its agent, `result`
//! takes the agent's answer back, `run` moves a run between states, `records` builds what is
//! emitted, and `service` wraps it all in a worker.

mod records;
mod result;
mod run;
mod service;
mod step;

use std::future::Future;
use std::sync::Arc;

use chatgptd_memory::Memory;
use chatgptd_registry::{Registry, Workflows};
use chatgptd_runtime::{Incoming, OutputRecord, ProcessError, Processor, RecordMeta};
use chatgptd_types::avro::Codec;
use chatgptd_types::records::WorkflowStep;
use tracing::warn;

pub use records::start_record;
pub use service::WorkflowsService;

use crate::options::WorkflowsOptions;
use crate::state::{RunStatus, RunStore};

/// Runs steps.
pub struct Engine {
    workflows: Arc<Workflows>,
    registry: Arc<Registry>,
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
        memory: Arc<dyn Memory>,
    ) -> Self {
        let store = RunStore::new(memory, options.run_ttl);
        Engine {
            workflows,
            registry,
            store,
            options,
            codec: Codec::builtin(),
        }
    }

    /// Encodes with `codec` (the process's, from its worker context) instead of the built-in.
    fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
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
            chatgptd_fleet::step::RESULT_KIND => self.result(incoming, spec).await,
            other => Err(ProcessError::permanent(
                "unknown_step_kind",
                format!("step kind `{other}`"),
            )),
        }
    }
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
            self.options.agents_topic.clone(),
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

/// The step `step_id` of `spec`; a record naming a step the workflow does not have is
/// permanent (it will never have it).
fn step_of<'a>(
    spec: &'a chatgptd_registry::WorkflowSpec,
    step_id: &str,
) -> Result<&'a chatgptd_registry::StepSpec, ProcessError> {
    spec.step(step_id).ok_or_else(|| {
        ProcessError::permanent(
            "unknown_step",
            format!("workflow {} has no step `{step_id}`", spec.name),
        )
    })
}
