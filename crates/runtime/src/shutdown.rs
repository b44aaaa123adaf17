//! Signals: the first SIGINT or SIGTERM starts a graceful shutdown (drain, commit, exit);
//! a second one exits at once.

use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Exit status after a second signal, as a shell reports a SIGINT.
const FORCED_EXIT_CODE: i32 = 130;

/// Cancels `shutdown` on the first signal; exits the process on the second.
pub fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        wait_for_signal().await;
        warn!("shutdown requested: finishing in-flight work (signal again to exit at once)");
        shutdown.cancel();
        wait_for_signal().await;
        warn!("second signal: exiting without draining");
        std::process::exit(FORCED_EXIT_CODE);
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = match signal(SignalKind::terminate()) {
            Ok(terminate) => terminate,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
