//! Domain types shared by every chatgptd crate.
//!
//! - [`avro`]: the Avro codec (single-object encoding) and the store of known schemas.
//! - [`backoff`]: the one spacing of retries.
//! - [`records`]: one Rust struct per record type in `schemas/`.
//! - [`secrets`]: the one lookup of secrets (the environment, or a map a test hands over).
//! - [`source`]: the trackers tickets come from.
//! - [`topics`]: the model of `topics.yaml`.
//! - [`trace`]: W3C trace context, carried in Kafka headers.
//! - [`ErrorKind`] and [`Classify`]: the one vocabulary for how a failed record is handled.
//! - [`waiting`]: time a record spends waiting on limits, which its timeout does not count.

pub mod avro;
pub mod backoff;
pub mod records;
pub mod secrets;
pub mod source;
pub mod topics;
pub mod trace;
pub mod waiting;

mod disposition;
mod error;

pub use disposition::{Classify, ErrorKind};
pub use error::Error;
pub use secrets::Secrets;
pub use source::Source;

/// Milliseconds since the Unix epoch, the unit of every `*_ms` timestamp in the records.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}
