//! The executors of the catalogue: what an allowed (or approved) call does.
//!
//! Effects inside chatgptd are records (messages to agents, escalations, workflow starts)
//! whose ids derive from the action's id, so producing them again on a redelivery produces
//! the same records, which their consumers take once. An action with nothing to execute it
//! here is refused with the reason, never reported done. An action the catalogue gives an
//! `executor` runs through it instead (`http.rs`, `github.rs`).

use chatgptd_actions::{ActionId, Outcome, WaitOn};
use chatgptd_registry::Executor;
use chatgptd_runtime::{OutputRecord, ProcessError};
use chatgptd_search::retrieve::Retrieval;
use chatgptd_types::records::{AgentMessage, Escalation, TicketAction, WorkflowStep};
use serde_json::Value;

use super::Conversation;
use crate::worker::AgentWorker;

/// What executing a call started.
pub(crate) enum Started {
    /// It is done (or failed, or could not run): the outcome.
    Now(Outcome),
    /// It waits for what it sent.
    Waiting(WaitOn),
}

/// The default and the most memory hits `search_memory` returns.
const SEARCH_DEFAULT: usize = 5;
const SEARCH_MAX: usize = 20;

impl AgentWorker {
    /// Executes `action` with schema-valid `arguments` for `cx`; its records go to `outputs`.
    pub(super) async fn execute(
        &self,
        cx: &Conversation<'_>,
        id: &ActionId,
        action: &str,
        arguments: &Value,
        outputs: &mut Vec<OutputRecord>,
    ) -> Result<Started, ProcessError> {
        // A declared executor first: a catalogue entry can give any action one.
        let executor = self
            .registry()
            .action(action)
            .and_then(|spec| spec.executor.clone());
        match executor {
            Some(Executor::Http(call)) => {
                return self.execute_http(cx, id, action, &call, arguments).await;
            }
            Some(Executor::Github(call)) => {
                return self.execute_github(id, action, &call, arguments).await;
            }
            Some(Executor::Mcp { server, tool }) => {
                return self
                    .call_mcp(id, &cx.origin, &server, &tool, arguments)
                    .await;
            }
            None => {}
        }
        let text = |name: &str| arguments.get(name).and_then(Value::as_str).unwrap_or("");
        match action {
            "search_memory" => Ok(Started::Now(
                self.search_memory(text("query"), arguments).await,
            )),
            "message_agent" => self.message_agent(cx, id, text("agent"), text("message"), outputs),
            "broadcast_fleet" => {
                self.broadcast_fleet(cx, id, text("fleet"), text("message"), outputs)
            }
            "escalate_to_human" => {
                let escalation = Escalation {
                    id: id.to_string(),
                    conversation_id: cx.message.conversation_id.clone(),
                    agent: cx.agent.id.clone(),
                    summary: text("summary").to_string(),
                    severity: arguments
                        .get("severity")
                        .and_then(Value::as_str)
                        .unwrap_or("medium")
                        .to_string(),
                    ticket: ticket_of(cx.message),
                    message_id: cx.message.id.clone(),
                    at_ms: chatgptd_types::now_ms(),
                };
                outputs.push(self.output(
                    &self.options.escalations_topic,
                    escalation.conversation_id.clone(),
                    &escalation,
                )?);
                Ok(Started::Now(Outcome::done(format!(
                    "escalated to the on-duty people as {} (severity {})",
                    escalation.id, escalation.severity
                ))))
            }
            "start_workflow" => self.start_workflow(cx, id, text("workflow"), arguments, outputs),
            "write_ticket_comment" | "create_ticket" | "update_ticket" => {
                self.ticket_action(cx, id, action, arguments, outputs)
            }
            _ => Ok(Started::Now(Outcome::refused(format!(
                "`{action}` has no executor in this deployment; nothing was done"
            )))),
        }
    }

    async fn search_memory(&self, query: &str, arguments: &Value) -> Outcome {
        let limit = arguments
            .get("limit")
            .and_then(Value::as_u64)
            .map_or(SEARCH_DEFAULT, |n| (n as usize).clamp(1, SEARCH_MAX));
        let retrieval = Retrieval {
            max_hits: limit,
            max_tokens: self.options.memory_tokens.max(200) * 4,
            ..Retrieval::default()
        };
        let hits = self.retriever.find(query, &retrieval).await;
        if hits.is_empty() {
            return Outcome::done(format!("no memory matches `{query}`"));
        }
        let lines: Vec<String> = hits
            .iter()
            .map(|hit| {
                format!(
                    "- [{} of {}] {}",
                    hit.kind,
                    hit.owner,
                    hit.text.replace('\n', " ")
                )
            })
            .collect();
        Outcome::done(lines.join("\n"))
    }

    fn message_agent(
        &self,
        cx: &Conversation<'_>,
        id: &ActionId,
        to: &str,
        body: &str,
        outputs: &mut Vec<OutputRecord>,
    ) -> Result<Started, ProcessError> {
        let registry = self.registry();
        let target = registry.get(to).filter(|agent| agent.is_enabled());
        let Some(target) = target else {
            return Ok(Started::Now(Outcome::Failed {
                error: format!("there is no enabled agent `{to}`"),
            }));
        };
        if target.id == cx.agent.id {
            return Ok(Started::Now(Outcome::Failed {
                error: "an agent cannot message itself".to_string(),
            }));
        }
        let request = ask(cx, id, &target.id, body);
        outputs.push(self.output(&self.options.topic, target.id.clone(), &request)?);
        Ok(Started::Waiting(WaitOn::Replies {
            from: vec![target.id.clone()],
        }))
    }

    fn broadcast_fleet(
        &self,
        cx: &Conversation<'_>,
        id: &ActionId,
        fleet: &str,
        body: &str,
        outputs: &mut Vec<OutputRecord>,
    ) -> Result<Started, ProcessError> {
        let agents: Vec<String> = self
            .registry()
            .fleet(fleet)
            .into_iter()
            .filter(|agent| agent.id != cx.agent.id)
            .map(|agent| agent.id.clone())
            .collect();
        if agents.is_empty() {
            return Ok(Started::Now(Outcome::Failed {
                error: format!("fleet `{fleet}` has no other enabled agent"),
            }));
        }
        for agent in &agents {
            outputs.push(self.output(
                &self.options.topic,
                agent.clone(),
                &ask(cx, id, agent, body),
            )?);
        }
        Ok(Started::Waiting(WaitOn::Replies { from: agents }))
    }

    fn start_workflow(
        &self,
        cx: &Conversation<'_>,
        id: &ActionId,
        workflow: &str,
        arguments: &Value,
        outputs: &mut Vec<OutputRecord>,
    ) -> Result<Started, ProcessError> {
        let Some(workflows) = &self.act.workflows else {
            return Ok(Started::Now(Outcome::refused(
                "no workflow definitions are loaded in the agent worker; nothing was started",
            )));
        };
        let Some(spec) = workflows.get(workflow) else {
            return Ok(Started::Now(Outcome::Failed {
                error: format!("there is no workflow `{workflow}`"),
            }));
        };
        let input = arguments.get("input").cloned().unwrap_or(Value::Null);
        if let Err(err) = spec.prepare_input(&input) {
            return Ok(Started::Now(Outcome::Failed {
                error: format!("workflow `{workflow}` refused the input: {err}"),
            }));
        }
        // The run's id derives from the action, so a redelivery starts the same run.
        let run_id =
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, id.as_str().as_bytes()).to_string();
        let start = WorkflowStep {
            run_id: run_id.clone(),
            workflow: spec.name.clone(),
            step_id: format!("agent:{}", cx.agent.id),
            kind: "start".into(),
            agent: None,
            input_json: input.to_string(),
            attempt: 1,
            requested_at_ms: chatgptd_types::now_ms(),
        };
        outputs.push(self.output(&self.options.workflows_topic, run_id.clone(), &start)?);
        Ok(Started::Now(Outcome::done(format!(
            "started run {run_id} of workflow `{}`",
            spec.name
        ))))
    }
}

impl AgentWorker {
    /// Hands a ticket action to the write-back worker, which holds the tracker clients and
    /// their allow-lists, acts once, and replies; the conversation waits for that reply.
    fn ticket_action(
        &self,
        cx: &Conversation<'_>,
        id: &ActionId,
        action: &str,
        arguments: &Value,
        outputs: &mut Vec<OutputRecord>,
    ) -> Result<Started, ProcessError> {
        let text = |name: &str| {
            arguments
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let (kind, target) = if action == "create_ticket" {
            let Some((source, project)) = self.options.create_tickets_in.split_once(':') else {
                return Ok(Started::Now(Outcome::refused(
                    "no tracker is configured for new tickets (agents.create_tickets_in); nothing was created",
                )));
            };
            (
                "create",
                (source.to_string(), None, Some(project.to_string())),
            )
        } else {
            let named = text("ticket").or_else(|| ticket_of(cx.message));
            let Some((source, ticket)) = named.as_deref().and_then(|t| t.split_once(':')) else {
                return Ok(Started::Now(Outcome::Failed {
                    error: "no ticket named, and the conversation is not about one: pass `ticket` as <source>:<id>".to_string(),
                }));
            };
            let kind = if action == "write_ticket_comment" {
                "comment"
            } else {
                "update"
            };
            (kind, (source.to_string(), Some(ticket.to_string()), None))
        };
        let (source, ticket, project) = target;
        if !matches!(source.as_str(), "jira" | "servicenow" | "github") {
            return Ok(Started::Now(Outcome::Failed {
                error: format!(
                    "`{source}` is not a tracker chatgptd writes to (jira, servicenow, github)"
                ),
            }));
        }
        let key = format!("{source}:{}", ticket.as_deref().unwrap_or("new"));
        let request = TicketAction {
            id: id.to_string(),
            conversation_id: cx.message.conversation_id.clone(),
            message_id: cx.message.id.clone(),
            agent: cx.agent.id.clone(),
            kind: kind.to_string(),
            source,
            ticket,
            project,
            body: text("body").or_else(|| text("description")),
            title: text("title"),
            priority: text("priority"),
            status: text("status"),
            labels: arguments
                .get("labels")
                .and_then(Value::as_array)
                .map(|labels| {
                    labels
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            assignee: text("assignee"),
            reply_to: cx.agent.id.clone(),
            requested_at_ms: chatgptd_types::now_ms(),
        };
        outputs.push(self.output(&self.options.ticket_actions_topic, key, &request)?);
        Ok(Started::Waiting(WaitOn::Replies {
            from: vec![WRITEBACK.to_string()],
        }))
    }
}

/// Who answers ticket actions: the write-back worker signs its replies so.
const WRITEBACK: &str = "writeback";

/// A request from `cx`'s agent to `to`, as part of action `id`: its replies come back to the
/// agent carrying the action's id as their correlation id.
fn ask(cx: &Conversation<'_>, id: &ActionId, to: &str, body: &str) -> AgentMessage {
    let mut path = cx.message.path.clone();
    path.push(cx.agent.id.clone());
    AgentMessage {
        id: format!("{id}:{to}"),
        conversation_id: cx.message.conversation_id.clone(),
        correlation_id: id.to_string(),
        from: cx.agent.id.clone(),
        to: to.to_string(),
        kind: "request".into(),
        body: body.to_string(),
        reply_to: Some(cx.agent.id.clone()),
        in_reply_to: Some(cx.message.id.clone()),
        hop_count: cx.message.hop_count + 1,
        // The recipient's own budget applies.
        token_budget: 0,
        path,
        sent_at_ms: chatgptd_types::now_ms(),
        provenance: None,
    }
}

/// The ticket a conversation is about, when its id says so (`ticket:<source>:<id>`).
fn ticket_of(message: &AgentMessage) -> Option<String> {
    message
        .conversation_id
        .strip_prefix("ticket:")
        .map(str::to_string)
}
