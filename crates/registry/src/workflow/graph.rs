//! The step graph of a workflow: what the engine asks to schedule steps.
//!
//! Steps are few (a handful per workflow), so every helper walks the step list; nothing is
//! indexed or cached, and a `WorkflowSpec` deserialized from anywhere answers correctly.

use std::collections::{BTreeMap, BTreeSet};

use super::spec::{StepSpec, WorkflowSpec};

impl WorkflowSpec {
    /// The steps with no dependencies: the ones a run starts with, in file order.
    pub fn roots(&self) -> Vec<&StepSpec> {
        self.steps
            .iter()
            .filter(|step| step.depends_on.is_empty())
            .collect()
    }

    /// The steps nothing depends on: the run is done when they are, and their outputs are
    /// the run's result. In file order.
    pub fn leaves(&self) -> Vec<&StepSpec> {
        self.steps
            .iter()
            .filter(|step| self.dependents(&step.id).is_empty())
            .collect()
    }

    /// The steps `step_id` waits for, in `depends_on` order.
    pub fn dependencies(&self, step_id: &str) -> Vec<&StepSpec> {
        let Some(step) = self.step(step_id) else {
            return Vec::new();
        };
        step.depends_on
            .iter()
            .filter_map(|id| self.step(id))
            .collect()
    }

    /// The steps that wait for `step_id`, in file order: the ones to consider when it
    /// finishes.
    pub fn dependents(&self, step_id: &str) -> Vec<&StepSpec> {
        self.steps
            .iter()
            .filter(|step| step.depends_on.iter().any(|id| id == step_id))
            .collect()
    }

    /// Whether `step_id` waits for more than one step (a fan-in).
    pub fn is_fan_in(&self, step_id: &str) -> bool {
        self.step(step_id)
            .is_some_and(|step| step.depends_on.len() > 1)
    }

    /// Every step that finishes before `step_id` starts: its dependencies, theirs, and so
    /// on. In file order. These are the steps its template may read.
    pub fn ancestors(&self, step_id: &str) -> Vec<&StepSpec> {
        let mut found = BTreeSet::new();
        let mut to_visit: Vec<&str> = self
            .step(step_id)
            .map(|step| step.depends_on.iter().map(String::as_str).collect())
            .unwrap_or_default();
        while let Some(id) = to_visit.pop() {
            if !found.insert(id) {
                continue;
            }
            if let Some(step) = self.step(id) {
                to_visit.extend(step.depends_on.iter().map(String::as_str));
            }
        }
        self.steps
            .iter()
            .filter(|step| found.contains(step.id.as_str()))
            .collect()
    }

    /// Every step, each after all it depends on. Among steps ready at the same time, file
    /// order decides, so the order is stable. On a validated workflow (anything
    /// [`super::Workflows`] hands out) this is every step; steps on or after a cycle are
    /// left out.
    pub fn topological_order(&self) -> Vec<&StepSpec> {
        let mut done: BTreeSet<&str> = BTreeSet::new();
        let mut order = Vec::with_capacity(self.steps.len());
        // Each pass takes the first ready step: quadratic, and steps are few.
        while let Some(step) = self.steps.iter().find(|step| {
            !done.contains(step.id.as_str())
                && step.depends_on.iter().all(|id| done.contains(id.as_str()))
        }) {
            done.insert(&step.id);
            order.push(step);
        }
        order
    }

    /// The steps that can start now: not finished (not in `outputs`) and every dependency
    /// finished. `outputs` is the map of finished step outputs the engine renders templates
    /// with. Steps already in flight are the caller's to filter out.
    pub fn ready(&self, outputs: &BTreeMap<String, String>) -> Vec<&StepSpec> {
        self.steps
            .iter()
            .filter(|step| {
                !outputs.contains_key(&step.id)
                    && step.depends_on.iter().all(|id| outputs.contains_key(id))
            })
            .collect()
    }

    /// The dependency cycles, each as a path that starts and ends at the same step
    /// (`a -> b -> a`). Each cycle is reported once, whichever step it is entered from.
    pub(crate) fn cycles(&self) -> Vec<Vec<String>> {
        let mut state: BTreeMap<&str, Visit> = BTreeMap::new();
        let mut cycles = Vec::new();
        let mut seen_cycles: BTreeSet<BTreeSet<String>> = BTreeSet::new();
        for step in &self.steps {
            let mut path = Vec::new();
            self.visit(&step.id, &mut state, &mut path, &mut |cycle| {
                let members: BTreeSet<String> = cycle.iter().cloned().collect();
                if seen_cycles.insert(members) {
                    cycles.push(cycle);
                }
            });
        }
        cycles
    }

    /// Depth-first search; a dependency found on the current path closes a cycle.
    fn visit<'a>(
        &'a self,
        id: &'a str,
        state: &mut BTreeMap<&'a str, Visit>,
        path: &mut Vec<&'a str>,
        found: &mut dyn FnMut(Vec<String>),
    ) {
        match state.get(id) {
            Some(Visit::Done) => return,
            Some(Visit::OnPath) => {
                let start = path.iter().position(|on_path| *on_path == id).unwrap_or(0);
                let mut cycle: Vec<String> = path[start..].iter().map(|s| s.to_string()).collect();
                cycle.push(id.to_string());
                found(cycle);
                return;
            }
            None => {}
        }
        let Some(step) = self.step(id) else {
            return;
        };
        state.insert(id, Visit::OnPath);
        path.push(id);
        for dependency in &step.depends_on {
            self.visit(dependency, state, path, found);
        }
        path.pop();
        state.insert(id, Visit::Done);
    }
}

/// Where the cycle search is with a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visit {
    OnPath,
    Done,
}
