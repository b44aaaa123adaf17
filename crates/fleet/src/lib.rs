//! What the agent worker, the workflow engine and the API share about the fleet at run time:
//! the [`Brain`] that turns an agent's persona, conversation and memory into a model call,
//! the [`Inbox`] where answers to people wait, the [`AgentsClient`] that sends a request and
//! awaits its answer, the [`Heartbeats`] that tell active, standby and stale agents apart, and
//! the [`StepCall`] that carries a workflow step to its agent and the answer back.
//!
//! The definitions of agents and workflows (what they are) live in `chatgptd-registry`; the
//! workers that run them live in `workers/agents` and `workers/workflows`.

mod brain;
mod client;
mod heartbeat;
mod inbox;
mod live;
pub mod reported;
mod request;
pub mod step;

pub use brain::{Brain, Context as BrainContext};
pub use client::{AgentsClient, ClientError};
pub use heartbeat::{AgentHealth, Heartbeats, Served, agent_health};
pub use inbox::{Inbox, answer_json, inbox_address};
pub use live::{LiveRegistry, RegistrationInfo, RegistryError};
pub use request::new_request;
pub use step::{StepAnswer, StepCall};
