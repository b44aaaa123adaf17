//! A workflow file (`workflows/<name>.yaml`): its input, optional trigger and steps.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::trigger::Trigger;
use crate::Error;
use crate::template::{self, Reference};

pub use chatgptd_types::backoff::Backoff;

/// One workflow: steps run by agents, wired by `depends_on` into a graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    /// The workflow's name, kebab-case, the same as its file name without `.yaml`. Runs,
    /// `WorkflowStep.workflow` and the API name it.
    pub name: String,

    /// What the workflow achieves, for `chatgptd workflows list`.
    pub description: String,

    /// The fields of a run's input (a JSON object), by name. Step templates read them as
    /// `{{ input.<name> }}`; a run whose input does not fit is refused before it starts.
    #[serde(default)]
    pub input: BTreeMap<String, InputField>,

    /// Starts a run by itself when a matching event arrives; without it, runs are started
    /// only on request (CLI, API, an agent's `start_workflow`).
    #[serde(default)]
    pub trigger: Option<Trigger>,

    /// The steps. Their order in the file does not matter to execution, only `depends_on`
    /// does; it breaks ties in [`WorkflowSpec::topological_order`].
    pub steps: Vec<StepSpec>,
}

/// One step: an agent asked one question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// The step's id, unique in the workflow: lowercase letters, digits, `-` and `_`. Later
    /// steps read its output as `{{ steps.<id>.output }}`.
    pub id: String,

    /// What the step is for, for people reading the workflow.
    #[serde(default)]
    pub description: String,

    /// The id of the agent that runs the step. It must be enabled.
    pub agent: String,

    /// The message sent to the agent: a template over `{{ input.<field> }}` and the outputs
    /// of the steps that run before this one, `{{ steps.<id>.output }}`. Only steps this
    /// one depends on, directly or through others, may be read: they are the ones
    /// guaranteed to be done.
    pub input: String,

    /// The steps that must finish before this one starts. None: the step starts with the
    /// run. One: sequential. Several: a fan-in that waits for all of them. Steps that
    /// depend on the same step run in parallel (a fan-out).
    #[serde(default)]
    pub depends_on: Vec<String>,

    /// How a failed attempt is retried.
    #[serde(default)]
    pub retry: RetryPolicy,

    /// How long one attempt may take before it counts as failed (and is retried), e.g.
    /// `90s`, `5m`.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,

    /// `required` holds the step, with its rendered input, until a person approves it: for
    /// steps whose agent can act outside chatgptd (publishing, changing access). `auto`, the
    /// default, runs it at once; the agent's own risky actions still wait for approval
    /// action by action.
    #[serde(default)]
    pub approval: Approval,
}

/// The default step `timeout`.
pub fn default_timeout() -> Duration {
    Duration::from_secs(300)
}

/// Whether a step waits for a person before it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    /// Run at once; actions that need approval still wait one by one.
    #[default]
    Auto,
    /// Hold the step until a person approves it.
    Required,
}

/// How a failed step attempt is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means no retry. A step that fails its last
    /// attempt fails the run, which `resume` can restart from that step.
    pub max_attempts: u32,

    /// The delays between attempts (`initial` 2s and `max` 1m when left out; a field left
    /// out of a given `backoff` takes the shared default, 200ms or 30s).
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff: default_step_backoff(),
        }
    }
}

impl RetryPolicy {
    /// How long to wait before `attempt` (1-based): nothing before the first, `initial`
    /// before the second, doubling after that, never more than `max`. No jitter: a step is
    /// one record, and its waits are part of the run's documented timing.
    pub fn delay_before(&self, attempt: u32) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        self.backoff.ceiling(attempt - 1)
    }
}

/// The step's default spacing: slower than a record's, since a step is a model call.
fn default_step_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_secs(2),
        max: Duration::from_secs(60),
    }
}

/// One field of a workflow's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputField {
    /// The JSON type the value must have.
    #[serde(rename = "type")]
    pub kind: InputType,

    /// Whether a run must provide it. An optional field left out takes its `default`, or
    /// `null` (which templates render as nothing).
    #[serde(default)]
    pub required: bool,

    /// What the field means, for callers.
    #[serde(default)]
    pub description: String,

    /// The value of an optional field left out. A required field has none.
    #[serde(default)]
    pub default: Option<Value>,
}

/// The JSON type of an input field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    /// A string.
    String,
    /// Any number.
    Number,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A JSON object; templates may read below it (`input.trip.city`).
    Object,
    /// A JSON array; templates may index it (`input.stops.0`).
    Array,
}

impl InputType {
    /// Whether `value` is of this type.
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            InputType::String => value.is_string(),
            InputType::Number => value.is_number(),
            InputType::Integer => value.is_i64() || value.is_u64(),
            InputType::Boolean => value.is_boolean(),
            InputType::Object => value.is_object(),
            InputType::Array => value.is_array(),
        }
    }

    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            InputType::String => "string",
            InputType::Number => "number",
            InputType::Integer => "integer",
            InputType::Boolean => "boolean",
            InputType::Object => "object",
            InputType::Array => "array",
        }
    }

    /// Whether templates may read below a value of this type.
    pub fn has_fields(self) -> bool {
        matches!(self, InputType::Object | InputType::Array)
    }
}

impl WorkflowSpec {
    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&StepSpec> {
        self.steps.iter().find(|step| step.id == id)
    }

    /// Checks a run's input against the declared fields and returns it completed: optional
    /// fields left out take their default, or `null`. Refuses, listing every mismatch, a
    /// non-object, a missing required field, a value of the wrong type and an undeclared
    /// field (most likely a typo that would otherwise be silently ignored).
    pub fn prepare_input(&self, input: &Value) -> Result<Value, Error> {
        let refuse = |problems: Vec<String>| Error::Input {
            workflow: self.name.clone(),
            problems,
        };
        let given = match input {
            Value::Object(map) => map,
            Value::Null => &serde_json::Map::new(),
            other => return Err(refuse(vec![format!("must be a JSON object, not {other}")])),
        };
        let mut problems = Vec::new();
        for name in given.keys() {
            if !self.input.contains_key(name) {
                problems.push(format!("`{name}` is not a declared input field"));
            }
        }
        let mut prepared = serde_json::Map::new();
        for (name, field) in &self.input {
            match given.get(name) {
                Some(value) if !value.is_null() => {
                    if !field.kind.accepts(value) {
                        problems.push(format!("`{name}` must be of type {}", field.kind.as_str()));
                    }
                    prepared.insert(name.clone(), value.clone());
                }
                _ if field.required => problems.push(format!("`{name}` is required")),
                _ => {
                    let value = field.default.clone().unwrap_or(Value::Null);
                    prepared.insert(name.clone(), value);
                }
            }
        }
        if problems.is_empty() {
            Ok(Value::Object(prepared))
        } else {
            Err(refuse(problems))
        }
    }
}

impl StepSpec {
    /// Renders this step's input: see [`template::render`]. `input` should have been
    /// through [`WorkflowSpec::prepare_input`], so optional fields left out render as their
    /// default (or nothing) instead of failing as unknown references.
    pub fn render_input(
        &self,
        input: &Value,
        outputs: &BTreeMap<String, String>,
    ) -> Result<String, Error> {
        template::render(&self.input, input, outputs)
    }

    /// The ids of the steps whose outputs this step's template reads.
    pub fn reads(&self) -> Vec<String> {
        let Ok(references) = template::references(&self.input) else {
            return Vec::new();
        };
        let mut steps: Vec<String> = references
            .into_iter()
            .filter_map(|reference| match reference {
                Reference::StepOutput(step) => Some(step),
                Reference::Input(_) => None,
            })
            .collect();
        steps.sort();
        steps.dedup();
        steps
    }
}
