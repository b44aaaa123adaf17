//! `chatgptd config check` for agents and workflows: everything wrong, as readable lines.

use std::path::Path;

use serde::Serialize;

use crate::{Problem, Registry, Workflows, registry, source, workflow};

/// What a check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Problems: each one makes loading fail. One line each, `file: item: message`.
    pub problems: Vec<String>,
    /// Findings worth a look that do not stop loading.
    pub warnings: Vec<String>,
    /// Agents loaded (duplicates not counted).
    pub agents: usize,
    /// Fleets declared.
    pub fleets: usize,
    /// Workflows loaded.
    pub workflows: usize,
}

impl Report {
    /// Whether there are no problems (warnings allowed).
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// A one-line summary, e.g. `32 agents in 8 fleets, 3 workflows`.
    pub fn summary(&self) -> String {
        format!(
            "{} agents in {} fleets, {} workflows",
            self.agents, self.fleets, self.workflows
        )
    }
}

/// Checks `root/agents` and `root/workflows` (`root` is a checkout of the repository, or a
/// deployment's definitions directory). The workflows are checked against the agents even
/// when the agents have problems, so one run shows both.
pub fn check(root: &Path) -> Report {
    check_dirs(&root.join("agents"), &root.join("workflows"))
}

/// Checks an agents directory and a workflows directory.
pub fn check_dirs(agents_dir: &Path, workflows_dir: &Path) -> Report {
    let mut report = Report::default();
    let registry = match source::read_dir(agents_dir) {
        Ok(sources) => {
            let (registry, problems) = registry::build(&sources);
            report.problems.extend(lines(&problems));
            report.warnings.extend(lines(registry.warnings()));
            registry
        }
        Err(err) => {
            report.problems.push(err.to_string());
            return report;
        }
    };
    report.agents = registry.agents().len();
    report.fleets = registry.fleets().len();
    match source::read_dir(workflows_dir) {
        Ok(sources) => {
            let (workflows, problems) = workflow::build(&sources, &registry);
            report.problems.extend(lines(&problems));
            report.warnings.extend(lines(workflows.warnings()));
            report.workflows = workflows.list().len();
        }
        Err(err) => report.problems.push(err.to_string()),
    }
    report
}

/// Describes the definitions compiled into this binary: they always load (the tests see to
/// it), so this is for `config check` to print their summary and warnings.
pub fn check_builtin() -> Report {
    let registry = Registry::builtin();
    let workflows = Workflows::builtin(&registry);
    Report {
        problems: Vec::new(),
        warnings: lines(registry.warnings())
            .chain(lines(workflows.warnings()))
            .collect(),
        agents: registry.agents().len(),
        fleets: registry.fleets().len(),
        workflows: workflows.list().len(),
    }
}

fn lines(problems: &[Problem]) -> impl Iterator<Item = String> + '_ {
    problems.iter().map(Problem::to_string)
}
