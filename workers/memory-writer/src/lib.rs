//! The memory writer: every MemoryRecord on the memory topic is appended to its owner's
//! conversation history (ordered, capped) and becomes the owner's latest state, in the memory
//! backend, with a TTL by kind.
//!
//! Both writes are idempotent: the history entry's id is the record's id, and the state's
//! version is the record's offset (an owner's records share a partition, so offsets order
//! them). A redelivered record therefore changes nothing. While the backend is unreachable
//! the record is retried without limit and no offset is stored: nothing is lost or skipped.
//!
//! A record's two writes go to the backend together (on Redis, one pipeline of its two
//! scripts). The writes of the records in flight are not batched further: redis-rs's
//! multiplexed connections already pipeline concurrent requests, and a batcher in front of
//! them measured 0.72-0.76 of what Redis does with these scripts where writing each record
//! as it comes measured 0.92-0.96 (`cargo bench --bench memory`).

use std::future::Future;
use std::sync::Arc;

use chatgptd_memory::{
    HistoryEntry, HistoryLimits, Memory, MemoryOptions, RecordWrite, StateEntry,
};
use chatgptd_runtime::{
    ConsumerOptions, ConsumerRuntime, Incoming, OutputRecord, ProcessError, Processor, Service,
    WorkerContext,
};
use chatgptd_types::records::MemoryRecord;
use chatgptd_types::topics::names;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// The longest text kept in an owner's latest state; the history keeps the whole text.
const STATE_TEXT_CHARS: usize = 2_000;

/// How the memory writer consumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryWriterOptions {
    /// The memory topic.
    pub topic: String,
    /// Consumer settings (group `chatgptd-memory` by default).
    pub consumer: ConsumerOptions,
}

impl Default for MemoryWriterOptions {
    fn default() -> Self {
        MemoryWriterOptions {
            topic: names::MEMORY_RECORDS.to_string(),
            consumer: ConsumerOptions::default(),
        }
    }
}

/// Writes MemoryRecords to the memory backend.
#[derive(Debug)]
pub struct MemoryWriter {
    memory: Arc<dyn Memory>,
    limits: MemoryOptions,
}

impl MemoryWriter {
    /// A writer into `memory`, capping and expiring by `limits`.
    pub fn new(memory: Arc<dyn Memory>, limits: MemoryOptions) -> Self {
        MemoryWriter { memory, limits }
    }

    async fn write(&self, record: &MemoryRecord, offset: i64) -> Result<(), ProcessError> {
        let ttl = Some(self.limits.ttl_for(&record.kind));
        let mut attributes = record.attributes.clone();
        attributes.insert("kind".to_string(), record.kind.clone());
        let entry = HistoryEntry {
            id: record.id.clone(),
            role: role_of(&record.kind).to_string(),
            text: record.text.clone(),
            at_ms: record.created_at_ms,
            attributes,
        };
        let limits = HistoryLimits {
            cap: self.limits.history_cap,
            ttl,
        };
        let state = StateEntry {
            version: offset,
            value: serde_json::json!({
                "id": record.id,
                "kind": record.kind,
                "text": record.text.chars().take(STATE_TEXT_CHARS).collect::<String>(),
                "tags": record.tags,
                "attributes": record.attributes,
                "created_at_ms": record.created_at_ms,
                "source": format!("{}/{}@{}", record.source_topic, record.source_partition, record.source_offset),
            }),
        };
        let write = RecordWrite {
            owner: record.owner.clone(),
            entry,
            limits,
            state,
            state_ttl: ttl,
        };
        self.memory
            .write_records(std::slice::from_ref(&write))
            .await
            .pop()
            .unwrap_or_else(|| {
                Err(chatgptd_memory::Error::Unavailable(
                    "the memory backend returned no result for the write".to_string(),
                ))
            })
            .map_err(ProcessError::classified)
    }
}

/// The conversational role of a memory kind.
fn role_of(kind: &str) -> &'static str {
    match kind {
        "message" | "ticket" => "user",
        "reply" | "enrichment" | "step_result" => "assistant",
        "decision" => "system",
        _ => "event",
    }
}

impl Processor for MemoryWriter {
    type Input = MemoryRecord;

    fn process(
        &self,
        record: &Incoming<MemoryRecord>,
    ) -> impl Future<Output = Result<Vec<OutputRecord>, ProcessError>> + Send {
        let offset = record.meta.offset;
        async move {
            self.write(&record.value, offset).await?;
            Ok(Vec::new())
        }
    }
}

/// The memory writer's consumer name: its group is `chatgptd-memory`, as it was before the
/// worker was named memory-writer; a new name would start a new group from scratch.
const CONSUMER: &str = "memory";

/// `chatgptd worker memory-writer`: [`MemoryWriter`] on its consumer group.
pub struct MemoryWriterService {
    runtime: ConsumerRuntime<MemoryWriter>,
}

impl MemoryWriterService {
    /// The writer over `options.topic` into `memory`, capping and expiring by `limits`.
    pub fn new(
        options: &MemoryWriterOptions,
        limits: &MemoryOptions,
        context: &WorkerContext,
        memory: Arc<dyn Memory>,
    ) -> Result<Self, chatgptd_runtime::Error> {
        let writer = MemoryWriter::new(memory, limits.clone());
        let runtime = ConsumerRuntime::new(
            CONSUMER,
            context,
            options.consumer.clone(),
            vec![options.topic.clone()],
            writer,
        )?;
        Ok(MemoryWriterService { runtime })
    }
}

impl Service for MemoryWriterService {
    type Error = chatgptd_runtime::Error;
    const NAME: &'static str = "memory-writer";

    async fn run(self, shutdown: CancellationToken) -> Result<(), Self::Error> {
        self.runtime.run(shutdown).await
    }
}
