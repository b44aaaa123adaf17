use std::path::PathBuf;
use std::time::Duration;

use chatgptd_runtime::ConsumerOptions;
use chatgptd_types::topics::names;
use serde::{Deserialize, Serialize};

/// How the agent worker runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentsOptions {
    /// The topic of AgentMessages (requests, replies, broadcasts).
    pub topic: String,
    /// Where messages and answers are remembered.
    pub memory_topic: String,
    /// Consumer settings (group `chatgptd-agents` by default). Replicas serving different
    /// agents must use different groups: each skips messages for agents it does not serve.
    pub consumer: ConsumerOptions,
    /// The agents this worker answers for: agent ids and `fleet:<name>`; empty means every
    /// enabled agent of the registry.
    pub serve: Vec<String>,
    /// The agent registry directory; empty means the registry compiled into the binary.
    pub registry_dir: PathBuf,
    /// The compacted topic of agents registered or changed at run time (`POST /agents`),
    /// laid over the registry: every replica reads it to its end before serving.
    pub registry_topic: String,
    /// The prompt file wrapping every persona; empty means the built-in
    /// `prompts/agent_reply.v1.md`.
    pub prompt_file: PathBuf,
    /// The most agent-to-agent hops a message may have made, unless its agent sets its own.
    pub max_hops: u32,
    /// How many times one agent may appear in a conversation chain before a message bringing
    /// it back is refused as a loop.
    pub max_visits: usize,
    /// How many of the agent's recent turns in the conversation go into the prompt.
    pub history_turns: usize,
    /// The most memory records (from the search index) added to the prompt.
    pub memory_hits: usize,
    /// The most tokens those memory records may add.
    pub memory_tokens: usize,
    /// The most knowledge-base chunks and notes of the agent (`POST /knowledge`,
    /// `POST /agents/{id}/memory`) added to the prompt, besides the memory records.
    pub knowledge_hits: usize,
    /// The most tokens those chunks and notes may add.
    pub knowledge_tokens: usize,
    /// An indexer's base URL (`http://indexer:8080`) to find relevant memory through its
    /// `/search` when this process has no index of its own; empty uses the local index if
    /// there is one. Indexer replicas that each keep a full copy are listed with commas:
    /// a search goes to the one that answered last, and on to the next when it does not
    /// answer.
    pub search_url: String,
    /// The environment variable holding an API token (with `read`) sent to `search_url`;
    /// empty sends none.
    pub search_token_env: String,
    /// How often a worker beats for the agents it serves.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// How long an answer waits in an inbox for the API or CLI to read it.
    #[serde(with = "humantime_serde")]
    pub inbox_ttl: Duration,
    /// The most model turns of one answer's tool loop; the last one must answer in text.
    /// An agent's `max_tool_steps` overrides it.
    pub max_tool_steps: u32,
    /// The most tokens one answer's tool loop may spend across its turns; each turn must
    /// also fit the message's token budget. An agent's `max_tool_tokens` overrides it.
    pub max_tool_tokens: i64,
    /// How many calls with arguments that do not match their schema the model may repair
    /// (it is told what is wrong) before the answer is refused.
    pub max_argument_repairs: u32,
    /// How long a conversation's turns, outcomes, waits and approvals are kept: at least
    /// the longest approval expiry, or a late decision finds nothing to resume.
    #[serde(with = "humantime_serde")]
    pub action_state_ttl: Duration,
    /// How often pending approvals are checked for expiry (and waits for replies for
    /// their `reply_timeout`).
    #[serde(with = "humantime_serde")]
    pub approval_sweep_interval: Duration,
    /// How long a `message_agent`, `broadcast_fleet` or ticket action waits for its replies
    /// before the call fails with what is missing (an agent no worker serves, a worker down).
    #[serde(with = "humantime_serde")]
    pub reply_timeout: Duration,
    /// Where every tool call's decision and outcome is audited (ActionAudit).
    pub audit_topic: String,
    /// Where approval requests and their decisions go (ApprovalRequest).
    pub approvals_topic: String,
    /// Where `escalate_to_human` and expired approvals hand work to people (Escalation).
    pub escalations_topic: String,
    /// Where `start_workflow` sends the start of a run (WorkflowStep).
    pub workflows_topic: String,
    /// Where ticket actions go for the write-back worker to execute (TicketAction).
    pub ticket_actions_topic: String,
    /// Where `create_ticket` opens tickets: `<source>:<project>` (`jira:OPS`,
    /// `github:acme/support`); empty refuses it.
    pub create_tickets_in: String,
}

impl Default for AgentsOptions {
    fn default() -> Self {
        AgentsOptions {
            topic: names::AGENT_MESSAGES.to_string(),
            memory_topic: names::MEMORY_RECORDS.to_string(),
            consumer: ConsumerOptions::default(),
            serve: Vec::new(),
            registry_dir: PathBuf::new(),
            registry_topic: names::AGENT_REGISTRY.to_string(),
            prompt_file: PathBuf::new(),
            max_hops: 8,
            max_visits: 3,
            history_turns: 10,
            memory_hits: 3,
            memory_tokens: 500,
            knowledge_hits: 3,
            knowledge_tokens: 600,
            search_url: String::new(),
            search_token_env: String::new(),
            heartbeat_interval: Duration::from_secs(10),
            inbox_ttl: Duration::from_secs(3600),
            max_tool_steps: 6,
            max_tool_tokens: 32_000,
            max_argument_repairs: 2,
            action_state_ttl: Duration::from_secs(7 * 24 * 3600),
            approval_sweep_interval: Duration::from_secs(5),
            reply_timeout: Duration::from_secs(600),
            audit_topic: names::AGENT_AUDIT.to_string(),
            approvals_topic: names::AGENT_APPROVALS.to_string(),
            escalations_topic: names::AGENT_ESCALATIONS.to_string(),
            workflows_topic: names::WORKFLOW_STEPS.to_string(),
            ticket_actions_topic: names::TICKET_ACTIONS.to_string(),
            create_tickets_in: String::new(),
        }
    }
}
