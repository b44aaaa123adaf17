//! Signals: the first SIGINT or SIGTERM starts a graceful shutdown (drain, commit, exit);
//! a second one exits at once.

use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Exit status after a second signal, as a shell reports a SIGINT.
pub const FORCED_EXIT_CODE: i32 = 130;

/// Cancels `shutdown` on the first signal; exits the process on the second.
pub fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        // Listeners are registered once, before the first signal, so a second signal that
        // arrives while the first is being handled is not missed.
        let mut signals = Signals::new();
        signals.next().await;
        warn!("shutdown requested: finishing in-flight work (signal again to exit at once)");
        shutdown.cancel();
        signals.next().await;
        warn!("second signal: exiting without draining");
        std::process::exit(FORCED_EXIT_CODE);
    });
}

/// SIGINT and SIGTERM (Ctrl-C elsewhere).
struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        {
            let interrupt = async {
                match &mut self.interrupt {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            let terminate = async {
                match &mut self.terminate {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = interrupt => {}
                _ = terminate => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
