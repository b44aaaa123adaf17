//! An agent file (`agents/<fleet>.yaml`) and the agent it declares.

use serde::{Deserialize, Serialize};

/// An agent file: the agents of one fleet.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsFile {
    /// The fleet of every agent in this file: its name or id from `agents/fleets.yaml`.
    pub fleet: String,

    /// The fleet's agents.
    pub agents: Vec<AgentSpec>,
}

/// One GPT agent: who it is, which model answers for it, and what it may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// The agent's id, kebab-case and unique across the registry (`hotel-optimizer-x`).
    /// It is the Kafka key and the `to`/`from` of the agent's messages, so renaming an
    /// agent orphans its in-flight conversations.
    pub id: String,

    /// The display name (`Hotel Optimizer X`).
    pub name: String,

    /// The agent's fleet. Optional in the file, where it defaults to the file's `fleet`
    /// (and must match it when given); the registry always holds the fleet's display name.
    #[serde(default)]
    pub fleet: String,

    /// One or two sentences on what the agent is for, shown by `chatgptd agents list`.
    pub description: String,

    /// How far the agent is trusted; see [`Tier`].
    pub tier: Tier,

    /// The system prompt: the agent's persona, scope and rules. Sent first in every
    /// conversation, so it is also the agent's prompt version: change it deliberately.
    pub system_prompt: String,

    /// Which model answers for the agent, how, and within which limits.
    #[serde(default)]
    pub model: ModelSpec,

    /// The ids of the catalogued actions (`agents/actions.yaml`) the agent may take. An
    /// action not listed here is refused, whatever the model asks for.
    pub actions: Vec<String>,

    /// The most agent-to-agent hops a conversation reaching this agent may have taken
    /// before it is refused; unset means the agent worker's configured limit. Lower it for
    /// agents that fan out, so loops die early.
    #[serde(default)]
    pub max_hops: Option<u32>,

    /// The most model turns one answer's tool loop may take (the last must answer in
    /// text); unset means the agent worker's `max_tool_steps`.
    #[serde(default)]
    pub max_tool_steps: Option<u32>,

    /// The most tokens one answer's tool loop may spend across its turns (each turn must
    /// also fit the message's `token_budget`); unset means the agent worker's
    /// `max_tool_tokens`.
    #[serde(default)]
    pub max_tool_tokens: Option<i64>,

    /// Tokens a message to this agent (and the reply it asks for) may spend, when the
    /// sender sets no budget of its own.
    #[serde(default = "default_token_budget")]
    pub token_budget: i64,

    /// `enabled` or `disabled`. A disabled agent stays listed (so its history reads), but no
    /// worker serves it, no workflow may use it and fleet broadcasts skip it.
    #[serde(default)]
    pub status: AgentState,
}

/// The default `token_budget`: the `AgentMessage.token_budget` default of the schema.
pub fn default_token_budget() -> i64 {
    4000
}

impl AgentSpec {
    /// Whether the agent may take `action` at all (approval aside).
    pub fn permits(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a == action)
    }

    /// Whether the agent is enabled.
    pub fn is_enabled(&self) -> bool {
        self.status == AgentState::Enabled
    }
}

/// How far an agent is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Agents the platform and other fleets depend on: orchestrators, routers, security
    /// responders. Held to the catalogue's approvals; an agent of this tier that no worker
    /// serves, or that goes stale, is worth an alert.
    Core,
    /// Production agents. Held to the catalogue's approvals.
    Standard,
    /// Agents under evaluation. They may not hold `high`-risk actions (a load error), and
    /// every `medium`-risk action they take needs approval, even when the catalogue does not
    /// ask for it.
    Experimental,
}

impl Tier {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Core => "core",
            Tier::Standard => "standard",
            Tier::Experimental => "experimental",
        }
    }
}

/// Whether an agent is in service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    /// Served by agent workers.
    #[default]
    Enabled,
    /// Listed but not served.
    Disabled,
}

/// Which model answers for an agent, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The model (or Azure deployment). Unset means the process's configured model
    /// (`model.model`), so one setting moves every agent that does not care.
    #[serde(default)]
    pub name: Option<String>,

    /// Sampling temperature, 0 to 2: low for auditors and planners, higher for writers.
    #[serde(default = "default_temperature")]
    pub temperature: f64,

    /// The completion budget of one call; unset means the process's
    /// `model.default_max_completion_tokens`. At most the agent's `token_budget`.
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,

    /// This agent's own share of the provider quota. Unset means the agent only shares the
    /// process's limits for its model; set it so one busy agent cannot starve the rest.
    #[serde(default)]
    pub limits: Option<LimitOptions>,
}

impl Default for ModelSpec {
    fn default() -> Self {
        ModelSpec {
            name: None,
            temperature: default_temperature(),
            max_completion_tokens: None,
            limits: None,
        }
    }
}

/// The default `temperature`.
pub fn default_temperature() -> f64 {
    0.7
}

impl ModelSpec {
    /// The model to call: this agent's, or `configured` (the process's model).
    pub fn name_or<'a>(&'a self, configured: &'a str) -> &'a str {
        self.name.as_deref().unwrap_or(configured)
    }
}

/// An agent's limits, in the terms of the model client's `LimitOptions` (crates/model), so
/// the worker can feed them to the same limiter. They cap this agent on top of the process's
/// limits for the model; they never raise them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitOptions {
    /// Requests per minute. 0 (the default) means no agent-level limit.
    pub requests_per_minute: u32,

    /// Tokens per minute, counted as providers count them: the prompt plus the completion
    /// budget. 0 (the default) means no agent-level limit.
    pub tokens_per_minute: u32,

    /// Calls of this agent in flight at once. 0 (the default) means no agent-level cap.
    pub max_concurrency: u32,
}
