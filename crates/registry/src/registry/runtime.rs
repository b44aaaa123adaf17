//! Agents registered or changed at run time (`POST /agents`, `PATCH`, `DELETE`): checked as
//! the files are, and laid over the loaded registry.

use super::Registry;
use super::build::{check_agent, resolve_fleet_of};
use crate::Problem;
use crate::agent::AgentSpec;

/// Where a run-time agent's problems say they are: there is no file.
const RUNTIME: &str = "registration";

impl Registry {
    /// Everything wrong with `agent` as a run-time registration: the checks of an agent in
    /// a file (fleet declared, actions catalogued and fit for the tier, model and limits).
    /// Sets `agent.fleet` to the fleet's display name, as loading a file does.
    pub fn check_registration(&self, agent: &mut AgentSpec) -> Vec<Problem> {
        let mut problems = Vec::new();
        let item = format!("agent `{}`", agent.id);
        match resolve_fleet_of(&agent.fleet, &self.fleets) {
            Ok(fleet) => agent.fleet = fleet,
            Err(message) => problems.push(Problem::new(RUNTIME, &item, message)),
        }
        check_agent(RUNTIME, &item, agent, Some(&self.actions), &mut problems);
        problems
    }

    /// This registry with `agents` in it: each replaces the agent of its id, or joins the
    /// registry if new. `agents` are expected to have passed [`Registry::check_registration`].
    pub fn overlay<'a>(&self, agents: impl IntoIterator<Item = &'a AgentSpec>) -> Registry {
        let mut registry = self.clone();
        for agent in agents {
            match registry
                .agents
                .binary_search_by(|known| known.id.as_str().cmp(&agent.id))
            {
                Ok(index) => registry.agents[index] = agent.clone(),
                Err(index) => registry.agents.insert(index, agent.clone()),
            }
        }
        registry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AgentState;

    fn scout() -> AgentSpec {
        serde_json::from_value(serde_json::json!({
            "id": "scout", "name": "Scout", "fleet": "creative",
            "description": "Finds things.", "tier": "standard",
            "system_prompt": "You find things.", "actions": ["reply"],
        }))
        .unwrap()
    }

    #[test]
    fn a_valid_registration_passes_and_joins_the_registry() {
        let registry = Registry::builtin();
        let mut agent = scout();
        assert_eq!(registry.check_registration(&mut agent), Vec::new());
        let live = registry.overlay([&agent]);
        assert_eq!(live.get("scout").unwrap().name, "Scout");
        assert!(live.fleet("creative").iter().any(|a| a.id == "scout"));
        assert!(registry.get("scout").is_none(), "the base is unchanged");
    }

    #[test]
    fn an_overlay_replaces_a_file_agent() {
        let registry = Registry::builtin();
        let mut agent = registry.get("wanderweave").unwrap().clone();
        agent.status = AgentState::Disabled;
        let live = registry.overlay([&agent]);
        assert!(!live.get("wanderweave").unwrap().is_enabled());
        assert_eq!(live.agents().len(), registry.agents().len());
    }

    #[test]
    fn problems_name_the_field() {
        let registry = Registry::builtin();
        let mut agent = scout();
        agent.fleet = "nowhere".into();
        agent.actions = vec!["launch_rockets".into()];
        agent.model.temperature = 9.0;
        let messages: Vec<String> = registry
            .check_registration(&mut agent)
            .into_iter()
            .map(|p| p.message)
            .collect();
        let all = messages.join("\n");
        assert!(all.contains("fleet `nowhere`"), "{all}");
        assert!(all.contains("action `launch_rockets`"), "{all}");
        assert!(all.contains("model.temperature"), "{all}");
    }
}
