//! The write-back worker (`chatgptd worker writeback`): each [`EnrichedTicket`] on
//! `tickets.enriched` becomes one triage comment on the ticket it came from, plus labels.
//!
//! - **Jira** (REST v3): a comment as an ADF document, labels through an issue edit.
//! - **ServiceNow** (Table API): a `work_notes` entry on the incident.
//! - **GitHub**: an issue comment and labels.
//!
//! # What is posted
//!
//! An internal triage note: category, suggested priority, sentiment, language, confidence,
//! labels, related tickets, the summary, and a footer with the model, prompt version and
//! request id. Customer-visible replies are drafted, not posted, unless the source's
//! `post_replies` says otherwise:
//!
//! | source | `post_replies = false` (default) | `post_replies = true` |
//! |---|---|---|
//! | Jira | the note with the reply marked DRAFT, flagged internal for Service Management | the reply, then the note |
//! | ServiceNow | the note with the DRAFT reply in `work_notes` (private) | the note in `work_notes`, the reply in `comments` |
//! | GitHub (public) | the note only, no reply | the reply, then the note |
//!
//! # One comment per ticket and prompt version
//!
//! A record may be processed more than once: redelivered after a rebalance, retried after
//! an error, or replayed after a crash that came after posting but before the offset was
//! committed. Each write is identified by `<source>:<ticket>:<prompt_version>`, and goes
//! through these steps:
//!
//! 1. **Memory**: `writeback:<source>:<ticket>:<prompt_version>` present → done before;
//!    acknowledge without calling the tracker.
//! 2. **Look before posting**: list the ticket's comments on the tracker and search them
//!    for the marker `chatgptd:<source>:<ticket>:<prompt_version>`, which every comment we
//!    post carries (Jira: a final grey paragraph `[chatgptd:...]`; ServiceNow: a final line
//!    `[chatgptd:...]`; GitHub: an HTML comment `<!-- chatgptd:... -->`). Found → an
//!    earlier try posted it and did not get to step 4; do not post again.
//! 3. **Post** the comment (unless found), then add the labels (idempotent by nature, so
//!    they are added on every try that gets here).
//! 4. **Remember**: put the memory key (`done_ttl`, 90 days by default). Only then does
//!    `process` return, and only then does the runtime store the offset.
//!
//! A crash (or a failed memory write, or a failed label call) between 3 and 4 leaves the
//! comment on the tracker and no memory key: the next try finds the marker in step 2. A crash
//! before 3 posted nothing. What remains is two tries of one record running at once: the
//! runtime runs a key's records one after another on the one member that owns the
//! partition, so only a record abandoned in flight at a rebalance (past `drain_timeout`)
//! and redelivered to another member before it finishes could post twice. How each tracker
//! is searched is in its module (`jira`, `servicenow`, `github`).
//!
//! # Errors
//!
//! See `http.rs` for the table. In short: 429 (and 503 or GitHub's 403 with `Retry-After`) is
//! retried after the tracker's wait; 5xx, timeouts and connection errors are retried; both
//! are dead-lettered once `consumer.max_attempts` runs out. 401 stalls the worker (a bad
//! credential is every record's problem); 403, 404, 400 and other 4xx dead-letter the record
//! at once, with the tracker's answer in the message. An unreachable memory backend stalls
//! the worker. A source that is disabled or has no credential is skipped, not an error.
//!
//! # Where it writes
//!
//! Only to the Jira projects and GitHub repositories its options list (`projects`,
//! `repositories`; `["*"]` for any; required when the source is enabled). A record about any
//! other target is dead-lettered at once as `target_not_allowed`, before any tracker call:
//! a forged webhook must not make the bot comment, with its token, wherever it names.
//! ServiceNow writes to its one `instance_url` and needs no list.
//!
//!
//! # Agents' ticket actions
//!
//! The role runs a second service, [`TicketActionsService`] (`ticket-actions`, consumer
//! group `chatgptd-ticket-actions`), over `actions_topic` (`tickets.actions`): each
//! [`TicketAction`] is an agent's call of `write_ticket_comment`, `create_ticket` or
//! `update_ticket` that its policy allowed (or a person approved), produced by the agent
//! worker, whose conversation waits for the answer. The same trackers, credentials and
//! allow-lists as the write-back; the same error classes. Each action is executed once:
//!
//! 1. **Memory**: `ticket-action:<id>` holds the answer → the action was settled before;
//!    send that answer again, call nothing.
//! 2. **Look before acting**: a comment is looked for on the ticket, as the triage note is,
//!    by its marker `chatgptd-action:<id>`; a created ticket by the marker in its
//!    description (Jira's JQL `text ~`, GitHub's newest issues, ServiceNow's
//!    `descriptionLIKE`). Found → an earlier try acted and did not get to step 4. An update
//!    sets values, so doing it twice changes nothing, and it is not looked for.
//! 3. **Act**: a comment (internal where the tracker has internal comments: Jira's internal
//!    flag, ServiceNow's work notes; GitHub's are public), a new issue or incident (title,
//!    description, priority, labels, assignee), or an update (priority, status, labels
//!    added, assignee). What a tracker cannot take is skipped and said in the answer.
//! 4. **Remember, then answer**: the answer is stored under the key (`done_ttl`), then
//!    produced to `agents.messages`, keyed by the agent: an [`AgentMessage`] from
//!    `writeback` to the record's `reply_to`, `correlation_id` = the action id (how the
//!    waiting conversation finds it), `in_reply_to` = the record's `message_id`, kind `reply`
//!    with what was done (`commented on jira:OPS-12 (comment 10021)`,
//!    `created github:acme/app#57`, `updated servicenow:INC0010023: priority high`).
//!
//! An action that cannot be done for good is answered, never dropped and never said done:
//! kind `refusal`, saying why (an invalid record, a target not on the allow-list, a source
//! disabled or without its credential, a tracker's 4xx, a status no transition reaches). So
//! is a retryable failure (5xx, timeouts) on the consumer's last try, which would otherwise
//! dead-letter the record and leave the conversation waiting. A refusal is remembered like a
//! result: the conversation was told, and a redelivery must not act after all. 401s, rate
//! limits and an unreachable memory stall as in the write-back. The steps leave the same
//! narrow gaps: two tries of one action running at once (see above), and Jira's search
//! index, which lags a create by seconds.
//!
//! [`EnrichedTicket`]: chatgptd_types::records::EnrichedTicket
//! [`TicketAction`]: chatgptd_types::records::TicketAction
//! [`AgentMessage`]: chatgptd_types::records::AgentMessage

mod actions;
mod allow;
mod error;
mod github;
mod http;
mod jira;
mod note;
mod options;
mod secret;
mod servicenow;
mod source;
pub mod telemetry;
mod tracker;
mod writeback;

use chatgptd_runtime::{ConsumerRuntime, Service, WorkerContext};
use tokio_util::sync::CancellationToken;

pub use actions::TicketActions;
pub use error::Error;
pub use options::{GitHubOptions, JiraOptions, ServiceNowOptions, WritebackOptions};
pub use telemetry::metric;
pub use writeback::Writeback;

/// The worker's name: in logs and metrics, and its default consumer group
/// (`chatgptd-writeback`).
pub const WORKER_NAME: &str = "writeback";

/// `chatgptd worker writeback`: a [`Writeback`] on its consumer group over `options.topic`.
pub struct WritebackService {
    runtime: ConsumerRuntime<Writeback>,
}

impl WritebackService {
    /// The worker over `options.topic`, writing back through `writeback`.
    pub fn new(
        options: &WritebackOptions,
        context: &WorkerContext,
        writeback: Writeback,
    ) -> Result<Self, Error> {
        let runtime = ConsumerRuntime::new(
            WORKER_NAME,
            context,
            options.consumer.clone(),
            vec![options.topic.clone()],
            writeback,
        )?;
        Ok(WritebackService { runtime })
    }
}

impl Service for WritebackService {
    type Error = chatgptd_runtime::Error;
    const NAME: &'static str = WORKER_NAME;

    async fn run(self, shutdown: CancellationToken) -> Result<(), Self::Error> {
        self.runtime.run(shutdown).await
    }
}

/// The ticket actions' name: in logs and metrics, and their default consumer group
/// (`chatgptd-ticket-actions`). The `writeback` role runs them beside the write-back.
pub const ACTIONS_WORKER_NAME: &str = "ticket-actions";

/// Agents' ticket actions: a [`TicketActions`] on its own consumer group over
/// `options.actions_topic`.
pub struct TicketActionsService {
    runtime: ConsumerRuntime<TicketActions>,
}

impl TicketActionsService {
    /// The service over `options.actions_topic`, executing through `actions`.
    pub fn new(
        options: &WritebackOptions,
        context: &WorkerContext,
        actions: TicketActions,
    ) -> Result<Self, Error> {
        let runtime = ConsumerRuntime::new(
            ACTIONS_WORKER_NAME,
            context,
            options.actions_consumer.clone(),
            vec![options.actions_topic.clone()],
            actions,
        )?;
        Ok(TicketActionsService { runtime })
    }
}

impl Service for TicketActionsService {
    type Error = chatgptd_runtime::Error;
    const NAME: &'static str = ACTIONS_WORKER_NAME;

    async fn run(self, shutdown: CancellationToken) -> Result<(), Self::Error> {
        self.runtime.run(shutdown).await
    }
}
