//! The enrichment worker: a TicketEvent goes through the model and comes out as an
//! EnrichedTicket (category, suggested priority, sentiment, language, summary, a suggested
//! reply, labels, confidence) with its provenance, and the ticket and its enrichment become
//! memory for later tickets.
//!
//! - Updates to one ticket share its key, so they are processed in order.
//! - The prompt is a versioned file (`prompts/`); the model answers in a strict JSON schema
//!   that the model client validates (and asks again to repair).
//! - The most relevant past tickets (from the search index, local or an indexer's
//!   `/search`) are added to the prompt, bounded in tokens.
//! - The model's result cache makes a redelivered ticket free.

mod service;
pub mod telemetry;
mod worker;

pub use service::{EnrichService, Error};
pub use worker::{Enrich, EnrichOptions};
