//! What agents do, once and on the record.
//!
//! An agent answers a message through a bounded tool loop (in `workers/agents`): the model
//! proposes calls of catalogued actions, the registry's policy decides each one
//! (`Registry::assess`), and the allowed ones run. This crate holds what makes that loop safe
//! to crash, redeliver and suspend:
//!
//! - [`Ledger`]: the model turns of a conversation and the outcome of every action, in the
//!   memory backend. Resuming a conversation replays it: recorded turns are not asked again,
//!   recorded outcomes are not acted again. Claims make an effect with no idempotency key of
//!   its own happen once across replicas; attempt marks ([`Attempt`]) tell a call that
//!   never reached another system from one that may have.
//! - [`Waits`]: a conversation parked on another agent's reply or on a person's decision,
//!   found again by what will arrive.
//! - [`Approvals`]: approval requests and their one decision (approve, deny, expire).
//!
//! Ids derive from the message and the call's position ([`ActionId`]), so every replica and
//! every redelivery names the same action the same way.

pub mod approvals;
mod attempt;
mod error;
mod id;
mod ledger;
pub mod outcome;
pub mod waits;

pub use approvals::{Approvals, Decision};
pub use attempt::{Attempt, Mark};
pub use error::Error;
pub use id::ActionId;
pub use ledger::{Claim, Ledger};
pub use outcome::Outcome;
pub use waits::{Wait, WaitOn, Waits};
