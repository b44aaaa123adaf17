//! Wakes the polling thread: librdkafka calls it when a queue it reads goes from empty to
//! non-empty, so the thread can sleep instead of spinning over the partition queues.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// A flag and a condition variable: a notification sent while nobody waits is kept for the
/// next wait, so none is lost between checking the queues and going to sleep.
#[derive(Default)]
pub(crate) struct Wake {
    pending: Mutex<bool>,
    signal: Condvar,
}

impl Wake {
    /// Something may be ready. Called from librdkafka's threads: it must not block long.
    pub fn notify(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if !*pending {
            *pending = true;
            self.signal.notify_one();
        }
    }

    /// Waits until notified or `timeout` passes, and clears the notification.
    pub fn wait(&self, timeout: Duration) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if !*pending {
            pending = self
                .signal
                .wait_timeout(pending, timeout)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *pending = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_notification_before_the_wait_is_not_lost() {
        let wake = Wake::default();
        wake.notify();
        let started = Instant::now();
        wake.wait(Duration::from_secs(10));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_notification_from_another_thread_ends_the_wait() {
        let wake = Arc::new(Wake::default());
        let notifier = wake.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            notifier.notify();
        });
        let started = Instant::now();
        wake.wait(Duration::from_secs(10));
        assert!(started.elapsed() < Duration::from_secs(5));
        thread.join().unwrap();
    }
}
