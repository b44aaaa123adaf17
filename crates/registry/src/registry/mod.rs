//! The agent registry: `agents/*.yaml` loaded, validated and indexed.
//!
//! The directory holds `actions.yaml` (the action catalogue), `fleets.yaml` (the fleets) and
//! one file per fleet with its agents. The fields are documented on [`AgentSpec`], [`ActionSpec`]
//! and [`FleetSpec`], and summarised in the header of each file.

mod build;
mod runtime;
#[cfg(test)]
mod tests;

use std::path::Path;

use serde::Serialize;

use crate::agent::AgentSpec;
use crate::catalogue::{ActionSpec, FleetSpec, FleetSummary};
use crate::policy::PolicyOptions;
use crate::{Error, Problem, builtin, source};

pub(crate) use build::build;

/// Every agent, fleet and action, validated. Cheap to share behind an `Arc`; it never
/// changes after loading (run-time registrations make a new one: [`Registry::overlay`]).
#[derive(Debug, Clone, Serialize)]
pub struct Registry {
    /// The declared fleets, in file order.
    fleets: Vec<FleetSpec>,
    /// The action catalogue, in file order.
    actions: Vec<ActionSpec>,
    /// The MCP servers the catalogue's MCP actions call.
    mcp_servers: Vec<crate::McpServerSpec>,
    /// How calls of the actions are scored and decided.
    policy: PolicyOptions,
    /// Every agent, sorted by id (lookups binary-search it).
    agents: Vec<AgentSpec>,
    /// Findings that do not stop loading.
    #[serde(skip)]
    warnings: Vec<Problem>,
}

/// What the agent worker should do when an agent asks to take an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionDecision {
    /// Take it.
    Allowed,
    /// Hold it until a person approves.
    NeedsApproval,
    /// Refuse it: the agent or action is unknown, the agent is disabled or does not hold
    /// the action, or the call's risk score reaches the policy's `refuse_at`.
    Refused,
}

impl Registry {
    /// Loads and validates `dir` (`agents/`). Fails with every problem found.
    pub fn load(dir: &Path) -> Result<Registry, Error> {
        let (registry, problems) = build(&source::read_dir(dir)?);
        if problems.is_empty() {
            Ok(registry)
        } else {
            Err(Error::Invalid { problems })
        }
    }

    /// The repository's `agents/`, compiled into the binary. Parses and validates on each
    /// call: call it once at start and share the result.
    pub fn builtin() -> Registry {
        let (registry, problems) = build(&source::builtin("agents", builtin::AGENT_FILES));
        // The tests load the built-in files with zero problems: a failure here is a broken
        // build, not a runtime condition.
        assert!(
            problems.is_empty(),
            "built-in agents/ is invalid: {problems:?}"
        );
        registry
    }

    /// Every agent, enabled or not, sorted by id.
    pub fn agents(&self) -> &[AgentSpec] {
        &self.agents
    }

    /// The agent with this id.
    pub fn get(&self, id: &str) -> Option<&AgentSpec> {
        self.agents
            .binary_search_by(|agent| agent.id.as_str().cmp(id))
            .ok()
            .map(|index| &self.agents[index])
    }

    /// The enabled agents of a fleet, named by its id or display name (ignoring case):
    /// the recipients of a `fleet:<name>` broadcast. Empty for an unknown fleet.
    pub fn fleet(&self, name: &str) -> Vec<&AgentSpec> {
        let Some(fleet) = self.find_fleet(name) else {
            return Vec::new();
        };
        self.agents
            .iter()
            .filter(|agent| agent.fleet == fleet.name && agent.is_enabled())
            .collect()
    }

    /// The declared fleet named `name` (id or display name, ignoring case).
    pub fn find_fleet(&self, name: &str) -> Option<&FleetSpec> {
        self.fleets.iter().find(|fleet| fleet.is_named(name))
    }

    /// Every fleet with its agents, in declaration order.
    pub fn fleets(&self) -> Vec<FleetSummary> {
        self.fleets
            .iter()
            .map(|fleet| {
                let members: Vec<&AgentSpec> = self
                    .agents
                    .iter()
                    .filter(|agent| agent.fleet == fleet.name)
                    .collect();
                FleetSummary {
                    id: fleet.id.clone(),
                    name: fleet.name.clone(),
                    description: fleet.description.clone(),
                    agents: members.iter().map(|agent| agent.id.clone()).collect(),
                    enabled: members.iter().filter(|agent| agent.is_enabled()).count(),
                }
            })
            .collect()
    }

    /// The action catalogue.
    pub fn actions(&self) -> &[ActionSpec] {
        &self.actions
    }

    /// The declared MCP servers.
    pub fn mcp_servers(&self) -> &[crate::McpServerSpec] {
        &self.mcp_servers
    }

    /// The declared MCP server `id`.
    pub fn mcp_server(&self, id: &str) -> Option<&crate::McpServerSpec> {
        self.mcp_servers.iter().find(|server| server.id == id)
    }

    /// The catalogued action with this id.
    pub fn action(&self, id: &str) -> Option<&ActionSpec> {
        self.actions.iter().find(|action| action.id == id)
    }

    /// The catalogue entries of the actions `agent` holds (for the tools offered to the
    /// model). Empty for an unknown agent.
    pub fn actions_of(&self, agent: &str) -> Vec<&ActionSpec> {
        let Some(agent) = self.get(agent) else {
            return Vec::new();
        };
        agent
            .actions
            .iter()
            .filter_map(|id| self.action(id))
            .collect()
    }

    /// What to do when `agent` asks to take `action`, before its arguments are known:
    /// [`Registry::assess`] with none, so no rule applies (rules only add to the score, so
    /// a call's decision is never laxer than this). Refused for an unknown agent.
    pub fn decide(&self, agent: &str, action: &str) -> ActionDecision {
        match self.get(agent) {
            Some(agent) => {
                self.assess(agent, action, &serde_json::Value::Null)
                    .decision
            }
            None => ActionDecision::Refused,
        }
    }

    /// How calls of the actions are scored and decided (`policy:` in `actions.yaml`).
    pub fn policy(&self) -> &PolicyOptions {
        &self.policy
    }

    /// Whether `agent` taking `action` must wait for a person's approval. Fails closed:
    /// an unknown agent or action, or one the agent does not hold, answers `true`; use
    /// [`Registry::decide`] to tell those refusals apart.
    pub fn requires_approval(&self, agent: &str, action: &str) -> bool {
        self.decide(agent, action) != ActionDecision::Allowed
    }

    /// Findings that did not stop loading, e.g. a fleet with no enabled agent.
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }
}
