//! The workflow worker, and the check at start that every step's attempts fit a record's
//! processing time.

use std::sync::Arc;
use std::time::Duration;

use chatgptd_memory::Memory;
use chatgptd_registry::{Registry, StepSpec, Workflows};
use chatgptd_runtime::{ConsumerRuntime, Service, WorkerContext};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::Engine;
use crate::client::WorkflowsClient;
use crate::options::WorkflowsOptions;
use crate::state::RunStore;
use crate::trigger::Trigger;

/// The workflow worker: the engine, and the trigger consumer that starts runs from events.
pub struct WorkflowsService {
    engine: ConsumerRuntime<Engine>,
    triggers: Option<ConsumerRuntime<Trigger>>,
    /// Starts, reads and approves runs for `/workflows` and `/runs`.
    client: WorkflowsClient,
}

impl WorkflowsService {
    /// The worker for `chatgptd worker workflows` (and `up`).
    pub fn new(
        options: &WorkflowsOptions,
        context: &WorkerContext,
        workflows: Arc<Workflows>,
        registry: Arc<Registry>,
        memory: Arc<dyn Memory>,
    ) -> Result<Self, chatgptd_runtime::Error> {
        check_step_budgets(&workflows, options.consumer.process_timeout)?;
        let client = WorkflowsClient::new(
            context.producer.clone(),
            RunStore::new(memory.clone(), options.run_ttl),
            workflows.clone(),
            &options.topic,
        );
        let engine = Engine::new(options.clone(), workflows.clone(), registry, memory)
            .with_codec(context.codec.clone());
        let engine = ConsumerRuntime::new(
            Self::NAME,
            context,
            options.consumer.clone(),
            vec![options.topic.clone()],
            engine,
        )?;
        let triggers = if options.triggers && workflows.list().iter().any(|w| w.trigger.is_some()) {
            let trigger = Trigger::new(workflows, options.topic.clone(), context.codec.clone());
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
        Ok(WorkflowsService {
            engine,
            triggers,
            client,
        })
    }
}

impl Service for WorkflowsService {
    type Error = chatgptd_runtime::Error;
    const NAME: &'static str = "workflows";

    fn routes(&self) -> chatgptd_runtime::http::Routes {
        crate::routes::router(self.client.clone())
    }

    /// Runs steps (and starts triggered runs) until `shutdown`.
    async fn run(self, shutdown: CancellationToken) -> Result<(), chatgptd_runtime::Error> {
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

/// The longest a step's attempts can take: each with its timeout, and the waits between.
pub(super) fn attempts_budget(step: &StepSpec) -> Duration {
    let attempts = step.retry.max_attempts.max(1);
    let waits: Duration = (1..=attempts)
        .map(|attempt| step.retry.delay_before(attempt))
        .sum();
    step.timeout.saturating_mul(attempts) + waits
}

/// A step whose attempts (each turn bounded by its timeout, and the backoff between) could
/// outlast the consumer's `process_timeout` is refused at start, naming the step: its
/// declared budget is out of proportion with what this deployment lets one record take.
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
