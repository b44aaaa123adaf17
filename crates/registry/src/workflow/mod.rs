//! Workflow definitions: `workflows/*.yaml` loaded and validated against a registry.

mod graph;
mod spec;
#[cfg(test)]
mod tests;
mod trigger;
mod validate;

use std::path::Path;

use chatgptd_types::records::EnrichedTicket;

pub use spec::{
    Approval, Backoff, InputField, InputType, RetryPolicy, StepSpec, WorkflowSpec, default_timeout,
};
pub use trigger::{MATCH_FIELDS, MatchValue, TICKET_FIELDS, Trigger, TriggerEvent};

pub(crate) use validate::build;

use crate::{Error, Problem, Registry, builtin, source};

/// Every workflow, validated. It never changes after loading.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Workflows {
    /// Sorted by name.
    workflows: Vec<WorkflowSpec>,
    /// Findings that do not stop loading.
    #[serde(skip)]
    warnings: Vec<Problem>,
}

impl Workflows {
    /// Loads and validates `dir` (`workflows/`) against `registry`. Fails with every
    /// problem found.
    pub fn load(dir: &Path, registry: &Registry) -> Result<Workflows, Error> {
        let (workflows, problems) = build(&source::read_dir(dir)?, registry);
        if problems.is_empty() {
            Ok(workflows)
        } else {
            Err(Error::Invalid { problems })
        }
    }

    /// The repository's `workflows/`, compiled into the binary, checked against `registry`
    /// (normally [`Registry::builtin`]). Panics when they do not validate against it, which
    /// the tests rule out for the built-in registry.
    pub fn builtin(registry: &Registry) -> Workflows {
        let sources = source::builtin("workflows", builtin::WORKFLOW_FILES);
        let (workflows, problems) = build(&sources, registry);
        assert!(
            problems.is_empty(),
            "built-in workflows/ is invalid: {problems:?}"
        );
        workflows
    }

    /// The workflow with this name.
    pub fn get(&self, name: &str) -> Option<&WorkflowSpec> {
        self.workflows
            .binary_search_by(|workflow| workflow.name.as_str().cmp(name))
            .ok()
            .map(|index| &self.workflows[index])
    }

    /// Every workflow, sorted by name.
    pub fn list(&self) -> &[WorkflowSpec] {
        &self.workflows
    }

    /// The workflows whose trigger `ticket` matches.
    pub fn triggered_by(&self, ticket: &EnrichedTicket) -> Vec<&WorkflowSpec> {
        self.workflows
            .iter()
            .filter(|workflow| {
                workflow
                    .trigger
                    .as_ref()
                    .is_some_and(|trigger| trigger.matches(ticket))
            })
            .collect()
    }

    /// Findings that did not stop loading, e.g. a declared input field no step reads.
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }
}
