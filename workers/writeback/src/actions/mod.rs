//! The processor of agents' ticket actions: the once-only steps of one action (see the
//! crate docs), its execution on a tracker, and its answer.

pub(crate) mod action;
mod answer;
pub(crate) mod tracker;

use std::sync::Arc;
use std::time::Duration;

use chatgptd_memory::Memory;
use chatgptd_runtime::{ErrorKind, Incoming, OutputRecord, ProcessError, Processor};
use chatgptd_types::Secrets;
use chatgptd_types::avro::Codec;
use chatgptd_types::records::TicketAction;
use chatgptd_types::topics::names;

use crate::Error;
use crate::github::GitHub;
use crate::jira::Jira;
use crate::options::WritebackOptions;
use crate::secret::Credentials;
use crate::servicenow::ServiceNow;
use crate::source::Source;
use crate::telemetry::{ActionFinished, ActionOutcome};
use crate::tracker::Destination;
use action::{Action, Request};
use answer::{Answer, memory_key};
use tracker::ActionTracker;

/// Executes agents' ticket actions on their trackers, each once, and answers each. Build
/// with [`TicketActions::new`].
#[derive(Debug)]
pub struct TicketActions {
    memory: Arc<dyn Memory>,
    codec: Codec,
    done_ttl: Duration,
    /// The consumer's tries per record: on the last, a retryable failure is answered.
    max_attempts: u32,
    jira: Destination<Jira>,
    servicenow: Destination<ServiceNow>,
    github: Destination<GitHub>,
}

/// An action executed by this try, or found executed by an earlier one.
struct Executed {
    body: String,
    found: bool,
}

impl TicketActions {
    /// The actions' executor, with the trackers, credentials and allow-lists of the
    /// write-back (`options`), and its answers remembered in `memory` for `done_ttl`.
    pub fn new(
        options: &WritebackOptions,
        memory: Arc<dyn Memory>,
        secrets: &Secrets,
    ) -> Result<Self, Error> {
        options.validate()?;
        options.actions_consumer.validate()?;
        let credentials = Credentials::look_up(options, secrets);
        let timeout = options.request_timeout;
        Ok(TicketActions {
            memory,
            codec: Codec::builtin(),
            done_ttl: options.done_ttl,
            max_attempts: options.actions_consumer.max_attempts,
            jira: Destination::build(
                options.jira.enabled,
                credentials.jira_api_token.as_ref(),
                |token| Jira::new(&options.jira, token, timeout),
            )?,
            servicenow: Destination::build(
                options.servicenow.enabled,
                credentials.servicenow_password.as_ref(),
                |password| ServiceNow::new(&options.servicenow, password, timeout),
            )?,
            github: Destination::build(
                options.github.enabled,
                credentials.github_token.as_ref(),
                |token| GitHub::new(&options.github, token, timeout),
            )?,
        })
    }

    /// The steps: (1) an answer in memory → send it again; (2-3) execute (looking first);
    /// (4) remember the answer, then send it. A failure that trying again cannot fix is
    /// answered too, as a refusal, and remembered like a result.
    async fn handle(
        &self,
        incoming: &Incoming<TicketAction>,
    ) -> Result<Vec<OutputRecord>, ProcessError> {
        let record = &incoming.value;
        let finished = |outcome, reason| {
            ActionFinished {
                source: Source::parse(&record.source).map_or("unknown", Source::as_str),
                kind: kind_label(&record.kind),
                action: &record.id,
                outcome,
                reason,
            }
            .emit()
        };
        let key = memory_key(&record.id);
        let stored = self
            .memory
            .get(&key)
            .await
            .map_err(ProcessError::classified)?;
        if let Some(stored) = stored {
            let answer = Answer::decode(&stored, &key)?;
            finished(ActionOutcome::AnsweredAgain, "memory");
            return Ok(vec![self.output(record, &answer)?]);
        }

        let (answer, outcome, reason) = match self.execute(record).await {
            Ok(Executed { body, found: false }) => {
                (Answer::reply(body), ActionOutcome::Done, "new")
            }
            Ok(Executed { body, found: true }) => {
                (Answer::reply(body), ActionOutcome::Found, "tracker")
            }
            Err(error) if error.kind == ErrorKind::Permanent => (
                Answer::refusal(record, &error.message),
                ActionOutcome::Refused,
                error.class,
            ),
            Err(error)
                if error.kind == ErrorKind::Retryable
                    && incoming.meta.attempt >= self.max_attempts =>
            {
                // Dead-lettered, the action would leave its conversation waiting for good.
                let why = format!(
                    "gave up after {} tries: {}",
                    incoming.meta.attempt, error.message
                );
                (
                    Answer::refusal(record, &why),
                    ActionOutcome::Refused,
                    "gave_up",
                )
            }
            Err(error) => {
                finished(ActionOutcome::Failed, error.class);
                return Err(error);
            }
        };
        self.memory
            .put(&key, &answer.encode(), Some(self.done_ttl))
            .await
            .map_err(ProcessError::classified)?;
        finished(outcome, reason);
        Ok(vec![self.output(record, &answer)?])
    }

    async fn execute(&self, record: &TicketAction) -> Result<Executed, ProcessError> {
        let action = Action::parse(record)?;
        match action.source {
            Source::Jira => execute_on(&self.jira, &action).await,
            Source::ServiceNow => execute_on(&self.servicenow, &action).await,
            Source::GitHub => execute_on(&self.github, &action).await,
        }
    }

    fn output(&self, record: &TicketAction, answer: &Answer) -> Result<OutputRecord, ProcessError> {
        let message = answer.message(record);
        OutputRecord::avro(
            &self.codec,
            names::AGENT_MESSAGES,
            message.to.clone().into_bytes(),
            &message,
        )
    }
}

/// Looks, then acts, on one tracker.
async fn execute_on<T: ActionTracker>(
    destination: &Destination<T>,
    action: &Action<'_>,
) -> Result<Executed, ProcessError> {
    let source = action.source.as_str();
    let tracker = match destination {
        Destination::Ready(tracker) => tracker,
        Destination::Disabled => {
            return Err(ProcessError::permanent(
                "disabled",
                format!(
                    "{source} is not enabled (writeback.{source}.enabled); nothing was written"
                ),
            ));
        }
        Destination::NoCredentials => {
            return Err(ProcessError::permanent(
                "no_credentials",
                format!(
                    "{source} has no credential in this worker's environment; nothing was written"
                ),
            ));
        }
    };
    let name = action.target_name();
    let signature = action.signature();
    let marker = &action.marker;
    match &action.request {
        Request::Comment { ticket, text } => {
            let target = tracker.ticket(ticket).await?;
            if tracker.find_marker(&target, marker).await? {
                return Ok(Executed {
                    body: format!(
                        "commented on {name} (found on the ticket, posted by an earlier try)"
                    ),
                    found: true,
                });
            }
            let comment = tracker.comment(&target, text, &signature, marker).await?;
            Ok(Executed {
                body: format!("commented on {name} ({comment})"),
                found: false,
            })
        }
        Request::Create(create) => {
            tracker.check_project(create)?;
            if let Some(existing) = tracker.find_created(create, marker).await? {
                return Ok(Executed {
                    body: format!("created {source}:{existing} (found, created by an earlier try)"),
                    found: true,
                });
            }
            let created = tracker.create(create, &signature, marker).await?;
            Ok(Executed {
                body: format!(
                    "created {source}:{}{}",
                    created.name,
                    created.fields.describe()
                ),
                found: false,
            })
        }
        Request::Update { ticket, changes } => {
            let target = tracker.ticket(ticket).await?;
            let applied = tracker.update(&target, changes).await?;
            if applied.done.is_empty() {
                return Err(ProcessError::permanent(
                    "unsupported",
                    format!(
                        "{source} cannot set any of it: {}; nothing was changed",
                        applied.skipped.join(", ")
                    ),
                ));
            }
            Ok(Executed {
                body: format!("updated {name}{}", applied.describe()),
                found: false,
            })
        }
    }
}

/// The bounded label of an action's kind.
fn kind_label(kind: &str) -> &'static str {
    match kind {
        "comment" => "comment",
        "create" => "create",
        "update" => "update",
        _ => "unknown",
    }
}

impl Processor for TicketActions {
    type Input = TicketAction;

    fn process(
        &self,
        record: &Incoming<TicketAction>,
    ) -> impl std::future::Future<Output = Result<Vec<OutputRecord>, ProcessError>> + Send {
        self.handle(record)
    }

    fn output_topics(&self) -> Vec<String> {
        vec![names::AGENT_MESSAGES.to_string()]
    }
}
