//! The gateway end to end: the router served on loopback, a mock Kafka cluster, a real
//! memory backend (SQLite, and Redis for replicas), and the real public payloads.

mod accepted;
mod arbitrary;
mod dedupe;
mod filters;
mod metrics;
mod refused;
mod secure;
mod support;
mod unavailable;
