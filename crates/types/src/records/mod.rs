//! One Rust struct per Avro record type in `schemas/`. Field docs live in the `.avsc` files;
//! the tests below check that every struct encodes with, and decodes from, its schema.

mod action;
mod agent;
mod dead_letter;
pub mod examples;
mod memory;
mod subscription;
mod ticket;
mod ticket_action;
mod workflow;

pub use action::{ActionAudit, ApprovalRequest, ApprovalState, AuditEvent, Escalation};
pub use agent::{AgentMessage, AgentRegistration};
pub use dead_letter::DeadLetter;
pub use memory::MemoryRecord;
pub use subscription::Subscription;
pub use ticket::{EnrichedTicket, Provenance, TicketEvent};
pub use ticket_action::TicketAction;
pub use workflow::WorkflowStep;

#[cfg(test)]
mod tests;
