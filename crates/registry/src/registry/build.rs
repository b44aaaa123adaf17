//! Parsing and validating the registry's files. Every problem is collected, so one run
//! reports all there is to fix.

use std::collections::{BTreeMap, BTreeSet};

use super::Registry;
use crate::Problem;
use crate::agent::{AgentSpec, AgentsFile, Tier};
use crate::catalogue::{ActionSpec, ActionsFile, FleetSpec, FleetsFile, Risk};
use crate::executor::{self, McpServerSpec};
use crate::names::{is_kebab_case, is_snake_case};
use crate::policy::{self, PolicyOptions};
use crate::source::Source;

/// The catalogue file's name.
pub(crate) const ACTIONS_FILE: &str = "actions.yaml";
/// The fleets file's name.
pub(crate) const FLEETS_FILE: &str = "fleets.yaml";

/// Builds a registry from the files of an `agents/` directory. The registry holds whatever
/// parsed, even when there are problems, so workflows can still be checked against it.
pub(crate) fn build(sources: &[Source]) -> (Registry, Vec<Problem>) {
    let mut problems = Vec::new();

    let (actions, policy, mcp_servers) =
        match declaration::<ActionsFile>(sources, ACTIONS_FILE, &mut problems) {
            Some((source, file)) => {
                policy::check_policy(&source.path, &file.policy, &mut problems);
                executor::check_servers(&source.path, &file.mcp_servers, &mut problems);
                let actions =
                    check_actions(&source.path, file.actions, &file.mcp_servers, &mut problems);
                (Some(actions), file.policy, file.mcp_servers)
            }
            None => (None, PolicyOptions::default(), Vec::new()),
        };
    let fleets = declaration::<FleetsFile>(sources, FLEETS_FILE, &mut problems)
        .map(|(source, file)| check_fleets(&source.path, file.fleets, &mut problems));

    // Agent id -> the file that declared it first, to name both files of a duplicate.
    let mut declared_in: BTreeMap<String, String> = BTreeMap::new();
    let mut agents = Vec::new();
    let agent_files = sources
        .iter()
        .filter(|s| s.file_name != ACTIONS_FILE && s.file_name != FLEETS_FILE);
    for source in agent_files {
        let file: AgentsFile = match serde_yaml::from_str(&source.text) {
            Ok(file) => file,
            Err(err) => {
                problems.push(Problem::new(&source.path, "", err.to_string()));
                continue;
            }
        };
        let fleet = resolve_fleet(&source.path, &file.fleet, fleets.as_deref(), &mut problems);
        for mut agent in file.agents {
            let item = format!("agent `{}`", agent.id);
            if !agent.fleet.is_empty() && !fleet.is_named(&agent.fleet) {
                problems.push(Problem::new(
                    &source.path,
                    &item,
                    format!(
                        "fleet `{}` differs from the file's fleet `{}`; an agent file holds one fleet",
                        agent.fleet, fleet.name
                    ),
                ));
            }
            agent.fleet = fleet.name.clone();
            check_agent(
                &source.path,
                &item,
                &agent,
                actions.as_deref(),
                &mut problems,
            );
            if let Some(first) = declared_in.get(&agent.id) {
                problems.push(Problem::new(
                    &source.path,
                    &item,
                    format!("duplicate agent id, first declared in {first}"),
                ));
                continue;
            }
            declared_in.insert(agent.id.clone(), source.path.clone());
            agents.push(agent);
        }
    }
    agents.sort_by(|a, b| a.id.cmp(&b.id));

    let fleets = fleets.unwrap_or_default();
    let warnings = idle_fleet_warnings(sources, &fleets, &agents);
    let registry = Registry {
        fleets,
        actions: actions.unwrap_or_default(),
        mcp_servers,
        policy,
        agents,
        warnings,
    };
    (registry, problems)
}

/// Finds and parses one of the declaration files; `None` (with a problem) when it is
/// missing or does not parse, so later checks skip what depends on it instead of
/// reporting every reference to it as unknown.
fn declaration<'a, T: serde::de::DeserializeOwned>(
    sources: &'a [Source],
    file_name: &str,
    problems: &mut Vec<Problem>,
) -> Option<(&'a Source, T)> {
    let Some(source) = sources.iter().find(|s| s.file_name == file_name) else {
        problems.push(Problem::new(
            &sibling_path(sources, file_name),
            "",
            "missing: the agents directory must declare it",
        ));
        return None;
    };
    match serde_yaml::from_str(&source.text) {
        Ok(parsed) => Some((source, parsed)),
        Err(err) => {
            problems.push(Problem::new(&source.path, "", err.to_string()));
            None
        }
    }
}

/// The path `file_name` would have beside the other files, for naming a missing file.
fn sibling_path(sources: &[Source], file_name: &str) -> String {
    sources
        .first()
        .and_then(|source| source.path.strip_suffix(source.file_name.as_str()))
        .map_or(file_name.to_string(), |dir| format!("{dir}{file_name}"))
}

fn check_actions(
    path: &str,
    actions: Vec<ActionSpec>,
    servers: &[McpServerSpec],
    problems: &mut Vec<Problem>,
) -> Vec<ActionSpec> {
    let mut seen = BTreeSet::new();
    let mut kept = Vec::new();
    for action in actions {
        let item = format!("action `{}`", action.id);
        let mut problem = |message: String| problems.push(Problem::new(path, &item, message));
        if !is_snake_case(&action.id) {
            problem("ids are snake_case: lowercase letters, digits and `_`".into());
        }
        if action.description.trim().is_empty() {
            problem("description is empty".into());
        }
        if action.risk == Risk::High && !action.approval {
            problem("a high-risk action must set `approval: true`".into());
        }
        if !seen.insert(action.id.clone()) {
            problem("declared twice".into());
            continue;
        }
        if let Some(executor) = &action.executor {
            for message in executor.problems(&action) {
                problem(format!("executor: {message}"));
            }
        }
        if let Some((server, tool)) = action.mcp_tool() {
            if !servers.iter().any(|s| s.id == server) {
                problem(format!(
                    "executor names mcp server `{server}`, which `mcp_servers` does not declare"
                ));
            }
            if tool.trim().is_empty() {
                problem("executor's tool is empty".into());
            }
        }
        // An MCP action may leave its schema to the server's `tools/list`.
        let schema_later = action.mcp_tool().is_some() && action.parameters.is_null();
        policy::check_action(path, &item, &action, schema_later, problems);
        kept.push(action);
    }
    kept
}

fn check_fleets(path: &str, fleets: Vec<FleetSpec>, problems: &mut Vec<Problem>) -> Vec<FleetSpec> {
    let mut kept: Vec<FleetSpec> = Vec::new();
    for fleet in fleets {
        let item = format!("fleet `{}`", fleet.name);
        let mut problem = |message: String| problems.push(Problem::new(path, &item, message));
        if !is_kebab_case(&fleet.id) {
            problem(format!("id `{}` is not kebab-case", fleet.id));
        }
        if fleet.name.trim().is_empty() {
            problem("name is empty".into());
        }
        if fleet.description.trim().is_empty() {
            problem("description is empty".into());
        }
        if kept
            .iter()
            .any(|other| other.is_named(&fleet.id) || other.is_named(&fleet.name))
        {
            problem("declared twice (ids and names are compared ignoring case)".into());
            continue;
        }
        kept.push(fleet);
    }
    kept
}

/// The declared fleet an agent file names. An undeclared one is a problem; the agents are
/// still checked, under the name as written.
fn resolve_fleet(
    path: &str,
    name: &str,
    fleets: Option<&[FleetSpec]>,
    problems: &mut Vec<Problem>,
) -> FleetSpec {
    let as_written = FleetSpec {
        id: name.to_string(),
        name: name.to_string(),
        description: String::new(),
    };
    let Some(fleets) = fleets else {
        return as_written;
    };
    if let Some(fleet) = fleets.iter().find(|f| f.is_named(name)) {
        return fleet.clone();
    }
    let declared: Vec<&str> = fleets.iter().map(|f| f.name.as_str()).collect();
    problems.push(Problem::new(
        path,
        format!("fleet `{name}`"),
        format!(
            "not declared in {FLEETS_FILE}; declared fleets: {}",
            declared.join(", ")
        ),
    ));
    as_written
}

pub(super) fn check_agent(
    path: &str,
    item: &str,
    agent: &AgentSpec,
    actions: Option<&[ActionSpec]>,
    problems: &mut Vec<Problem>,
) {
    let mut problem = |message: String| problems.push(Problem::new(path, item, message));
    if !is_kebab_case(&agent.id) {
        problem("ids are kebab-case: lowercase letters, digits and single `-`".into());
    }
    for (field, value) in [
        ("name", &agent.name),
        ("description", &agent.description),
        ("system_prompt", &agent.system_prompt),
    ] {
        if value.trim().is_empty() {
            problem(format!("{field} is empty"));
        }
    }

    if agent.actions.is_empty() {
        problem("actions is empty: an agent needs at least `reply`".into());
    }
    let mut seen = BTreeSet::new();
    for id in &agent.actions {
        if !seen.insert(id) {
            problem(format!("action `{id}` is listed twice"));
            continue;
        }
        let Some(catalogue) = actions else {
            continue;
        };
        match catalogue.iter().find(|a| &a.id == id) {
            None => problem(format!("action `{id}` is not in {ACTIONS_FILE}")),
            Some(action) if agent.tier == Tier::Experimental && action.risk == Risk::High => {
                problem(format!(
                    "action `{id}` is high-risk, which experimental agents may not hold"
                ))
            }
            Some(_) => {}
        }
    }

    let model = &agent.model;
    if model
        .name
        .as_deref()
        .is_some_and(|name| name.trim().is_empty())
    {
        problem("model.name is empty; leave it out to use the configured model".into());
    }
    if !(0.0..=2.0).contains(&model.temperature) {
        problem(format!(
            "model.temperature {} is outside 0 to 2",
            model.temperature
        ));
    }
    if agent.token_budget < 1 {
        problem("token_budget must be at least 1".into());
    }
    match model.max_completion_tokens {
        Some(0) => problem("model.max_completion_tokens must be at least 1".into()),
        Some(tokens) if i64::from(tokens) > agent.token_budget => problem(format!(
            "model.max_completion_tokens {tokens} exceeds token_budget {}",
            agent.token_budget
        )),
        _ => {}
    }
    if agent.max_hops == Some(0) {
        problem("max_hops must be at least 1; leave it out for the worker's limit".into());
    }
}

/// The display name of the declared fleet `name` (id or display name, ignoring case), or
/// why there is none: for a run-time registration, which has no file to take it from.
pub(super) fn resolve_fleet_of(name: &str, fleets: &[FleetSpec]) -> Result<String, String> {
    if let Some(fleet) = fleets.iter().find(|f| f.is_named(name)) {
        return Ok(fleet.name.clone());
    }
    let declared: Vec<&str> = fleets.iter().map(|f| f.id.as_str()).collect();
    Err(format!(
        "fleet `{name}` is not declared in {FLEETS_FILE}; declared fleets: {}",
        declared.join(", ")
    ))
}

/// A fleet no enabled agent serves cannot answer a broadcast: worth a warning, not a
/// refusal to start (a fleet may be emptied on purpose while its agents are reworked).
fn idle_fleet_warnings(
    sources: &[Source],
    fleets: &[FleetSpec],
    agents: &[AgentSpec],
) -> Vec<Problem> {
    let path = sibling_path(sources, FLEETS_FILE);
    fleets
        .iter()
        .filter(|fleet| {
            !agents
                .iter()
                .any(|agent| agent.fleet == fleet.name && agent.is_enabled())
        })
        .map(|fleet| {
            Problem::new(
                &path,
                format!("fleet `{}`", fleet.name),
                "has no enabled agent: broadcasts to it reach nobody",
            )
        })
        .collect()
}
