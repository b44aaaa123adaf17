//! What the write-back needs from a tracker; one implementation per source.

use std::future::Future;

use chatgptd_runtime::ProcessError;
use chatgptd_types::records::EnrichedTicket;

use crate::Error;
use crate::note::{Marker, TriageNote};
use crate::secret::Secret;
use crate::source::Source;

/// One tracker's API, for the write-back steps in `writeback.rs`.
pub(crate) trait Tracker: Send + Sync + 'static {
    /// Where on the tracker a ticket lives (an issue id, a `sys_id`, a repository and number).
    type Target: Send + Sync;

    /// The source this tracker serves.
    const SOURCE: Source;

    /// The ticket the record names; a permanent `invalid_ticket` error when it names none,
    /// and a permanent `target_not_allowed` when its project or repository is not listed
    /// (see `allow.rs`): checked here, so no tracker call precedes it.
    fn target(&self, ticket: &EnrichedTicket) -> Result<Self::Target, ProcessError>;

    /// The ticket as the marker and the memory key name it: unique within the source.
    fn ticket_ref(target: &Self::Target) -> String;

    /// Whether replies are posted rather than drafted.
    fn post_replies(&self) -> bool;

    /// Looks before posting: whether a comment carrying `marker` is already on the ticket.
    fn find_marker(
        &self,
        target: &Self::Target,
        marker: &Marker,
    ) -> impl Future<Output = Result<bool, ProcessError>> + Send;

    /// Posts the note.
    fn post(
        &self,
        target: &Self::Target,
        note: &TriageNote<'_>,
    ) -> impl Future<Output = Result<(), ProcessError>> + Send;

    /// Adds the labels (idempotent: adding a label twice leaves one), if this tracker and
    /// its options take labels.
    fn add_labels(
        &self,
        target: &Self::Target,
        labels: &[String],
    ) -> impl Future<Output = Result<(), ProcessError>> + Send;
}

/// The error for a 2xx listing that is not what the API documents (a proxy's login page, an
/// ACL hiding the field): searching it would find nothing and post again, so the try fails
/// instead, loudly, and is retried.
pub(crate) fn malformed(source: Source, what: &str) -> ProcessError {
    ProcessError::retryable(
        "tracker_malformed",
        format!(
            "{} {what}: the answer is not the documented JSON",
            source.as_str()
        ),
    )
}

/// The error for a record whose ticket reference does not fit its tracker.
pub(crate) fn invalid_ticket(source: Source, detail: impl std::fmt::Display) -> ProcessError {
    ProcessError::permanent(
        "invalid_ticket",
        format!("{}: the record names no ticket: {detail}", source.as_str()),
    )
}

/// Whether a source can be written to.
#[derive(Debug)]
pub(crate) enum Destination<T> {
    Disabled,
    NoCredentials,
    Ready(T),
}

impl<T> Destination<T> {
    /// The tracker, built when its source is enabled and has its credential.
    pub(crate) fn build(
        enabled: bool,
        secret: Option<&Secret>,
        build: impl FnOnce(&Secret) -> Result<T, Error>,
    ) -> Result<Self, Error> {
        Ok(match (enabled, secret) {
            (false, _) => Destination::Disabled,
            (true, None) => Destination::NoCredentials,
            (true, Some(secret)) => Destination::Ready(build(secret)?),
        })
    }
}
