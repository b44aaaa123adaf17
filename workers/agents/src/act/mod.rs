//! The tool loop: an agent answers a message by thinking, acting and thinking again.
//!
//! Each turn the model may call the actions its agent holds (as tools). Every call is
//! checked against its schema, decided by the registry's policy (allowed, needs approval,
//! refused, with a risk score and reasons), and only then executed; the result goes back to
//! the model as the call's tool message. The loop is bounded by steps, tokens and argument
//! repairs.
//!
//! The loop is a replay over the [`Ledger`]: turns and outcomes are recorded as they happen,
//! so running it again for the same message (a redelivery, or a resumption when a reply or
//! a decision arrives) asks the model nothing twice and acts nothing twice. A call that must
//! wait (on another agent, or on a person) parks the conversation in [`Waits`] and the
//! record completes: waiting never holds a worker.

mod arrive;
mod audit;

pub(crate) use arrive::{DECISION_KIND, WAKE_KIND};
pub(crate) use audit::decision_name;
pub(crate) use settle::{Checked, check};
mod execute;
mod github;
mod http;
mod mcp;
mod settle;

use std::sync::Arc;

pub(crate) use chatgptd_actions::waits::Source;
use chatgptd_actions::{ActionId, Approvals, Ledger, Outcome, Waits};
use chatgptd_model::{ChatMessage, ChatReply, ChatRequest, Classify, ErrorKind, Tool, ToolChoice};
use chatgptd_registry::{AgentSpec, Registry, Workflows};
use chatgptd_runtime::{OutputRecord, ProcessError};
use chatgptd_types::records::AgentMessage;
use chatgptd_types::waiting;

use crate::mcp_client::{McpClients, closed_schema};
use crate::worker::AgentWorker;

/// What the loop acts through, besides the worker's brain, registry and memory.
#[derive(Debug, Clone)]
pub(crate) struct Act {
    pub(crate) ledger: Ledger,
    pub(crate) waits: Waits,
    pub(crate) approvals: Approvals,
    /// Workflow definitions, for `start_workflow`; `None` refuses it.
    pub(crate) workflows: Option<Arc<Workflows>>,
    /// The client and secrets of declared HTTP and GitHub actions.
    pub(crate) outbound: http::Outbound,
}

/// One run of the loop: an agent answering one message, during one record's processing.
pub(crate) struct Conversation<'a> {
    pub(crate) agent: &'a AgentSpec,
    pub(crate) message: &'a AgentMessage,
    /// Where `message` was read, for provenance and waits.
    pub(crate) source: Source,
    /// The record being processed now (`topic/partition/offset`): `message`'s own, or the
    /// reply or decision that resumes the conversation. The audit of what this record first
    /// recorded is emitted again if the record is redelivered, never by a later one.
    pub(crate) origin: String,
    /// The trace of this processing (`traceparent`), for the audit.
    pub(crate) traceparent: String,
    /// The tokens the answer may spend in all.
    pub(crate) budget: i64,
    /// For a workflow step: the step's timeout, which bounds each model turn; a turn past it,
    /// or a model error other than `Unavailable`, ends the attempt with a refusal the engine
    /// retries by the step's policy, instead of retrying the record here.
    pub(crate) step_timeout: Option<std::time::Duration>,
}

impl Conversation<'_> {
    /// The ledger's name of this conversation: the agent and the message it answers.
    pub(crate) fn run_id(&self) -> String {
        format!("{}:{}", self.agent.id, self.message.id)
    }

    pub(crate) fn action_id(&self, step: u32, index: usize) -> ActionId {
        ActionId::new(&self.message.id, &self.agent.id, step, index)
    }
}

/// How a run of the loop ended.
pub(crate) enum Ended {
    /// The model answered in text: the reply.
    Answered(Box<ChatReply>),
    /// A call waits; the conversation is parked.
    Parked,
    /// The loop hit a bound before an answer: refuse with this reason and text.
    Stopped(&'static str, String),
}

/// One settled call: its outcome, or a wait.
pub(crate) enum Settled {
    Outcome(Outcome),
    Waiting,
}

/// The model's view of the agent's actions: every action it holds but `reply` (its final
/// text answer is the reply). An MCP action that leaves its `parameters` to its server is
/// offered once the server has listed the tool (`mcp`), never before: a tool whose schema is
/// unknown cannot be checked. A server's tools no action declares are never offered.
pub(crate) fn tools_for(registry: &Registry, agent: &AgentSpec, mcp: &McpClients) -> Vec<Tool> {
    registry
        .tools_for(agent)
        .into_iter()
        .filter_map(|action| {
            let parameters = match action.mcp_tool() {
                Some((server, tool)) if action.parameters.is_null() => {
                    closed_schema(&mcp.tool(server, tool)?.input_schema)
                }
                _ => action.parameters.clone(),
            };
            Some(Tool::new(&action.id, &action.description, parameters))
        })
        .collect()
}

impl AgentWorker {
    /// Lists the tools of the servers of `agent`'s MCP actions whose schemas are not known
    /// yet; a server that cannot be reached leaves its actions unoffered for this turn.
    async fn list_mcp_tools(&self, agent: &AgentSpec) {
        let registry = self.registry();
        for action in registry.tools_for(agent) {
            let Some((server, tool)) = action.mcp_tool() else {
                continue;
            };
            if !action.parameters.is_null() || self.mcp.tool(server, tool).is_some() {
                continue;
            }
            if let Some(spec) = registry.mcp_server(server)
                && let Err(err) = self.mcp.ensure_listed(spec).await
            {
                tracing::debug!(server, error = %err, "mcp tools not listed");
            }
        }
    }

    /// For a recorded call of an MCP action `agent` holds but that is not offered now (its
    /// server's schema unknown, e.g. after a restart while the server is down): the record
    /// waits for the server instead of refusing a call the model was offered.
    fn unlisted_mcp_call(
        &self,
        agent: &AgentSpec,
        name: &str,
        tools: &[Tool],
    ) -> Option<ProcessError> {
        if tools.iter().any(|tool| tool.name == name) || !agent.actions.iter().any(|a| a == name) {
            return None;
        }
        let registry = self.registry();
        let (server, _) = registry.action(name)?.mcp_tool()?;
        if self.mcp.listed(server) {
            // Listed without the tool: a deployment error, refused as not offered.
            return None;
        }
        Some(ProcessError::unavailable(
            "mcp_unavailable",
            format!("mcp server `{server}` has not listed the tool of `{name}` yet"),
        ))
    }
}

fn classified(err: chatgptd_actions::Error) -> ProcessError {
    ProcessError::classified(err)
}

impl AgentWorker {
    /// Runs the tool loop for `cx`, starting from `request` (the persona, history, memory and
    /// message) unless the conversation already has a recorded start. Returns how it ended
    /// and the records its actions produced.
    pub(crate) async fn converse(
        &self,
        cx: &Conversation<'_>,
        mut request: ChatRequest,
    ) -> Result<(Ended, Vec<OutputRecord>), ProcessError> {
        let run = cx.run_id();
        self.list_mcp_tools(cx.agent).await;
        let tools = tools_for(&self.registry(), cx.agent, &self.mcp);
        request.messages = self
            .act
            .ledger
            .keep_base(&run, request.messages)
            .await
            .map_err(classified)?;
        request.tools = tools.clone();
        let agent = cx.agent;
        let max_steps = agent
            .max_tool_steps
            .unwrap_or(self.options.max_tool_steps)
            .max(1);
        let max_tokens = agent
            .max_tool_tokens
            .unwrap_or(self.options.max_tool_tokens);
        let mut outputs = Vec::new();
        let mut spent: i64 = 0;
        let mut repairs = 0;
        for step in 0..max_steps {
            if step + 1 == max_steps && !request.tools.is_empty() {
                // The last turn must answer: offering tools it may not use would end the
                // loop without one.
                request.tool_choice = Some(ToolChoice::None);
            }
            let reply = match self.act.ledger.turn(&run, step).await.map_err(classified)? {
                Some(reply) => reply,
                None => {
                    let needed = self.brain.estimated_tokens(&request);
                    if needed > cx.budget || (step > 0 && spent + needed > max_tokens) {
                        let text = budget_text(cx, step, needed, max_tokens);
                        return Ok((Ended::Stopped("token_budget", text), outputs));
                    }
                    let reply = match self.think(cx, &request).await? {
                        Ok(reply) => reply,
                        Err((reason, text)) => {
                            return Ok((Ended::Stopped(reason, text), outputs));
                        }
                    };
                    self.act
                        .ledger
                        .record_turn(&run, step, reply)
                        .await
                        .map_err(classified)?
                }
            };
            let model = self.brain.model().model_for(&request);
            let turn = format!("{run}:{step}");
            crate::usage::count_turn(self.memory.as_ref(), &agent.id, &model, &turn, &reply)
                .await
                .map_err(ProcessError::classified)?;
            spent += reply.usage.total as i64;
            if reply.tool_calls.is_empty() {
                return Ok((Ended::Answered(Box::new(reply)), outputs));
            }
            request.messages.push(ChatMessage::assistant_calls(
                reply.content.clone(),
                reply.tool_calls.clone(),
            ));
            for (index, call) in reply.tool_calls.iter().enumerate() {
                let id = cx.action_id(step, index);
                if let Some(unavailable) = self.unlisted_mcp_call(cx.agent, &call.name, &tools) {
                    return Err(unavailable);
                }
                match self.settle(cx, &id, call, &tools, &mut outputs).await? {
                    Settled::Waiting => return Ok((Ended::Parked, outputs)),
                    Settled::Outcome(outcome) => {
                        if matches!(outcome, Outcome::Invalid { .. }) {
                            repairs += 1;
                            if repairs > self.options.max_argument_repairs {
                                let text = format!(
                                    "refused: the model could not give valid arguments for `{}` after {} repairs ({})",
                                    call.name,
                                    repairs - 1,
                                    outcome.tool_result()
                                );
                                return Ok((Ended::Stopped("tool_arguments", text), outputs));
                            }
                        }
                        request
                            .messages
                            .push(ChatMessage::tool(&call.id, outcome.tool_result()));
                    }
                }
            }
        }
        let text = format!(
            "refused: {} did not finish within {max_steps} tool steps",
            cx.agent.id
        );
        Ok((Ended::Stopped("step_limit", text), outputs))
    }
}

impl AgentWorker {
    /// One model turn. For a workflow step, a turn past the step's timeout or a model error
    /// that is not `Unavailable` is the attempt's end (`Err`: reason and text).
    #[allow(clippy::type_complexity)]
    async fn think(
        &self,
        cx: &Conversation<'_>,
        request: &ChatRequest,
    ) -> Result<Result<ChatReply, (&'static str, String)>, ProcessError> {
        let Some(limit) = cx.step_timeout else {
            return self
                .brain
                .answer(request)
                .await
                .map(Ok)
                .map_err(ProcessError::classified);
        };
        let Ok(answered) = waiting::timeout(limit, self.brain.answer(request)).await else {
            let text = format!("timed out after {}", humantime::format_duration(limit));
            return Ok(Err(("step_timeout", text)));
        };
        match answered {
            Ok(reply) => Ok(Ok(reply)),
            Err(err) if err.kind() == ErrorKind::Unavailable => Err(ProcessError::classified(err)),
            Err(err) => {
                let reason = if err.kind() == ErrorKind::Retryable {
                    "model_retryable"
                } else {
                    "model_failed"
                };
                Ok(Err((reason, format!("{}: {err}", err.class()))))
            }
        }
    }
}

fn budget_text(cx: &Conversation<'_>, step: u32, needed: i64, max_tokens: i64) -> String {
    if needed > cx.budget {
        format!(
            "refused: answering needs about {needed} tokens, over this message's token budget of {}",
            cx.budget
        )
    } else {
        format!(
            "refused: {} stopped after {step} tool steps: the next would take its tool loop past {max_tokens} tokens",
            cx.agent.id
        )
    }
}

/// The kind of a message asking an agent to take one given action (`POST
/// /agents/{id}/actions`): body `{"action": ..., "arguments": {...}}`. It goes through the
/// same policy, approvals and audit as a call the model makes.
pub(crate) const ACTION_KIND: &str = "action";

/// The name of a record in the ledger and the audit: `topic/partition/offset`.
pub(crate) fn origin_of(meta: &chatgptd_runtime::RecordMeta) -> String {
    format!("{}/{}/{}", meta.topic, meta.partition, meta.offset)
}

impl Act {
    /// Outbound actions read their secrets (tokens, signing keys, base URLs) from `secrets`.
    pub(crate) fn with_secrets(mut self, secrets: chatgptd_types::Secrets) -> Self {
        self.outbound = http::Outbound::new(secrets);
        self
    }

    /// The stores of the tool loop in `memory`, kept as long as a conversation may wait.
    pub(crate) fn new(
        options: &crate::options::AgentsOptions,
        memory: Arc<dyn chatgptd_memory::Memory>,
        workflows: Option<Arc<Workflows>>,
    ) -> Self {
        let ttl = options.action_state_ttl;
        Act {
            ledger: Ledger::new(memory.clone(), ttl),
            waits: Waits::new(memory.clone(), ttl),
            approvals: Approvals::new(memory, ttl),
            workflows,
            outbound: http::Outbound::default(),
        }
    }
}

impl AgentWorker {
    /// For a message of kind [`ACTION_KIND`]: records the requested call as the
    /// conversation's first model turn, so the loop settles it like any call the model made
    /// and the model then answers with its outcome.
    pub(crate) async fn propose(&self, cx: &Conversation<'_>) -> Result<(), ProcessError> {
        #[derive(serde::Deserialize)]
        struct Proposed {
            action: String,
            #[serde(default)]
            arguments: serde_json::Value,
        }
        let proposed: Proposed = serde_json::from_str(&cx.message.body).map_err(|err| {
            ProcessError::permanent(
                "invalid_action_request",
                format!("an action message's body must be {{\"action\", \"arguments\"}}: {err}"),
            )
        })?;
        let call = chatgptd_model::ToolCall {
            id: "call_requested".to_string(),
            name: proposed.action,
            arguments: proposed.arguments.to_string(),
        };
        let turn = ChatReply {
            content: String::new(),
            json: None,
            provenance: chatgptd_types::records::Provenance {
                provider: "api".to_string(),
                model: "requested".to_string(),
                ..Default::default()
            },
            usage: Default::default(),
            system_fingerprint: None,
            tool_calls: vec![call],
            finish_reason: chatgptd_model::FinishReason::ToolCalls,
        };
        self.act
            .ledger
            .record_turn(&cx.run_id(), 0, turn)
            .await
            .map_err(classified)?;
        Ok(())
    }
}
