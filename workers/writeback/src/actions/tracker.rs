//! What ticket actions need from a tracker, beyond the write-back's [`Tracker`] (whose
//! `find_marker` is the look before commenting). One implementation per tracker, in the
//! tracker's module (`jira/actions.rs`, ...), beside the calls the write-back makes.

use std::future::Future;

use chatgptd_runtime::ProcessError;

use super::action::{Changes, Create};
use crate::note::Marker;
use crate::tracker::Tracker;

/// A tracker agents can act on.
pub(crate) trait ActionTracker: Tracker {
    /// The ticket an action names (a ServiceNow number is looked up). Its project or
    /// repository is checked against the allow-list first, a permanent `target_not_allowed`,
    /// so no call is made about a ticket that is not allowed.
    fn ticket(
        &self,
        ticket: &str,
    ) -> impl Future<Output = Result<Self::Target, ProcessError>> + Send;

    /// Posts `text` as an internal comment where the tracker has them (Jira's internal
    /// flag, ServiceNow's work notes; GitHub's comments are public), ending with `signature`
    /// and `marker`. Returns how to name it: `comment 10021`.
    fn comment(
        &self,
        target: &Self::Target,
        text: &str,
        signature: &str,
        marker: &Marker,
    ) -> impl Future<Output = Result<String, ProcessError>> + Send;

    /// Checks where a create goes against the allow-list (permanent `target_not_allowed`),
    /// or that it names a place at all (permanent `invalid_action`).
    fn check_project(&self, create: &Create<'_>) -> Result<(), ProcessError>;

    /// Looks before creating: the ticket (as the tracker names it) an earlier try created
    /// with `marker` in its description, if any.
    fn find_created(
        &self,
        create: &Create<'_>,
        marker: &Marker,
    ) -> impl Future<Output = Result<Option<String>, ProcessError>> + Send;

    /// Creates the ticket, `signature` and `marker` ending its description.
    fn create(
        &self,
        create: &Create<'_>,
        signature: &str,
        marker: &Marker,
    ) -> impl Future<Output = Result<Created, ProcessError>> + Send;

    /// Sets what the tracker supports of `changes` (labels are added, none removed); setting
    /// the same values twice changes nothing, so an update needs no look before acting.
    fn update(
        &self,
        target: &Self::Target,
        changes: &Changes<'_>,
    ) -> impl Future<Output = Result<Applied, ProcessError>> + Send;
}

/// A new ticket: its name on the tracker (`OPS-13`, `acme/app#57`, `INC0010024`), and the
/// fields it was given and could not take.
#[derive(Debug)]
pub(crate) struct Created {
    pub name: String,
    pub fields: Applied,
}

/// What an action set (`priority high`, `labels [vpn]`), and what the tracker could not
/// take, with why.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    pub done: Vec<String>,
    pub skipped: Vec<String>,
}

/// `labels [a, b]`.
pub(crate) fn labels_text(labels: &[String]) -> String {
    format!("labels [{}]", labels.join(", "))
}

impl Applied {
    /// `: priority high, labels [vpn]; skipped: labels (...)`, or nothing.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        if !self.done.is_empty() {
            text.push_str(&format!(": {}", self.done.join(", ")));
        }
        if !self.skipped.is_empty() {
            text.push_str(&format!("; skipped: {}", self.skipped.join(", ")));
        }
        text
    }
}
