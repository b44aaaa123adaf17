//! The enrichment worker as a process runs it: [`Enrich`] on its consumer group.

use chatgptd_model::{ModelClient, PromptError};
use chatgptd_runtime::{ConsumerRuntime, Service, WorkerContext};
use chatgptd_search::Retriever;
use tokio_util::sync::CancellationToken;

use crate::worker::{Enrich, EnrichOptions};

/// Why the enrichment worker cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the enrichment prompt: {0}")]
    Prompt(#[from] PromptError),
    #[error(transparent)]
    Runtime(#[from] chatgptd_runtime::Error),
}

/// `chatgptd worker enrich`: TicketEvents through the model into EnrichedTickets.
pub struct EnrichService {
    runtime: ConsumerRuntime<Enrich>,
}

impl EnrichService {
    /// The worker over `options.topic`, thinking with `model` and finding related past
    /// tickets through `related`.
    pub fn new(
        options: &EnrichOptions,
        context: &WorkerContext,
        model: ModelClient,
        related: Retriever,
    ) -> Result<Self, Error> {
        let enrich =
            Enrich::new(options.clone(), model, related)?.with_codec(context.codec.clone());
        let runtime = ConsumerRuntime::new(
            Self::NAME,
            context,
            options.consumer.clone(),
            vec![options.topic.clone()],
            enrich,
        )?;
        Ok(EnrichService { runtime })
    }
}

impl Service for EnrichService {
    type Error = chatgptd_runtime::Error;
    const NAME: &'static str = "enrich";

    async fn run(self, shutdown: CancellationToken) -> Result<(), Self::Error> {
        self.runtime.run(shutdown).await
    }
}
