//! Webhook subscriptions: `POST /subscriptions` names topics or record kinds (optionally of
//! one agent, fleet, run or ticket), a URL and a secret; every matching record is POSTed
//! there as a signed webhook following Standard Webhooks (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature` over `id.timestamp.body`).
//!
//! - [`store`]: the subscriptions, kept on a compacted topic and followed by every replica.
//! - [`deliver`]: matching, signing, and one delivery retried with backoff (honouring
//!   `Retry-After`) until it succeeds or its time is up.
//! - [`routes`]: the HTTP API, scope `admin`.
//!
//! At least once: the worker consumes the subscribable topics in a consumer group, and a
//! record's offset is stored only after every matching subscription has it or dead-lettered
//! it; so a receiver that was down gets its backlog, in order, when it is back. Redelivery
//! after a crash repeats a delivery with the same `webhook-id`, for receivers to dedupe.

pub mod deliver;
mod options;
pub mod routes;
pub mod store;

use std::sync::Arc;

use chatgptd_runtime::{ConsumerRuntime, Service, WorkerContext};
use tokio_util::sync::CancellationToken;

pub use deliver::{Dispatcher, sign};
pub use options::SubscriptionsOptions;
pub use store::Store;

/// The worker's name: in logs, metrics, dead letters and `chatgptd worker subscriptions`.
pub const NAME: &str = "subscriptions";

/// Why the worker could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Runtime(#[from] chatgptd_runtime::Error),
    #[error("subscriptions topic {topic}: {message}")]
    Store { topic: String, message: String },
    #[error("webhook client: {0}")]
    Client(String),
}

/// `chatgptd worker subscriptions`: the store, the deliveries, and `/subscriptions`.
pub struct SubscriptionsService {
    store: Arc<Store>,
    runtime: ConsumerRuntime<Dispatcher>,
}

impl SubscriptionsService {
    /// The worker over `options`, on the process's Kafka.
    pub fn new(options: &SubscriptionsOptions, context: &WorkerContext) -> Result<Self, Error> {
        let store = Arc::new(Store::new(options, context));
        let dispatcher = Dispatcher::new(options, context, Arc::clone(&store))?;
        let mut consumer = options.consumer.clone();
        // A delivery may retry for `dead_letter_after`; the runtime's own timeout must not
        // cut it short (waits between tries do not count toward it).
        let longest = options.dead_letter_after + options.request_timeout * 2;
        consumer.process_timeout = consumer.process_timeout.max(longest);
        let runtime = ConsumerRuntime::new(
            Self::NAME,
            context,
            consumer,
            options.topics.clone(),
            dispatcher,
        )?;
        Ok(SubscriptionsService { store, runtime })
    }
}

impl Service for SubscriptionsService {
    type Error = Error;
    const NAME: &'static str = NAME;

    fn routes(&self) -> chatgptd_runtime::http::Routes {
        routes::router(Arc::clone(&self.store))
    }

    async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        // Deliveries start once every stored subscription is known, so a restart does not
        // skip records for a subscription it had not read yet.
        let follower = self.store.load().await?;
        let following = tokio::task::spawn_blocking({
            let shutdown = shutdown.clone();
            move || follower.follow(&shutdown)
        });
        let result = self.runtime.run(shutdown.clone()).await;
        shutdown.cancel();
        let _ = following.await;
        result.map_err(Error::from)
    }
}
