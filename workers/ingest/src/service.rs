//! The gateway as a process runs it: routes only, no consumer.

use chatgptd_runtime::Service;
use tokio_util::sync::CancellationToken;

use crate::gateway::Ingest;

impl Service for Ingest {
    type Error = crate::Error;
    const NAME: &'static str = "ingest";

    fn routes(&self) -> chatgptd_runtime::http::Routes {
        self.routes()
    }

    /// Nothing runs beside the routes: the gateway stops with the HTTP server, which lets
    /// requests under way (each waiting for the broker's acknowledgement) finish.
    async fn run(self, shutdown: CancellationToken) -> Result<(), Self::Error> {
        shutdown.cancelled().await;
        Ok(())
    }
}
