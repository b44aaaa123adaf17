//! The worker runtime every chatgptd worker stands on.
//!
//! - [`kafka`]: connection options and client configs (user properties first, then the
//!   properties at-least-once delivery rests on).
//! - [`consumer`]: runs a [`Processor`] over a consumer group: per-key order, concurrency across
//!   keys, bounded memory, retries, dead letters, drains on rebalance and shutdown.
//! - [`producer`]: the shared idempotent, acks=all producer.
//! - [`admin`], [`embedded`]: topics from `topics.yaml`; the in-process broker of `chatgptd up`.
//! - [`health`], [`telemetry`], [`http`]: `/readyz`, metrics, and their HTTP endpoints.
//! - [`Service`]: the one shape of a worker (`run(shutdown)`, `routes()`).

pub mod admin;
pub mod consumer;
pub mod dead_letter;
pub mod embedded;
pub mod health;
pub mod http;
pub mod kafka;
pub mod processor;
pub mod producer;
pub mod retry;
pub mod service;
pub mod shutdown;
pub mod telemetry;

mod error;

pub use consumer::{ConsumerOptions, ConsumerRuntime};
pub use error::Error;
pub use health::Health;
pub use kafka::KafkaOptions;
pub use processor::{
    AnyRecord, Decode, ErrorKind, Incoming, OutputRecord, ProcessError, Processor, RecordMeta,
    StartAt,
};
pub use producer::Producer;
pub use service::Service;

use chatgptd_types::Secrets;
use chatgptd_types::avro::Codec;

/// What every worker of a process is given: Kafka settings, the shared producer, the Avro
/// codec, the health registry behind `/readyz`, and the secrets Kafka's `secret_properties`
/// are looked up in (by every consumer a worker creates).
#[derive(Debug, Clone)]
pub struct WorkerContext {
    pub kafka: KafkaOptions,
    pub producer: Producer,
    pub codec: Codec,
    pub health: Health,
    pub secrets: Secrets,
}

impl WorkerContext {
    /// Creates the shared producer for `kafka` (its secret properties from `secrets`) and the
    /// built-in codec.
    pub fn new(kafka: &KafkaOptions, health: &Health, secrets: &Secrets) -> Result<Self, Error> {
        let producer = Producer::new(kafka, "shared", health, secrets)?;
        Ok(WorkerContext {
            kafka: kafka.clone(),
            producer,
            codec: Codec::builtin(),
            health: health.clone(),
            secrets: secrets.clone(),
        })
    }
}
