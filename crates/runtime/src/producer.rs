//! The one producer a process shares: acks=all, idempotent.

use std::time::Duration;

use chatgptd_types::Secrets;
use futures::future::try_join_all;
use rdkafka::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::util::Timeout;
use tracing::warn;

use crate::Error;
use crate::health::{Health, Readiness};
use crate::kafka::KafkaOptions;
use crate::processor::OutputRecord;
use crate::telemetry;

/// Reports broker connectivity to `/readyz`.
pub struct ProducerContext {
    readiness: Readiness,
    health: Health,
}

impl ClientContext for ProducerContext {
    fn stats_raw(&self, statistics: &[u8]) {
        match telemetry::any_broker_up(statistics) {
            Some(true) => self.readiness.set(true, "connected"),
            Some(false) => self.readiness.set(false, "no broker connection"),
            None => {}
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        use rdkafka::types::RDKafkaErrorCode as Code;
        match error.rdkafka_error_code() {
            Some(Code::AllBrokersDown) => self.readiness.set(false, "all brokers down"),
            // The idempotent producer lost its guarantees (e.g. the broker forgot its
            // sequence numbers): every later send fails, and only a new producer, that is a
            // restart, recovers. Records are not lost: their offsets stay uncommitted.
            Some(Code::Fatal) => {
                let detail = format!("fatal producer error, restart needed: {reason}");
                tracing::error!(%error, reason, "fatal producer error: the process must restart");
                self.readiness.set(false, &detail);
                self.health.fail(&detail);
                return;
            }
            _ => {}
        }
        warn!(%error, reason, "kafka producer error");
    }
}

/// Whether the broker (or librdkafka) refused a record for what it is, so that sending it
/// again cannot succeed: too large or malformed. Anything else (a timeout, no broker, a
/// missing topic, a denied write) is the cluster's state and clears once that is fixed.
pub fn rejects_record(err: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        err.rdkafka_error_code(),
        Some(
            Code::MessageSizeTooLarge
                | Code::InvalidMessageSize
                | Code::InvalidMessage
                | Code::InvalidRecord
                | Code::BadMessage
        )
    )
}

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// A shared, cloneable producer. A send completes when every in-sync replica has the record.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer<ProducerContext>,
    /// How long a send may wait for room in librdkafka's local queue.
    queue_timeout: Duration,
    /// The largest record librdkafka accepts (`message.max.bytes`), for callers that must
    /// tell a sender "too large" before trying.
    max_message_bytes: usize,
    readiness: Readiness,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").finish_non_exhaustive()
    }
}

impl Producer {
    /// Creates the producer, its secret properties looked up in `secrets`; `/readyz` shows it
    /// as `producer:<name>` until a broker is up.
    pub fn new(
        kafka: &KafkaOptions,
        name: &str,
        health: &Health,
        secrets: &Secrets,
    ) -> Result<Self, Error> {
        let readiness = health.register(format!("producer:{name}"));
        let config = kafka.producer_config(name, secrets)?;
        let max_message_bytes = config
            .get("message.max.bytes")
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
        let inner = config
            .create_with_context(ProducerContext {
                readiness: readiness.clone(),
                health: health.clone(),
            })
            .map_err(Error::kafka("creating the producer"))?;
        Ok(Producer {
            inner,
            queue_timeout: kafka.delivery_timeout,
            max_message_bytes,
            readiness,
        })
    }

    /// The largest record (key, value and headers, with librdkafka's framing) this producer
    /// sends: `message.max.bytes` from the Kafka properties, else librdkafka's default.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Sends one record and waits for its acknowledgement. Returns partition and offset.
    pub async fn send(&self, record: &OutputRecord) -> Result<(i32, i64), KafkaError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (name, value) in &record.headers {
            headers = headers.insert(Header {
                key: name,
                value: Some(value),
            });
        }
        let mut future_record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&record.topic)
            .payload(record.payload.as_slice())
            .headers(headers);
        if let Some(key) = &record.key {
            future_record = future_record.key(key.as_slice());
        }
        match self
            .inner
            .send(future_record, Timeout::After(self.queue_timeout))
            .await
        {
            Ok(delivery) => Ok((delivery.partition, delivery.offset)),
            Err((err, _)) => Err(err),
        }
    }

    /// Sends every record concurrently; succeeds only when all are acknowledged.
    pub async fn send_all(&self, records: &[OutputRecord]) -> Result<(), KafkaError> {
        try_join_all(records.iter().map(|record| self.send(record)))
            .await
            .map(|_| ())
    }

    /// Waits until the cluster answers a metadata request, or `timeout` passes.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), Error> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            inner.client().fetch_metadata(None, timeout).map(|_| ())
        })
        .await
        .map_err(|err| Error::ConsumerThread(err.to_string()))?
        .map_err(Error::kafka("connecting the producer"))?;
        self.readiness.set(true, "connected");
        Ok(())
    }

    /// Waits for queued records to be delivered (at shutdown).
    pub async fn flush(&self, timeout: Duration) {
        let inner = self.inner.clone();
        let result = tokio::task::spawn_blocking(move || inner.flush(timeout)).await;
        if let Ok(Err(err)) = result {
            warn!(%err, "producer flush did not complete");
        }
    }

    /// The underlying rdkafka producer, for admin-style calls.
    pub fn rdkafka(&self) -> &FutureProducer<ProducerContext> {
        &self.inner
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::types::RDKafkaErrorCode;

    use super::*;

    #[test]
    fn a_fatal_error_fails_health_and_readiness_and_brokers_down_only_readiness() {
        let health = Health::default();
        let readiness = health.register("producer:test");
        readiness.set(true, "connected");
        let context = ProducerContext {
            readiness: readiness.clone(),
            health: health.clone(),
        };
        context.error(KafkaError::Global(RDKafkaErrorCode::AllBrokersDown), "down");
        assert!(!readiness.is_ready());
        assert_eq!(health.failure(), None, "an outage heals by itself");

        readiness.set(true, "connected");
        context.error(KafkaError::Global(RDKafkaErrorCode::Fatal), "sequence lost");
        assert!(!readiness.is_ready());
        assert!(health.failure().unwrap().contains("sequence lost"));
    }
}
