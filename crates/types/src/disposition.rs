//! The one vocabulary for what to do with a record whose processing failed, shared by the
//! runtime (which acts on it) and every library whose errors reach a worker (which says it).

use std::time::Duration;

/// How a failure is handled; every error that can reach a worker maps onto one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Transient: retried with backoff up to `max_attempts`, then dead-lettered.
    Retryable,
    /// A dependency is down or asks us to wait (broker, Redis, a provider's rate limit or
    /// spent quota). The record is fine: retried for as long as it takes, never
    /// dead-lettered, and the waiting costs no attempt.
    Unavailable,
    /// The record itself is the problem: dead-lettered at once.
    Permanent,
}

/// An error that knows how a worker should treat it. Implemented by the errors of the
/// libraries workers call (model, memory), so that the mapping to the runtime's
/// `ProcessError` is written once, in the runtime.
pub trait Classify: std::fmt::Display {
    /// How the record should be handled.
    fn kind(&self) -> ErrorKind;
    /// A bounded label for metrics, logs and dead letters (never ids or raw text).
    fn class(&self) -> &'static str;
    /// How long the failing dependency asked us to wait, if it said.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}
