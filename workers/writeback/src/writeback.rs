//! The processor: the idempotency steps of one record's write-back (see the crate docs).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chatgptd_memory::Memory;
use chatgptd_runtime::{Incoming, OutputRecord, ProcessError, Processor};
use chatgptd_types::Secrets;
use chatgptd_types::records::EnrichedTicket;
use tracing::{info, warn};

use crate::Error;
use crate::github::GitHub;
use crate::jira::Jira;
use crate::note::{Marker, ReplyMode, TriageNote};
use crate::options::WritebackOptions;
use crate::secret::{Credentials, Secret};
use crate::servicenow::ServiceNow;
use crate::source::Source;
use crate::telemetry::{Outcome, WriteFinished};
use crate::tracker::{Destination, Tracker};

/// Writes enriched tickets back to their trackers, at most one comment per ticket and prompt
/// version. Build with [`Writeback::new`].
#[derive(Debug)]
pub struct Writeback {
    memory: Arc<dyn Memory>,
    done_ttl: Duration,
    jira: Destination<Jira>,
    servicenow: Destination<ServiceNow>,
    github: Destination<GitHub>,
}

impl Writeback {
    /// A write-back whose enabled sources each take their credential from `secrets`, under
    /// the name their options give (`api_token_env`, `password_env`, `token_env`). An
    /// enabled source whose secret is unset or blank is skipped (with a warning now, and a
    /// log and a metric per record).
    pub fn new(
        options: &WritebackOptions,
        memory: Arc<dyn Memory>,
        secrets: &Secrets,
    ) -> Result<Self, Error> {
        options.validate()?;
        let credentials = Credentials::look_up(options, secrets);
        let timeout = options.request_timeout;
        let jira = destination(
            Source::Jira,
            options.jira.enabled,
            credentials.jira_api_token.as_ref(),
            &options.jira.api_token_env,
            |token| Jira::new(&options.jira, token, timeout),
        )?;
        let servicenow = destination(
            Source::ServiceNow,
            options.servicenow.enabled,
            credentials.servicenow_password.as_ref(),
            &options.servicenow.password_env,
            |password| ServiceNow::new(&options.servicenow, password, timeout),
        )?;
        let github = destination(
            Source::GitHub,
            options.github.enabled,
            credentials.github_token.as_ref(),
            &options.github.token_env,
            |token| GitHub::new(&options.github, token, timeout),
        )?;
        Ok(Writeback {
            memory,
            done_ttl: options.done_ttl,
            jira,
            servicenow,
            github,
        })
    }

    /// Writes one record back, or says why it was not.
    async fn write(&self, ticket: &EnrichedTicket) -> Result<Vec<OutputRecord>, ProcessError> {
        match Source::parse(&ticket.source) {
            Some(Source::Jira) => self.write_to(&self.jira, ticket).await,
            Some(Source::ServiceNow) => self.write_to(&self.servicenow, ticket).await,
            Some(Source::GitHub) => self.write_to(&self.github, ticket).await,
            None => {
                finished("unknown", ticket, Outcome::Skipped, "unknown_source");
                Ok(Vec::new())
            }
        }
    }

    async fn write_to<T: Tracker>(
        &self,
        destination: &Destination<T>,
        ticket: &EnrichedTicket,
    ) -> Result<Vec<OutputRecord>, ProcessError> {
        let source = T::SOURCE.as_str();
        let tracker = match destination {
            Destination::Ready(tracker) => tracker,
            Destination::Disabled => {
                finished(source, ticket, Outcome::Skipped, "disabled");
                return Ok(Vec::new());
            }
            Destination::NoCredentials => {
                finished(source, ticket, Outcome::Skipped, "no_credentials");
                return Ok(Vec::new());
            }
        };
        match self.write_once(tracker, ticket).await {
            Ok((outcome, reason)) => {
                finished(source, ticket, outcome, reason);
                // Nothing to produce: the runtime stores the offset once this returns.
                Ok(Vec::new())
            }
            Err(error) => {
                finished(source, ticket, Outcome::Failed, error.class);
                Err(error)
            }
        }
    }

    /// The steps: (1) the memory says done → nothing to do; (2) look for the marker on the
    /// tracker; (3) post unless found, add labels; (4) record done in memory. Only then is
    /// the record acknowledged.
    async fn write_once<T: Tracker>(
        &self,
        tracker: &T,
        ticket: &EnrichedTicket,
    ) -> Result<(Outcome, &'static str), ProcessError> {
        let target = tracker.target(ticket)?;
        let ticket_ref = T::ticket_ref(&target);
        let marker = Marker::new(T::SOURCE, &ticket_ref, &ticket.provenance.prompt_version);
        let key = marker.memory_key();

        if self
            .memory
            .get(&key)
            .await
            .map_err(ProcessError::classified)?
            .is_some()
        {
            return Ok((Outcome::AlreadyPosted, "memory"));
        }
        let found = tracker.find_marker(&target, &marker).await?;
        if !found {
            let reply = if tracker.post_replies() {
                ReplyMode::Posted
            } else {
                ReplyMode::Draft
            };
            let note = TriageNote {
                ticket,
                reply,
                marker: &marker,
            };
            tracker.post(&target, &note).await?;
        }
        // Labels are added on every try that gets here: adding is idempotent, and a try that
        // found the comment may be one whose predecessor crashed before the labels.
        tracker.add_labels(&target, &ticket.labels).await?;

        let done = serde_json::json!({
            "state": "done",
            "comment": if found { "found" } else { "posted" },
            "at_ms": chatgptd_types::now_ms(),
        });
        self.memory
            .put(&key, done.to_string().as_bytes(), Some(self.done_ttl))
            .await
            .map_err(ProcessError::classified)?;
        Ok(if found {
            (Outcome::AlreadyPosted, "tracker")
        } else {
            (Outcome::Posted, "new")
        })
    }
}

impl Processor for Writeback {
    type Input = EnrichedTicket;

    fn process(
        &self,
        record: &Incoming<EnrichedTicket>,
    ) -> impl Future<Output = Result<Vec<OutputRecord>, ProcessError>> + Send {
        self.write(&record.value)
    }
}

/// Builds a source's tracker, or says why its records will be skipped.
fn destination<T>(
    source: Source,
    enabled: bool,
    secret: Option<&Secret>,
    variable: &str,
    build: impl FnOnce(&Secret) -> Result<T, Error>,
) -> Result<Destination<T>, Error> {
    let destination = Destination::build(enabled, secret, build)?;
    let source = source.as_str();
    match destination {
        Destination::Disabled => info!(
            source,
            "write-back disabled: records from this source are skipped"
        ),
        Destination::Ready(_) => info!(source, "write-back enabled"),
        Destination::NoCredentials => warn!(
            source,
            variable,
            "write-back enabled but its credential variable is unset: records from this source are skipped"
        ),
    }
    Ok(destination)
}

fn finished(source: &'static str, ticket: &EnrichedTicket, outcome: Outcome, reason: &'static str) {
    let name = if ticket.ticket_key.is_empty() {
        &ticket.ticket_id
    } else {
        &ticket.ticket_key
    };
    WriteFinished {
        source,
        ticket: name,
        outcome,
        reason,
    }
    .emit();
}
