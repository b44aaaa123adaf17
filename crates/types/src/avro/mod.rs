//! Avro for Kafka values.
//!
//! Every value chatgptd writes is an Avro datum behind a small header that names its schema
//! ([`framing`]). Today that header is the spec's single-object encoding: `C3 01` plus the
//! spec's CRC-64-AVRO (Rabin) fingerprint of the schema's Parsing Canonical Form, 8 bytes
//! little-endian, so any Avro library that has the schema can decode our records. We compute it
//! ourselves (`canonical`): apache-avro 0.22's canonical form keeps `{"type":"long"}` for a
//! logical type, so its fingerprints match no other library's. Records written with those older
//! fingerprints are still read: the store maps both to the same schema version. The [`Framing`] trait is where Confluent Schema Registry framing (`00` plus a 4-byte
//! registry id) would plug in.
//!
//! The [`SchemaStore`] knows every schema version this build can read; a record written with
//! an older version is resolved to the current one, fields added since then taking their
//! defaults. An unknown fingerprint or a malformed body is an [`Error`](crate::Error), never a
//! panic: workers send such records to the dead-letter topic.

mod canonical;
mod codec;
mod framing;
mod json;
#[cfg(test)]
mod proptests;
mod store;

pub use codec::{AvroRecord, Codec};
pub use framing::{Framing, SchemaId, SingleObject};
pub use store::{SchemaStore, StoredSchema};

/// The largest allocation a malformed length prefix can ask the Avro decoder for. Kafka values
/// are a few MiB at most; without this cap a poison record could claim gigabytes.
pub const MAX_DECODE_ALLOCATION_BYTES: usize = 16 * 1024 * 1024;
