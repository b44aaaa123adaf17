//! The webhook ingest gateway: `POST /webhooks/jira`, `/webhooks/servicenow`,
//! `/webhooks/github` in, one [`TicketEvent`] per ticket event out on `tickets.events`.
//!
//! Part of `chatgptd up`, or alone as `chatgptd worker ingest`. The promise to senders: a 2xx
//! only for what is persisted (202 after the broker acknowledged the record with acks=all) or
//! deliberately not needed (a duplicate, our own write-back, an event about no ticket); a 503
//! with `Retry-After` when the broker or the memory backend cannot answer in time, so the
//! sender retries; a 4xx when retrying cannot help (401 unsigned, 403 a target not
//! configured, 413 a body or a record above the limits). The gateway's producer gives up on
//! a record at that same `ack_timeout`, so a record answered 503 does not land later beside
//! the sender's retry.
//!
//! - [`options`]: `[ingest]`, one section per source.
//! - [`handler`](crate::Ingest::router): the check order, documented in `handler.rs`.
//! - access: secure by default; no secret refuses a source (unless `allow_unsigned`), and
//!   only listed targets (`projects`, `repositories`) are accepted.
//! - [`parse`]: each source's payload to a TicketEvent (Jira ADF descriptions flattened).
//! - [`signature`]: HMAC-SHA256 checks (and signing, for tests and benchmarks).
//! - dedupe: delivery ids in the memory backend, shared by replicas.
//!
//! [`TicketEvent`]: chatgptd_types::records::TicketEvent

mod access;
mod dedupe;
mod error;
mod gateway;
mod handler;
mod openapi;
pub mod options;
pub mod parse;
mod rate_limit;
mod response;
mod secrets;
mod service;
pub mod signature;
pub mod source;
pub mod telemetry;

pub use error::Error;
pub use gateway::Ingest;
pub use options::{GitHubOptions, IngestOptions, JiraOptions, ServiceNowOptions, SourceOptions};
pub use source::Source;

/// The property tests' configuration: `cases` in the suite; `PROPTEST_CASES=N` runs N
/// instead, for a longer hunt. A failure is kept as a unit test, not as a file in the tree.
#[cfg(test)]
fn proptest_config(cases: u32) -> proptest::prelude::ProptestConfig {
    let defaults = proptest::prelude::ProptestConfig::default();
    proptest::prelude::ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            defaults.cases
        } else {
            cases
        },
        failure_persistence: None,
        ..defaults
    }
}
