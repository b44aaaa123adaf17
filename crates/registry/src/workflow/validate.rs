//! Parsing and validating workflow files against the registry. Every problem is
//! collected, so one run reports all there is to fix.

use std::collections::BTreeSet;

use super::Workflows;
use super::spec::{InputType, StepSpec, WorkflowSpec};
use super::trigger::{self, MATCH_FIELDS};
use crate::names::{is_kebab_case, is_snake_case};
use crate::source::Source;
use crate::template::{self, Reference};
use crate::{Problem, Registry};

/// Builds the workflows of a `workflows/` directory. Workflows with problems are kept, so a
/// check can still count and describe them.
pub(crate) fn build(sources: &[Source], registry: &Registry) -> (Workflows, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut workflows: Vec<WorkflowSpec> = Vec::new();
    for source in sources {
        let workflow: WorkflowSpec = match serde_yaml::from_str(&source.text) {
            Ok(workflow) => workflow,
            Err(err) => {
                problems.push(Problem::new(&source.path, "", err.to_string()));
                continue;
            }
        };
        let mut check = Check {
            file: &source.path,
            workflow: &workflow,
            registry,
            problems: &mut problems,
            warnings: &mut warnings,
        };
        check.header(source.stem());
        check.steps();
        check.cycles();
        check.templates();
        check.trigger();
        if workflows.iter().any(|w| w.name == workflow.name) {
            problems.push(Problem::new(
                &source.path,
                format!("workflow `{}`", workflow.name),
                "declared twice",
            ));
            continue;
        }
        workflows.push(workflow);
    }
    workflows.sort_by(|a, b| a.name.cmp(&b.name));
    (
        Workflows {
            workflows,
            warnings,
        },
        problems,
    )
}

/// The checks of one workflow file.
struct Check<'a> {
    file: &'a str,
    workflow: &'a WorkflowSpec,
    registry: &'a Registry,
    problems: &'a mut Vec<Problem>,
    warnings: &'a mut Vec<Problem>,
}

impl Check<'_> {
    fn problem(&mut self, item: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(self.file, item, message));
    }

    fn header(&mut self, stem: &str) {
        let workflow = self.workflow;
        let item = format!("workflow `{}`", workflow.name);
        if workflow.name != stem {
            self.problem(
                &item,
                format!("the name must be the file name without `.yaml`: `{stem}`"),
            );
        }
        if !is_kebab_case(&workflow.name) {
            self.problem(&item, "names are kebab-case");
        }
        if workflow.description.trim().is_empty() {
            self.problem(&item, "description is empty");
        }
        for (name, field) in &workflow.input {
            let item = format!("input `{name}`");
            if !is_snake_case(name) {
                self.problem(&item, "field names are snake_case");
            }
            if let Some(default) = &field.default {
                if field.required {
                    self.problem(&item, "a required field takes no default; drop one of them");
                } else if !field.kind.accepts(default) {
                    self.problem(
                        &item,
                        format!("default {default} is not of type {}", field.kind.as_str()),
                    );
                }
            }
        }
        if workflow.steps.is_empty() {
            self.problem(&item, "has no steps");
        }
    }

    fn steps(&mut self) {
        let workflow = self.workflow;
        let mut ids = BTreeSet::new();
        for step in &workflow.steps {
            let item = format!("step `{}`", step.id);
            if !(is_kebab_case(&step.id) || is_snake_case(&step.id)) {
                self.problem(&item, "ids use lowercase letters, digits, `-` and `_`");
            }
            if !ids.insert(step.id.as_str()) {
                self.problem(&item, "duplicate step id");
            }
            match self.registry.get(&step.agent) {
                None => self.problem(
                    &item,
                    format!("agent `{}` is not in the registry", step.agent),
                ),
                Some(agent) if !agent.is_enabled() => {
                    self.problem(&item, format!("agent `{}` is disabled", step.agent))
                }
                Some(_) => {}
            }
            if step.input.trim().is_empty() {
                self.problem(&item, "input is empty: the agent would be sent nothing");
            }
            let mut listed = BTreeSet::new();
            for dependency in &step.depends_on {
                if !listed.insert(dependency) {
                    self.problem(&item, format!("depends_on lists `{dependency}` twice"));
                } else if workflow.step(dependency).is_none() {
                    self.problem(
                        &item,
                        format!("depends_on `{dependency}`, which is not a step of this workflow"),
                    );
                }
            }
            self.retry_and_timeout(&item, step);
        }
    }

    fn retry_and_timeout(&mut self, item: &str, step: &StepSpec) {
        let retry = &step.retry;
        if retry.max_attempts == 0 {
            self.problem(
                item,
                "retry.max_attempts must be at least 1 (1 means no retry)",
            );
        }
        if retry.backoff.initial > retry.backoff.max {
            self.problem(
                item,
                format!(
                    "retry.backoff.initial ({}) is longer than retry.backoff.max ({})",
                    humantime::format_duration(retry.backoff.initial),
                    humantime::format_duration(retry.backoff.max)
                ),
            );
        }
        if step.timeout.is_zero() {
            self.problem(item, "timeout must be longer than 0s");
        }
    }

    fn cycles(&mut self) {
        for cycle in self.workflow.cycles() {
            let item = format!("step `{}`", cycle[0]);
            self.problem(
                item,
                format!(
                    "depends_on forms a cycle: {} (each step waits for the next)",
                    cycle.join(" -> ")
                ),
            );
        }
    }

    fn templates(&mut self) {
        let workflow = self.workflow;
        let mut read_fields = BTreeSet::new();
        for step in &workflow.steps {
            let item = format!("step `{}`", step.id);
            let references = match template::references(&step.input) {
                Ok(references) => references,
                Err(err) => {
                    self.problem(&item, format!("input: {err}"));
                    continue;
                }
            };
            let ancestors: BTreeSet<&str> = workflow
                .ancestors(&step.id)
                .into_iter()
                .map(|s| s.id.as_str())
                .collect();
            for reference in references {
                match reference {
                    Reference::Input(path) => {
                        let Some(field_name) = path.first() else {
                            // `{{ input }}`: the whole input, every field read.
                            read_fields.extend(workflow.input.keys().cloned());
                            continue;
                        };
                        read_fields.insert(field_name.clone());
                        let written = format!("input.{}", path.join("."));
                        match workflow.input.get(field_name) {
                            None => self.problem(
                                &item,
                                format!("input references `{written}`, but `{field_name}` is not a declared input field"),
                            ),
                            Some(field) if path.len() > 1 && !field.kind.has_fields() => self.problem(
                                &item,
                                format!("input references `{written}`, but `{field_name}` is of type {}, which has no fields", field.kind.as_str()),
                            ),
                            Some(_) => {}
                        }
                    }
                    Reference::StepOutput(other) => {
                        let written = format!("steps.{other}.output");
                        if workflow.step(&other).is_none() {
                            self.problem(
                                &item,
                                format!("input references `{written}`, but `{other}` is not a step of this workflow"),
                            );
                        } else if !ancestors.contains(other.as_str()) {
                            self.problem(
                                &item,
                                format!("input references `{written}`, but `{other}` does not run before `{}`: add it to depends_on", step.id),
                            );
                        }
                    }
                }
            }
        }
        for (name, field) in &workflow.input {
            if !read_fields.contains(name) {
                let kind = if field.required {
                    "required"
                } else {
                    "optional"
                };
                self.warnings.push(Problem::new(
                    self.file,
                    format!("input `{name}`"),
                    format!("{kind} field that no step's input references"),
                ));
            }
        }
    }

    fn trigger(&mut self) {
        let workflow = self.workflow;
        let Some(trigger) = &workflow.trigger else {
            return;
        };
        let item = "trigger";
        if trigger.filter.is_empty() {
            self.warnings.push(Problem::new(
                self.file,
                item,
                "has no `where`: every ticket starts a run",
            ));
        }
        for (field, accepted) in &trigger.filter {
            if !MATCH_FIELDS.contains(&field.as_str()) {
                self.problem(
                    item,
                    format!(
                        "where `{field}`: not a field triggers can test ({})",
                        MATCH_FIELDS.join(", ")
                    ),
                );
            }
            let values = accepted.values();
            if values.is_empty() || values.iter().any(|v| v.trim().is_empty()) {
                self.problem(item, format!("where `{field}`: values must be non-empty"));
            }
        }
        for (field, text) in &trigger.input {
            match workflow.input.get(field) {
                None => self.problem(
                    item,
                    format!("input `{field}` is not a declared input field"),
                ),
                Some(declared) if declared.kind != InputType::String => self.problem(
                    item,
                    format!(
                        "input `{field}` is of type {}; triggers fill only string fields",
                        declared.kind.as_str()
                    ),
                ),
                Some(_) => {}
            }
            if let Err(message) = trigger::check_template(text) {
                self.problem(item, format!("input `{field}`: {message}"));
            }
        }
        for (name, field) in &workflow.input {
            if field.required && field.default.is_none() && !trigger.input.contains_key(name) {
                self.problem(
                    item,
                    format!(
                        "does not fill the required input `{name}`, so its runs would be refused"
                    ),
                );
            }
        }
    }
}
