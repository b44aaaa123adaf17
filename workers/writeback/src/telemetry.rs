//! Telemetry of the write-back worker: metric names, and one typed event per thing worth
//! counting whose `emit()` logs and counts together. Labels are bounded: `source` is one of
//! three trackers (or `unknown`), the others come from fixed sets. Never ids or error text.
//!
//! Log messages are lowercase with no trailing period, as in the runtime.

use std::time::Duration;

use tracing::{debug, info, warn};

/// Metric names, one place.
pub mod metric {
    /// Write-backs by `source`, `outcome` (`posted`, `already_posted`, `skipped`, `failed`)
    /// and `reason`: for `already_posted` where the earlier write was found (`memory`,
    /// `tracker`); for `skipped` why (`disabled`, `no_credentials`, `unknown_source`); for
    /// `failed` the error class; `new` for `posted`.
    pub const WRITES: &str = "chatgptd_writeback_writes_total";

    /// Agents' ticket actions by `source` (or `unknown`), `kind` (`comment`, `create`,
    /// `update`, `unknown`), `outcome` (`done`, `found`, `answered_again`, `refused`,
    /// `failed`) and `reason`: `new` for `done`; `tracker` for `found` (an earlier try's
    /// effect found on the tracker); `memory` for `answered_again`; for `refused` and
    /// `failed` the error class (`target_not_allowed`, `tracker_rejected`, `gave_up`, ...).
    pub const ACTIONS: &str = "chatgptd_writeback_actions_total";

    /// HTTP requests to trackers, by `source` and `status` (`2xx`, `3xx`, `401`, `403`,
    /// `404`, `429`, `4xx`, `5xx`, `timeout`, `connect`, `error`).
    pub const TRACKER_REQUESTS: &str = "chatgptd_writeback_tracker_requests_total";

    /// The waits trackers asked for with `Retry-After` (or GitHub's rate-limit reset), in
    /// seconds, by `source`.
    pub const RETRY_AFTER_SECONDS: &str = "chatgptd_writeback_retry_after_seconds";
}

/// How one record's write-back ended (this try).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The comment was posted by this try.
    Posted,
    /// An earlier try had posted it: nothing posted again.
    AlreadyPosted,
    /// Nothing to do for this source: acknowledged without a call.
    Skipped,
    /// The try failed; the runtime retries or dead-letters the record.
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Posted => "posted",
            Outcome::AlreadyPosted => "already_posted",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
        }
    }
}

/// A record's write-back ended.
#[derive(Debug)]
pub(crate) struct WriteFinished<'a> {
    pub source: &'static str,
    /// The ticket as the tracker names it, for the log only.
    pub ticket: &'a str,
    pub outcome: Outcome,
    pub reason: &'static str,
}

impl WriteFinished<'_> {
    pub(crate) fn emit(&self) {
        let (source, ticket, reason) = (self.source, self.ticket, self.reason);
        match self.outcome {
            Outcome::Posted => info!(source, ticket, "triage note posted"),
            Outcome::AlreadyPosted => {
                info!(
                    source,
                    ticket,
                    found_in = reason,
                    "triage note already posted"
                )
            }
            Outcome::Skipped => info!(source, ticket, reason, "write-back skipped"),
            // The runtime logs the error itself, with its message and attempt.
            Outcome::Failed => debug!(source, ticket, error_class = reason, "write-back failed"),
        }
        metrics::counter!(
            metric::WRITES,
            "source" => source,
            "outcome" => self.outcome.as_str(),
            "reason" => reason
        )
        .increment(1);
    }
}

/// How one try of an agent's ticket action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActionOutcome {
    /// Executed by this try, and answered.
    Done,
    /// An earlier try's effect was on the tracker: not done again, answered.
    Found,
    /// Settled before: the stored answer sent again, no tracker call.
    AnsweredAgain,
    /// Cannot be done for good: answered with a refusal.
    Refused,
    /// The try failed; the runtime tries again.
    Failed,
}

impl ActionOutcome {
    fn as_str(self) -> &'static str {
        match self {
            ActionOutcome::Done => "done",
            ActionOutcome::Found => "found",
            ActionOutcome::AnsweredAgain => "answered_again",
            ActionOutcome::Refused => "refused",
            ActionOutcome::Failed => "failed",
        }
    }
}

/// A try of an agent's ticket action ended.
#[derive(Debug)]
pub(crate) struct ActionFinished<'a> {
    pub source: &'static str,
    pub kind: &'static str,
    /// The action id, for the log only.
    pub action: &'a str,
    pub outcome: ActionOutcome,
    pub reason: &'static str,
}

impl ActionFinished<'_> {
    pub(crate) fn emit(&self) {
        let (source, kind, action, reason) = (self.source, self.kind, self.action, self.reason);
        match self.outcome {
            ActionOutcome::Done => info!(source, kind, action, "ticket action done"),
            ActionOutcome::Found => {
                info!(
                    source,
                    kind, action, "ticket action found done by an earlier try"
                )
            }
            ActionOutcome::AnsweredAgain => {
                info!(
                    source,
                    kind, action, "ticket action settled before: answered again"
                )
            }
            ActionOutcome::Refused => warn!(source, kind, action, reason, "ticket action refused"),
            // The runtime logs the error itself, with its message and attempt.
            ActionOutcome::Failed => {
                debug!(
                    source,
                    kind,
                    action,
                    error_class = reason,
                    "ticket action failed"
                )
            }
        }
        metrics::counter!(
            metric::ACTIONS,
            "source" => source,
            "kind" => kind,
            "outcome" => self.outcome.as_str(),
            "reason" => reason
        )
        .increment(1);
    }
}

/// One HTTP request to a tracker got an answer (or none).
#[derive(Debug)]
pub(crate) struct TrackerRequest {
    pub source: &'static str,
    pub status: &'static str,
}

impl TrackerRequest {
    pub(crate) fn emit(&self) {
        metrics::counter!(metric::TRACKER_REQUESTS, "source" => self.source, "status" => self.status)
            .increment(1);
    }

    /// The bounded label of an HTTP status.
    pub(crate) fn status_label(status: u16) -> &'static str {
        match status {
            200..=299 => "2xx",
            300..=399 => "3xx",
            401 => "401",
            403 => "403",
            404 => "404",
            429 => "429",
            400..=499 => "4xx",
            _ => "5xx",
        }
    }
}

/// A tracker asked us to wait before trying again.
#[derive(Debug)]
pub(crate) struct RetryAfterRequested {
    pub source: &'static str,
    pub wait: Duration,
}

impl RetryAfterRequested {
    pub(crate) fn emit(&self) {
        warn!(source = self.source, wait = ?self.wait, "tracker rate limited: retrying after its wait");
        metrics::histogram!(metric::RETRY_AFTER_SECONDS, "source" => self.source)
            .record(self.wait.as_secs_f64());
    }
}
