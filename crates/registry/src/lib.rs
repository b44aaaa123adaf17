//! The agent registry and the workflow definitions: the files in `agents/` and
//! `workflows/`, loaded, validated and described.
//!
//! - [`Registry`]: agents, their fleets and the action catalogue, with each action's
//!   argument schema and risk rules.
//! - [`policy`]: the decision, risk score and reasons for one call of an action
//!   ([`Registry::assess`]), and the tools an agent is offered ([`Registry::tools_for`]).
//! - [`Workflows`] / [`WorkflowSpec`]: steps wired by `depends_on`, the graph helpers the
//!   engine schedules with, triggers.
//! - [`template`]: step input templates (`{{ input.topic }}`, `{{ steps.plan.output }}`).
//! - [`status`]: an agent's status (active, standby, stale) from heartbeats.
//! - [`check()`]: everything wrong with a definitions directory, for `chatgptd config check`.
//!
//! The files are compiled in ([`Registry::builtin`], [`Workflows::builtin`]) and can be
//! loaded from a directory instead ([`Registry::load`], [`Workflows::load`]). Loading
//! collects every problem, each naming its file and item. This crate is pure: no Kafka, no
//! memory backend, no model.

pub mod agent;
pub mod catalogue;
pub mod check;
pub mod executor;
pub mod policy;
pub mod registry;
pub mod status;
pub mod template;
pub mod workflow;

mod builtin;
mod error;
mod names;
mod source;

pub use agent::{AgentSpec, AgentState, LimitOptions, ModelSpec, Tier};
pub use catalogue::{ActionSpec, FleetSpec, FleetSummary, REPLY, Risk};
pub use check::{Report, check, check_dirs};
pub use error::{Error, Problem};
pub use executor::{Executor, McpServerSpec};
pub use policy::{Assessment, PolicyOptions};
pub use registry::{ActionDecision, Registry};
pub use status::{AgentStatus, status_of};
pub use template::render;
pub use workflow::{StepSpec, WorkflowSpec, Workflows};
