//! The agent processor and the service that runs it with its heartbeats.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use chatgptd_fleet::LiveRegistry;
use chatgptd_memory::{HistoryEntry, Memory};
use chatgptd_model::ChatRequest;
use chatgptd_registry::{AgentSpec, Registry, Workflows};
use chatgptd_runtime::{
    ConsumerRuntime, Incoming, OutputRecord, ProcessError, Processor, Service, WorkerContext,
};
use chatgptd_search::Retriever;
use chatgptd_search::knowledge;
use chatgptd_search::retrieve::Retrieval;
use chatgptd_types::avro::Codec;
use chatgptd_types::records::{AgentMessage, MemoryRecord};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::act::{ACTION_KIND, Act, Conversation, Ended, Source, origin_of};
use crate::approvals::ApprovalsClient;
use crate::messages::{answer, for_agent};
use crate::options::AgentsOptions;
use crate::routes::{AgentsApi, NOTE_KIND};
use crate::telemetry::{AnswerSent, BroadcastExpanded, MessageRefused};
use chatgptd_fleet::{
    AgentsClient, Brain, BrainContext as Context, Heartbeats, Inbox, StepAnswer, StepCall,
};

/// How many of an agent's latest history entries are read to find one conversation's turns:
/// the memory writer keeps at most `memory.history_cap` (200 by default) per owner, so this
/// reads all of them and a busy agent's other conversations cannot crowd this one out.
const HISTORY_SCAN: usize = 200;

/// Answers AgentMessages as the agents of the registry.
pub struct AgentWorker {
    /// The files with the run-time registrations over them.
    pub(crate) live: Arc<LiveRegistry>,
    pub(crate) brain: Brain,
    pub(crate) memory: Arc<dyn Memory>,
    inbox: Inbox,
    pub(crate) retriever: Retriever,
    pub(crate) options: AgentsOptions,
    pub(crate) codec: Codec,
    /// The ledger, waits and approvals of the tool loop.
    pub(crate) act: Act,
    /// Sessions with the MCP servers of MCP actions, and their tools.
    pub(crate) mcp: crate::McpClients,
}

impl std::fmt::Debug for AgentWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentWorker")
            .field("serve", &self.options.serve)
            .finish()
    }
}

impl AgentWorker {
    /// A worker answering for the agents `options.serve` names (all enabled ones if empty).
    pub fn new(
        options: AgentsOptions,
        live: Arc<LiveRegistry>,
        workflows: Option<Arc<Workflows>>,
        brain: Brain,
        memory: Arc<dyn Memory>,
        retriever: Retriever,
    ) -> Self {
        let inbox = Inbox::new(memory.clone(), options.inbox_ttl);
        let act = Act::new(&options, memory.clone(), workflows);
        AgentWorker {
            act,
            live,
            brain,
            memory,
            inbox,
            retriever,
            options,
            codec: Codec::builtin(),
            mcp: crate::McpClients::default(),
        }
    }

    /// Calls MCP servers through `mcp` (whose secrets fill their headers) instead of clients
    /// with no secrets.
    pub fn with_mcp(mut self, mcp: crate::McpClients) -> Self {
        self.mcp = mcp;
        self
    }

    /// Encodes with `codec` (the process's, from its worker context) instead of the built-in.
    fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Reads the secrets of outbound actions from `secrets` (the process's, from its worker
    /// context) instead of none.
    fn with_secrets(mut self, secrets: chatgptd_types::Secrets) -> Self {
        self.act = self.act.with_secrets(secrets);
        self
    }

    /// The registry as it stands now: read once per record, so one record sees one version.
    pub(crate) fn registry(&self) -> Arc<Registry> {
        self.live.current()
    }

    /// The ids of the agents this worker answers for now: run-time registrations join and
    /// disabled agents leave without a restart.
    pub fn serving(&self) -> Vec<String> {
        served_agents(&self.registry(), &self.options.serve)
    }

    async fn handle(
        &self,
        incoming: &Incoming<AgentMessage>,
    ) -> Result<Vec<OutputRecord>, ProcessError> {
        let message = &incoming.value;
        if message.to.starts_with("inbox:") {
            // Answers travelling to API callers: already in their inbox.
            return Ok(Vec::new());
        }
        if let Some(fleet) = message.to.strip_prefix("fleet:") {
            return self.broadcast(message, fleet).await;
        }
        if let Some(outputs) = self.arrival(incoming).await? {
            return Ok(outputs);
        }
        if message.kind == "refusal" {
            // Answering a refusal would feed the very loop it stops.
            debug!(message = %message.id, to = %message.to, "refusal received");
            return Ok(Vec::new());
        }
        let registry = self.registry();
        let Some(agent) = registry.get(&message.to) else {
            return self
                .refuse(
                    message,
                    &message.to,
                    "unknown_agent",
                    format!("there is no agent `{}`", message.to),
                )
                .await;
        };
        if !agent.is_enabled() {
            return self
                .refuse(
                    message,
                    &agent.id,
                    "agent_disabled",
                    format!("agent `{}` is disabled", agent.id),
                )
                .await;
        }
        if !serves(&registry, &self.options.serve, agent) {
            debug!(agent = %agent.id, "not served here; another worker group answers it");
            return Ok(Vec::new());
        }
        if let Some(refusal) = self.guard(message, agent) {
            let (reason, text) = refusal;
            return self.refuse(message, &agent.id, reason, text).await;
        }
        let meta = &incoming.meta;
        let source = Source {
            topic: meta.topic.clone(),
            partition: meta.partition,
            offset: meta.offset,
        };
        let origin = origin_of(meta);
        self.respond(agent, message, source, origin, &meta.trace.to_header())
            .await
    }

    /// Why this message must not reach `agent`: too many hops, or a loop.
    fn guard(&self, message: &AgentMessage, agent: &AgentSpec) -> Option<(&'static str, String)> {
        let max_hops = agent.max_hops.unwrap_or(self.options.max_hops);
        if u32::try_from(message.hop_count).unwrap_or(0) >= max_hops {
            return Some((
                "hop_limit",
                format!(
                    "refused: this conversation has made {} hops, the limit for {} is {max_hops}",
                    message.hop_count, agent.id
                ),
            ));
        }
        let visits = message.path.iter().filter(|a| **a == agent.id).count();
        if visits >= self.options.max_visits {
            return Some((
                "loop",
                format!(
                    "refused: loop detected, {} has already spoken {visits} times in this chain ({})",
                    agent.id,
                    message.path.join(" -> ")
                ),
            ));
        }
        None
    }

    /// `agent` answers `message` (read from `source`) through the tool loop, during the
    /// processing of record `origin`: the message's own, or what resumes its conversation.
    pub(crate) async fn respond(
        &self,
        agent: &AgentSpec,
        message: &AgentMessage,
        source: Source,
        origin: String,
        traceparent: &str,
    ) -> Result<Vec<OutputRecord>, ProcessError> {
        // A sender may ask for less than the agent's own budget, never more: whoever can
        // write to the topic cannot buy an agent more tokens than its configuration allows.
        let budget = if message.token_budget > 0 {
            message.token_budget.min(agent.token_budget)
        } else {
            agent.token_budget
        };
        let cx = Conversation {
            agent,
            message,
            source,
            origin,
            traceparent: traceparent.to_string(),
            budget,
            step_timeout: self.step_timeout(message),
        };
        // A conversation that has started (this is a redelivery or a resumption) goes on from
        // its recorded prompt: its history and memory are not read again.
        let started = self
            .act
            .ledger
            .base(&cx.run_id())
            .await
            .map_err(ProcessError::classified)?
            .is_some();
        let request = if started {
            self.brain
                .request(agent, Context::default(), &message.from, &message.body)
        } else {
            if message.kind == ACTION_KIND {
                self.propose(&cx).await?;
            }
            self.prompt(agent, message).await?
        };
        let (ended, mut outputs) = self.converse(&cx, request).await?;
        let reply = match ended {
            Ended::Parked => return Ok(outputs),
            Ended::Stopped(reason, text) => {
                outputs.extend(self.refuse(message, &agent.id, reason, text).await?);
                return Ok(outputs);
            }
            Ended::Answered(reply) => *reply,
        };
        crate::usage::count_message(self.memory.as_ref(), &agent.id, &message.id)
            .await
            .map_err(ProcessError::classified)?;
        let mut provenance = reply.provenance;
        provenance.source_topic = cx.source.topic.clone();
        provenance.source_partition = cx.source.partition;
        provenance.source_offset = cx.source.offset;
        let mut answered = answer(message, &agent.id, "reply", reply.content);
        answered.provenance = Some(provenance);

        outputs.extend(self.deliver(&answered, None).await?);
        for record in self.memories(message, &cx.source, &answered, agent) {
            outputs.push(OutputRecord::avro(
                &self.codec,
                &self.options.memory_topic,
                record.owner.clone(),
                &record,
            )?);
        }
        AnswerSent {
            message: &message.id,
            agent: &agent.id,
        }
        .emit();
        Ok(outputs)
    }

    /// For a message that is a workflow step, the step's timeout: each model turn of its
    /// conversation must finish within it (waits on a rate limit, another agent or a person
    /// do not count), and within this worker's `process_timeout`.
    fn step_timeout(&self, message: &AgentMessage) -> Option<std::time::Duration> {
        let call = StepCall::parse(message.reply_to.as_deref()?)?;
        let declared = self.act.workflows.as_ref().and_then(|workflows| {
            let spec = workflows.get(&call.workflow)?;
            spec.step(&call.step).map(|step| step.timeout)
        });
        // Within the record's own bound, so that a slow turn ends the attempt (which the
        // engine retries by the step's policy) instead of being cut off and retried here.
        let bound = self.options.consumer.process_timeout.mul_f64(0.9);
        Some(declared.map_or(bound, |declared| declared.min(bound)))
    }

    /// The request `agent` starts answering `message` from: its persona, its turns in the
    /// conversation so far, and relevant memory.
    async fn prompt(
        &self,
        agent: &AgentSpec,
        message: &AgentMessage,
    ) -> Result<ChatRequest, ProcessError> {
        let history = self.conversation(agent, message).await?;
        let retrieval = Retrieval {
            kinds: ["message", "reply", "step_result", "enrichment"]
                .map(String::from)
                .to_vec(),
            max_hits: self.options.memory_hits,
            max_tokens: self.options.memory_tokens,
            ..Retrieval::default()
        };
        // What the agent was told (its notes) and the knowledge base, apart from the
        // conversations, so that neither crowds the other out of the prompt.
        let knowledge = Retrieval {
            kinds: vec![NOTE_KIND.to_string(), knowledge::KIND.to_string()],
            owner: Some(format!("agent:{}", agent.id)),
            knowledge: true,
            max_hits: self.options.knowledge_hits,
            max_tokens: self.options.knowledge_tokens,
            ..Retrieval::default()
        };
        let mut memory = self.retriever.find(&message.body, &knowledge).await;
        let knowledge_chunks = memory
            .iter()
            .filter(|hit| hit.kind == knowledge::KIND)
            .count();
        debug!(agent = %agent.id, knowledge_chunks, notes = memory.len() - knowledge_chunks, "knowledge in the prompt");
        memory.extend(self.retriever.find(&message.body, &retrieval).await);
        let context = Context {
            history: &history,
            memory: &memory,
        };
        Ok(self
            .brain
            .request(agent, context, &message.from, &message.body))
    }

    /// The agent's recent turns in this conversation before `message`, oldest first.
    ///
    /// Only what came before: on a redelivery the history may already hold this message and
    /// its reply (outputs acknowledged, offset not yet committed). Leaving them out keeps the
    /// prompt as it was, so the model client's cache answers and the model is not paid twice
    /// for a different reply.
    async fn conversation(
        &self,
        agent: &AgentSpec,
        message: &AgentMessage,
    ) -> Result<Vec<HistoryEntry>, ProcessError> {
        let conversation = message.conversation_id.as_str();
        let own = [
            format!("message:{}:{}", message.id, agent.id),
            format!("reply:{}:{}", message.id, agent.id),
        ];
        let turns = self.options.history_turns;
        let history = self
            .memory
            .history(&format!("agent:{}", agent.id), HISTORY_SCAN.max(turns))
            .await
            .map_err(ProcessError::classified)?;
        let mut ours: Vec<HistoryEntry> = history
            .into_iter()
            .filter(|entry| {
                entry.attributes.get("conversation_id").map(String::as_str) == Some(conversation)
                    && entry.at_ms <= message.sent_at_ms
                    && !own.contains(&entry.id)
            })
            .collect();
        let skip = ours.len().saturating_sub(turns);
        Ok(ours.split_off(skip))
    }

    async fn broadcast(
        &self,
        message: &AgentMessage,
        fleet: &str,
    ) -> Result<Vec<OutputRecord>, ProcessError> {
        let registry = self.registry();
        let agents = registry.fleet(fleet);
        if agents.is_empty() {
            return self
                .refuse(
                    message,
                    &message.to,
                    "unknown_fleet",
                    format!("there is no fleet `{fleet}` with enabled agents"),
                )
                .await;
        }
        BroadcastExpanded {
            message: &message.id,
            fleet: registry
                .find_fleet(fleet)
                .map_or("other", |found| found.id.as_str()),
            agents: agents.len(),
        }
        .emit();
        agents
            .into_iter()
            .map(|agent| {
                OutputRecord::avro(
                    &self.codec,
                    &self.options.topic,
                    agent.id.clone(),
                    &for_agent(message, &agent.id),
                )
            })
            .collect()
    }

    async fn refuse(
        &self,
        message: &AgentMessage,
        agent: &str,
        reason: &'static str,
        text: String,
    ) -> Result<Vec<OutputRecord>, ProcessError> {
        MessageRefused {
            message: &message.id,
            to: &message.to,
            reason,
        }
        .emit();
        self.deliver(&answer(message, agent, "refusal", text), Some(reason))
            .await
    }

    /// Sends an answer where its message asked: an agent (through the topic), an inbox
    /// (into memory, and onto the topic for subscribers), or a workflow step (a result record
    /// on `workflows.steps`, with the refusal's `reason`). No `reply_to`: nowhere.
    async fn deliver(
        &self,
        answered: &AgentMessage,
        reason: Option<&'static str>,
    ) -> Result<Vec<OutputRecord>, ProcessError> {
        if answered.to.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(call) = StepCall::parse(&answered.to) {
            let answer = StepAnswer {
                kind: answered.kind.clone(),
                body: answered.body.clone(),
                reason: reason.map(str::to_string),
            };
            let result = call.result(&answered.from, &answer);
            return Ok(vec![OutputRecord::avro(
                &self.codec,
                &self.options.workflows_topic,
                call.run.clone(),
                &result,
            )?]);
        }
        if answered.to.starts_with("inbox:") {
            self.inbox
                .deliver(&answered.to, answered)
                .await
                .map_err(ProcessError::classified)?;
        }
        Ok(vec![OutputRecord::avro(
            &self.codec,
            &self.options.topic,
            answered.to.clone(),
            answered,
        )?])
    }

    /// The message and its answer, as memory of the agent. Ids derive from the message, so a
    /// redelivery remembers nothing twice.
    fn memories(
        &self,
        message: &AgentMessage,
        source: &Source,
        answered: &AgentMessage,
        agent: &AgentSpec,
    ) -> [MemoryRecord; 2] {
        let owner = format!("agent:{}", agent.id);
        let mut attributes = BTreeMap::from([
            (
                "conversation_id".to_string(),
                message.conversation_id.clone(),
            ),
            ("agent".to_string(), agent.id.clone()),
        ]);
        let record = |id: String,
                      kind: &str,
                      text: String,
                      attributes: BTreeMap<String, String>| MemoryRecord {
            id,
            owner: owner.clone(),
            kind: kind.to_string(),
            text,
            tags: vec![agent.fleet.to_lowercase()],
            created_at_ms: message.sent_at_ms,
            source_topic: source.topic.clone(),
            source_partition: source.partition,
            source_offset: source.offset,
            attributes,
        };
        let received = record(
            format!("message:{}:{}", message.id, agent.id),
            "message",
            format!("From {}: {}", message.from, message.body),
            attributes.clone(),
        );
        if let Some(provenance) = &answered.provenance {
            attributes.insert("model".into(), provenance.model.clone());
            attributes.insert("prompt_version".into(), provenance.prompt_version.clone());
        }
        let replied = record(
            format!("reply:{}:{}", message.id, agent.id),
            "reply",
            answered.body.clone(),
            attributes,
        );
        [received, replied]
    }
}

/// Whether this worker answers for `agent`: enabled, and named by `serve` (by id, or as
/// `fleet:<name>`), or `serve` is empty.
fn serves(registry: &Registry, serve: &[String], agent: &AgentSpec) -> bool {
    agent.is_enabled()
        && (serve.is_empty()
            || serve
                .iter()
                .any(|entry| match entry.strip_prefix("fleet:") {
                    Some(fleet) => registry
                        .find_fleet(fleet)
                        .is_some_and(|fleet| fleet.name == agent.fleet),
                    None => *entry == agent.id,
                }))
}

/// The ids of the agents this worker answers for, sorted as the registry keeps them.
fn served_agents(registry: &Registry, serve: &[String]) -> Vec<String> {
    registry
        .agents()
        .iter()
        .filter(|agent| serves(registry, serve, agent))
        .map(|agent| agent.id.clone())
        .collect()
}

impl Processor for AgentWorker {
    type Input = AgentMessage;

    fn process(
        &self,
        record: &Incoming<AgentMessage>,
    ) -> impl Future<Output = Result<Vec<OutputRecord>, ProcessError>> + Send {
        self.handle(record)
    }

    fn output_topics(&self) -> Vec<String> {
        let options = &self.options;
        vec![
            options.topic.clone(),
            options.memory_topic.clone(),
            options.audit_topic.clone(),
            options.approvals_topic.clone(),
            options.escalations_topic.clone(),
            options.ticket_actions_topic.clone(),
            options.workflows_topic.clone(),
        ]
    }
}

/// The agent worker: its consumer and its heartbeats.
pub struct AgentsService {
    runtime: ConsumerRuntime<AgentWorker>,
    heartbeats: Heartbeats,
    /// Expires approvals nobody decided in time.
    approvals: ApprovalsClient,
    sweep_interval: std::time::Duration,
    /// What `/agents`, `/fleets` and `/messages` serve from.
    api: AgentsApi,
}

impl AgentsService {
    /// The worker for `chatgptd worker agents` (and `up`).
    pub fn new(
        options: &AgentsOptions,
        context: &WorkerContext,
        live: Arc<LiveRegistry>,
        workflows: Arc<Workflows>,
        brain: Brain,
        memory: Arc<dyn Memory>,
        retriever: Retriever,
    ) -> Result<Self, chatgptd_runtime::Error> {
        let approvals = ApprovalsClient::new(
            options,
            memory.clone(),
            context.producer.clone(),
            context.codec.clone(),
        );
        let mcp = crate::McpClients::new(context.secrets.clone());
        let api = AgentsApi {
            mcp: mcp.clone(),
            live: live.clone(),
            memory: memory.clone(),
            approvals: approvals.clone(),
            client: AgentsClient::new(
                context.producer.clone(),
                Inbox::new(memory.clone(), options.inbox_ttl),
                &options.topic,
            ),
            heartbeat_interval: options.heartbeat_interval,
            producer: context.producer.clone(),
            codec: context.codec.clone(),
            memory_topic: options.memory_topic.clone(),
            retriever: retriever.clone(),
            prices: Arc::new(brain.model().options().prices.clone()),
        };
        let worker = AgentWorker::new(
            options.clone(),
            live.clone(),
            Some(workflows),
            brain,
            memory.clone(),
            retriever,
        )
        .with_codec(context.codec.clone())
        .with_secrets(context.secrets.clone())
        .with_mcp(mcp);
        let worker_id = format!("agents-{}", uuid::Uuid::new_v4());
        let serve = options.serve.clone();
        let heartbeats = Heartbeats::new(
            memory,
            Arc::new(move || served_agents(&live.current(), &serve)),
            options.heartbeat_interval,
            worker_id,
        );
        let runtime = ConsumerRuntime::new(
            Self::NAME,
            context,
            options.consumer.clone(),
            vec![options.topic.clone()],
            worker,
        )?;
        Ok(AgentsService {
            runtime,
            heartbeats,
            approvals,
            sweep_interval: options.approval_sweep_interval,
            api,
        })
    }
}

impl Service for AgentsService {
    type Error = chatgptd_runtime::Error;
    const NAME: &'static str = "agents";

    fn routes(&self) -> chatgptd_runtime::http::Routes {
        crate::routes::router(self.api.clone())
    }

    /// Answers and beats until `shutdown`.
    async fn run(self, shutdown: CancellationToken) -> Result<(), chatgptd_runtime::Error> {
        let beating = tokio::spawn(self.heartbeats.run(shutdown.clone()));
        let sweeping = tokio::spawn(
            self.approvals
                .run_sweeps(self.sweep_interval, shutdown.clone()),
        );
        let result = self.runtime.run(shutdown).await;
        let _ = beating.await;
        let _ = sweeping.await;
        result
    }
}
