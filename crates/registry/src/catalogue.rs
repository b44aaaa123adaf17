//! The two declaration files every agent file refers to: the action catalogue
//! (`agents/actions.yaml`) and the fleets (`agents/fleets.yaml`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::executor::{Executor, McpServerSpec};
use crate::policy::{PolicyOptions, RiskRule};

/// The action whose call is the model's final answer: never offered as a tool.
pub const REPLY: &str = "reply";

/// `agents/actions.yaml`: every action an agent may be allowed to take, and the policy
/// that scores each call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionsFile {
    /// How calls are scored and decided; the defaults when absent.
    #[serde(default)]
    pub policy: PolicyOptions,

    /// The catalogue. An agent's `actions` may only name actions listed here.
    pub actions: Vec<ActionSpec>,

    /// MCP servers whose tools actions may call (`executor: {kind: mcp, server, tool}`).
    /// A server's tool is an action only when an action here names it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mcp_servers: Vec<McpServerSpec>,
}

/// One catalogued action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    /// The action's id, `snake_case`, as agents list it and as a model's tool call names it,
    /// e.g. `reply`, `modify_access`.
    pub id: String,

    /// What the action does, for people reading the registry and for the tool description
    /// the agent worker gives the model.
    pub description: String,

    /// How much harm a wrong or malicious use can do: `low` (stays inside chatgptd),
    /// `medium` (visible outside chatgptd, easy to undo) or `high` (changes access,
    /// spends money, or is hard to undo). Experimental agents may not hold `high` actions.
    pub risk: Risk,

    /// Whether a person must approve each use before it takes effect. Every `high` action
    /// must set this; `medium` ones may. Experimental agents need approval for every
    /// `medium` action as well, whatever this says.
    #[serde(default)]
    pub approval: bool,

    /// How long a request for approval of this action waits for a person before it
    /// expires; unset means the policy's `default_approval_expiry`.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub approval_expiry: Option<Duration>,

    /// The JSON Schema of the action's arguments: an object schema with
    /// `additionalProperties: false` and its required arguments in `required`. It is the
    /// tool's `parameters` for the model, and what a call's arguments are checked against.
    /// An MCP action may leave it out: the server's `inputSchema` (`tools/list`) is used,
    /// closed to arguments it does not declare.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub parameters: serde_json::Value,

    /// What in a call's arguments raises its risk score, e.g. an amount over a limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RiskRule>,

    /// What carries the action out when chatgptd does not do it itself: a declared HTTP
    /// request, GitHub's API, an MCP server's tool (see [`crate::executor`]). Unset: a
    /// built-in action, or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<Executor>,
}

/// How much harm a wrong use of an action can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Stays inside chatgptd: answering, messaging other agents, reading memory.
    Low,
    /// Visible outside chatgptd but easy to undo: a ticket comment, a new ticket.
    Medium,
    /// Changes access, spends money, or cannot easily be undone.
    High,
}

impl ActionSpec {
    /// The MCP server and tool that execute it, if an MCP tool does.
    pub fn mcp_tool(&self) -> Option<(&str, &str)> {
        match &self.executor {
            Some(Executor::Mcp { server, tool }) => Some((server, tool)),
            _ => None,
        }
    }
}

impl Risk {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        }
    }
}

/// `agents/fleets.yaml`: the fleets agents belong to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetsFile {
    /// The declared fleets. Every agent belongs to exactly one of them.
    pub fleets: Vec<FleetSpec>,
}

/// One declared fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSpec {
    /// The fleet's id, kebab-case (`travel-commerce`): what a broadcast's recipient
    /// `fleet:<id>` names, and what URLs use.
    pub id: String,

    /// The display name (`Travel & Commerce`). Agent files name their fleet by this name
    /// or by the id; lookups ignore case.
    pub name: String,

    /// What the fleet is for.
    pub description: String,
}

impl FleetSpec {
    /// Whether `name` names this fleet: its id or its display name, ignoring case.
    pub fn is_named(&self, name: &str) -> bool {
        let name = name.trim();
        self.id.eq_ignore_ascii_case(name) || self.name.eq_ignore_ascii_case(name)
    }
}

/// One fleet as `chatgptd agents list` and `GET /agents` summarise it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetSummary {
    /// The fleet's id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// What the fleet is for.
    pub description: String,
    /// The ids of every agent of the fleet, enabled or not, sorted.
    pub agents: Vec<String>,
    /// How many of them are enabled.
    pub enabled: usize,
}
