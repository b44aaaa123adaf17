//! What a worker plugs into the runtime: a [`Processor`] turns one decoded record into
//! output records, or says why it cannot.

use std::future::Future;
use std::time::Duration;

use chatgptd_types::Classify;
use chatgptd_types::avro::{AvroRecord, Codec};
use chatgptd_types::trace::TraceContext;

/// A worker's logic for one record. The runtime decodes the input, calls `process` (again, on
/// a retryable error), produces the returned outputs and waits for the broker to acknowledge
/// them, and only then counts the record as done.
///
/// `process` may be called more than once for the same record (a retry, or a redelivery after
/// a crash): side effects must be idempotent.
pub trait Processor: Send + Sync + 'static {
    /// What this processor consumes: an Avro record type, or [`AnyRecord`] for any of them.
    type Input: Decode;

    /// Processes one record.
    fn process(
        &self,
        record: &Incoming<Self::Input>,
    ) -> impl Future<Output = Result<Vec<OutputRecord>, ProcessError>> + Send;

    /// The topics this processor writes to, checked at start with the ones it reads: a
    /// missing output topic would otherwise stall the first record that needs it.
    fn output_topics(&self) -> Vec<String> {
        Vec::new()
    }

    /// Whether records with the same key must be processed one after another, in offset
    /// order (the default). A processor whose result does not depend on order (an index
    /// keyed by record id) returns false, and every record runs in a lane of its own.
    fn ordered_by_key(&self) -> bool {
        true
    }

    /// Where to start reading partitions just assigned to this member, for a processor that
    /// keeps its own positions (the indexer keeps them in its index commits). `None` for a
    /// partition means: from the group's committed offset. Runs on the polling thread during
    /// the rebalance, so it must be quick.
    fn start_offsets(&self, partitions: &[(String, i32)]) -> Vec<Option<StartAt>> {
        vec![None; partitions.len()]
    }

    /// A record was dead-lettered (it failed to decode or to process) and counts as done.
    /// A processor that keeps its own positions learns here about records that never
    /// reached `process`. A record read from the dead-letter topic itself is left where it
    /// is instead of being written there again, and reported here too.
    fn dead_lettered(&self, meta: &RecordMeta) {
        let _ = meta;
    }

    /// Partitions were taken away, after their in-flight records drained (or were
    /// abandoned). Runs on the polling thread during the rebalance.
    fn partitions_revoked(&self, partitions: &[(String, i32)]) {
        let _ = partitions;
    }
}

/// A value the runtime can decode from a record's payload.
pub trait Decode: Send + Sync + Sized + 'static {
    /// Decodes `payload`; an error dead-letters the record.
    fn decode(codec: &Codec, payload: &[u8]) -> Result<Self, chatgptd_types::Error>;
}

impl<T: AvroRecord> Decode for T {
    fn decode(codec: &Codec, payload: &[u8]) -> Result<Self, chatgptd_types::Error> {
        codec.decode::<T>(payload)
    }
}

/// Any record this build has a schema for, as JSON: for a processor that reads topics of
/// several record types and treats them alike (the webhook subscriptions).
#[derive(Debug, Clone)]
pub struct AnyRecord {
    /// The schema the record was written with, e.g. `chatgptd.EnrichedTicket`.
    pub schema: String,
    /// The decoded value.
    pub value: serde_json::Value,
}

impl Decode for AnyRecord {
    fn decode(codec: &Codec, payload: &[u8]) -> Result<Self, chatgptd_types::Error> {
        let (schema, value) = codec.decode_json(payload)?;
        Ok(AnyRecord { schema, value })
    }
}

/// A start position chosen by the processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The first record still in the partition.
    Beginning,
    /// This offset.
    Offset(i64),
}

/// A decoded record and where it came from.
#[derive(Debug, Clone)]
pub struct Incoming<T> {
    /// The decoded value.
    pub value: T,
    /// Topic, partition, offset, key, headers.
    pub meta: RecordMeta,
}

/// Where a record came from, and how often it has been tried.
#[derive(Debug, Clone)]
pub struct RecordMeta {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// The producer's timestamp, if any.
    pub timestamp_ms: Option<i64>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// This processing's span: a child of the record's `traceparent`, or a new trace.
    pub trace: TraceContext,
    /// 1 on the first try.
    pub attempt: u32,
    /// The offset of the record taken before this one from the same partition since the
    /// partition was assigned (`None` for the first). Offsets can have gaps; following these
    /// links tells a processor that keeps its own positions which records it has all of.
    pub previous_offset: Option<i64>,
}

impl RecordMeta {
    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The key as text, or empty.
    pub fn key_str(&self) -> &str {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
            .unwrap_or("")
    }
}

/// A record to produce. The runtime adds a `traceparent` header when the processor set none.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputRecord {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl OutputRecord {
    /// An Avro-encoded output. Encoding fails only if the value does not fit its schema, a
    /// bug that retrying cannot fix, so it is a permanent error.
    pub fn avro<T: AvroRecord>(
        codec: &Codec,
        topic: impl Into<String>,
        key: impl Into<Vec<u8>>,
        value: &T,
    ) -> Result<Self, ProcessError> {
        let payload = codec
            .encode(value)
            .map_err(|err| ProcessError::permanent("encode", err.to_string()))?;
        Ok(OutputRecord {
            topic: topic.into(),
            key: Some(key.into()),
            payload,
            headers: Vec::new(),
        })
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Whether trying again can help, and how often: the one vocabulary, shared with the
/// libraries whose errors reach a worker (see [`Classify`]).
pub use chatgptd_types::ErrorKind;
/// Why a record could not be processed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{class}: {message}")]
pub struct ProcessError {
    pub kind: ErrorKind,
    /// A short bounded label (`validation`, `model_refusal`, `http_4xx`...) for metrics and
    /// dead-letter headers. Never ids or free text.
    pub class: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// The earliest the next try may start (a `Retry-After` from an API).
    pub retry_after: Option<Duration>,
}

impl ProcessError {
    /// A transient failure.
    pub fn retryable(class: &'static str, message: impl Into<String>) -> Self {
        ProcessError {
            kind: ErrorKind::Retryable,
            class,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A dependency is down: retry until it is back.
    pub fn unavailable(class: &'static str, message: impl Into<String>) -> Self {
        ProcessError {
            kind: ErrorKind::Unavailable,
            class,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(class: &'static str, message: impl Into<String>) -> Self {
        ProcessError {
            kind: ErrorKind::Permanent,
            class,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Asks the next try to wait at least this long.
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// The one mapping from a library's error (model, memory) to a processing error: the
    /// library says how the record should be treated and how long to wait.
    pub fn classified(err: impl Classify) -> Self {
        ProcessError {
            kind: err.kind(),
            class: err.class(),
            message: err.to_string(),
            retry_after: err.retry_after(),
        }
    }

    /// True if retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        self.kind == ErrorKind::Permanent
    }
}
