//! The one shape of a worker: built from its `Options` and what the process shares, it runs
//! until shutdown and may serve HTTP routes of its own.
//!
//! The node (`crates/node`) builds every worker of a process the same way, merges their
//! routes into one HTTP server and runs them side by side; a worker never builds another.

use std::future::Future;

use crate::http::Routes;
use tokio_util::sync::CancellationToken;

/// A worker of a process: a consumer, an HTTP gateway, or both.
pub trait Service: Send + Sized + 'static {
    /// Why [`Service::run`] stopped before shutdown.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The worker's name: in logs, metrics, and `chatgptd worker <name>`.
    const NAME: &'static str;

    /// The routes this worker serves (none by default), each declaring the scope it needs.
    /// Called once, before [`Service::run`].
    fn routes(&self) -> Routes {
        Routes::new()
    }

    /// Runs until `shutdown` is cancelled, then drains what is in flight and returns.
    fn run(
        self,
        shutdown: CancellationToken,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}
