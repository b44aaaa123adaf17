//! Time a record spent waiting rather than working.
//!
//! A record's `process_timeout` guards against a call that hangs, not against a queue: time
//! spent waiting for a rate limiter, a concurrency cap or a provider's `Retry-After` is not
//! work, and counting it would turn a backlog behind a slow limit into timeouts and, after
//! `max_attempts`, into dead letters of healthy records. So the code that waits wraps the
//! wait in [`waiting`], and a [`timeout`] counts only the time its work was not waiting.
//! Timeouts nest (a workflow step's inside its record's): a wait counts for each of them.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

tokio::task_local! {
    static CLOCK: WaitClock;
}

/// The waiting time of one piece of work. Overlapping waits (two calls waiting at once
/// inside it) count once: it is the time during which at least one wait was in progress.
#[derive(Debug, Clone, Default)]
pub struct WaitClock {
    state: Arc<Mutex<State>>,
    /// The clock of the enclosing scope, which every wait here counts for too.
    parent: Option<Box<WaitClock>>,
}

#[derive(Debug, Default)]
struct State {
    /// Waiting time of the waits that ended.
    total: Duration,
    /// Waits in progress.
    active: u32,
    /// When the first of the waits in progress began.
    since: Option<Instant>,
}

impl WaitClock {
    /// A clock nested in the current task's, if it has one.
    pub fn nested() -> Self {
        WaitClock {
            state: Arc::default(),
            parent: CLOCK.try_with(|clock| Box::new(clock.clone())).ok(),
        }
    }

    /// Runs `work` with this clock as the one [`waiting`] reports to.
    pub async fn scope<F: Future>(&self, work: F) -> F::Output {
        CLOCK.scope(self.clone(), work).await
    }

    /// The time spent waiting so far, including a wait still in progress.
    pub fn waited(&self) -> Duration {
        let state = self.lock();
        match state.since {
            Some(since) if state.active > 0 => state.total + since.elapsed(),
            _ => state.total,
        }
    }

    fn begin(&self) {
        {
            let mut state = self.lock();
            if state.active == 0 {
                state.since = Some(Instant::now());
            }
            state.active += 1;
        }
        if let Some(parent) = &self.parent {
            parent.begin();
        }
    }

    fn end(&self) {
        {
            let mut state = self.lock();
            state.active = state.active.saturating_sub(1);
            if state.active == 0
                && let Some(since) = state.since.take()
            {
                state.total += since.elapsed();
            }
        }
        if let Some(parent) = &self.parent {
            parent.end();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Ends a wait when dropped, so a cancelled wait stops counting too.
struct Waiting(WaitClock);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// Awaits `wait`, counting its time as waiting on the current task's clock (if it runs
/// inside [`WaitClock::scope`]; elsewhere this is just `wait.await`).
pub async fn waiting<F: Future>(wait: F) -> F::Output {
    let guard = CLOCK
        .try_with(|clock| {
            clock.begin();
            Waiting(clock.clone())
        })
        .ok();
    let output = wait.await;
    drop(guard);
    output
}

/// A [`timeout`] ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// Runs `work` for at most `limit` of working time: time it spends in [`waiting`] moves the
/// deadline. Dropping the returned future cancels `work`.
pub async fn timeout<F: Future>(limit: Duration, work: F) -> Result<F::Output, Elapsed> {
    let clock = WaitClock::nested();
    let started = tokio::time::Instant::now();
    let work = clock.scope(work);
    tokio::pin!(work);
    let mut deadline = started + limit;
    loop {
        tokio::select! {
            output = &mut work => return Ok(output),
            _ = tokio::time::sleep_until(deadline) => {
                let moved = started + limit + clock.waited();
                if moved <= tokio::time::Instant::now() {
                    return Err(Elapsed);
                }
                deadline = moved;
            }
        }
    }
}

/// Sleeps for `delay`, counted as waiting.
pub async fn sleep(delay: Duration) {
    waiting(tokio::time::sleep(delay)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn counts_waits_once_and_ignores_work() {
        let clock = WaitClock::default();
        clock
            .scope(async {
                tokio::time::sleep(Duration::from_secs(5)).await; // work
                sleep(Duration::from_secs(2)).await;
                // Two overlapping waits of 3 s and 4 s: 4 s of waiting.
                tokio::join!(sleep(Duration::from_secs(3)), sleep(Duration::from_secs(4)));
            })
            .await;
        let waited = clock.waited();
        assert!(
            waited >= Duration::from_secs(6) && waited < Duration::from_millis(6100),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_in_progress_counts_and_outside_a_scope_nothing_does() {
        let clock = WaitClock::default();
        let scoped = clock.clone();
        let task = tokio::spawn(async move {
            scoped.scope(sleep(Duration::from_secs(60))).await;
        });
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(clock.waited() >= Duration::from_secs(10));
        task.abort();
        let _ = task.await;
        let stopped = clock.waited();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(clock.waited(), stopped, "a cancelled wait stops counting");

        // No scope: no clock to report to, and no panic.
        sleep(Duration::from_millis(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn timeouts_count_work_only_and_nest() {
        // 1 s of work around 10 s of waiting fits a 2 s timeout ...
        let result = timeout(Duration::from_secs(2), async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            sleep(Duration::from_secs(10)).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        })
        .await;
        assert_eq!(result, Ok(()));
        // ... 3 s of work does not.
        let result = timeout(Duration::from_secs(2), async {
            sleep(Duration::from_secs(10)).await;
            tokio::time::sleep(Duration::from_secs(3)).await;
        })
        .await;
        assert_eq!(result, Err(Elapsed));
        // A wait inside an inner timeout counts for the outer one too.
        let result = timeout(Duration::from_secs(2), async {
            timeout(Duration::from_secs(2), sleep(Duration::from_secs(30))).await
        })
        .await;
        assert_eq!(result, Ok(Ok(())));
    }
}
