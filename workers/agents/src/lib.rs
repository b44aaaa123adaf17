//! The agent worker: answers AgentMessages as the GPT agents of the registry (`agents/`).
//!
//! A message on `agents.messages` is keyed by its recipient: an agent id, or `fleet:<name>`
//! for a broadcast, which the worker expands into one message per enabled agent of the
//! fleet. An agent answers with its persona, its recent turns in the conversation and the
//! most relevant memory, within the message's token budget, and the answer goes to the
//! message's `reply_to`: another agent (which may answer back), or an inbox
//! (`inbox:<message id>`) where the API and the CLI wait for it.
//!
//! Agents must not talk forever: a message that has made `max_hops` hops, or that would
//! bring an agent into the same conversation chain `max_visits` times, is refused with a
//! reason, like a message over its token budget. The message and the answer become memory.
//!
//! Workers beat for the agents they serve; `status` tells active, standby and stale apart.

mod act;
pub mod approvals;
pub mod mcp_client;
mod messages;
mod options;
mod routes;
pub mod telemetry;
mod usage;
mod worker;

pub use approvals::{ApprovalError, ApprovalsClient};
pub use mcp_client::McpClients;
pub use options::AgentsOptions;
pub use worker::{AgentWorker, AgentsService};
