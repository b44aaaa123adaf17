//! Reading the newest dead letters for `GET /dead-letters`, without replaying anything.
//!
//! The dead-letter topic is unbounded, so a listing reads a window: at most `window` records
//! at the end of each partition, by offset, through a consumer of its own with an explicit
//! assignment (no group: it commits nothing and never moves the replayer's offsets). Of
//! what it read, the letters that match the filter are kept (without their values), newest
//! first, at most `limit`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chatgptd_runtime::WorkerContext;
use chatgptd_types::avro::Codec;
use chatgptd_types::records::DeadLetter;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::Filter;

/// How long a listing may take to learn the partitions and read its window.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One dead letter, as listed: why it failed and where its record came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListedLetter {
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    /// The record's key, as text (lossy for bytes that are not UTF-8).
    pub key: Option<String>,
    pub error_class: String,
    /// The reason: the error's message.
    pub error_message: String,
    pub attempts: i32,
    pub worker: String,
    pub failed_at_ms: i64,
    pub replay_count: i32,
    /// Where the letter itself is in the dead-letter topic.
    pub partition: i32,
    pub offset: i64,
}

/// What a listing found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Listing {
    /// Matching letters, newest first.
    pub dead_letters: Vec<ListedLetter>,
    /// Letters read (matching or not) in the window.
    pub scanned: usize,
    /// The window: the last this many records of each partition.
    pub window_per_partition: i64,
}

/// The newest letters of `topic` matching `filter`, at most `limit`, read from the last
/// `window` records of each partition. Blocking: call from `spawn_blocking`.
pub fn recent(
    context: &WorkerContext,
    topic: &str,
    filter: &Filter,
    limit: usize,
    window: i64,
) -> Result<Listing, String> {
    let consumer = consumer(context)?;
    let metadata = consumer
        .fetch_metadata(Some(topic), READ_TIMEOUT)
        .map_err(|err| format!("metadata of {topic}: {err}"))?;
    let partitions = metadata
        .topics()
        .first()
        .map_or(0, |t| i32::try_from(t.partitions().len()).unwrap_or(0));
    let mut assignment = TopicPartitionList::new();
    // Where each partition's window ends: its end when the listing started.
    let mut ends = BTreeMap::new();
    for partition in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, READ_TIMEOUT)
            .map_err(|err| format!("offsets of {topic}[{partition}]: {err}"))?;
        let start = low.max(high - window);
        if start < high {
            assignment
                .add_partition_offset(topic, partition, Offset::Offset(start))
                .map_err(|err| err.to_string())?;
            ends.insert(partition, high);
        }
    }
    let mut listing = Listing {
        window_per_partition: window,
        ..Listing::default()
    };
    if ends.is_empty() {
        return Ok(listing);
    }
    consumer
        .assign(&assignment)
        .map_err(|err| format!("assigning {topic}: {err}"))?;
    let codec = Codec::builtin();
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut done = std::collections::BTreeSet::new();
    while done.len() < ends.len() && Instant::now() < deadline {
        let message = match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(err)) => {
                tracing::debug!(%err, "dead-letter listing: consumer error");
                continue;
            }
            Some(Ok(message)) => message,
        };
        let partition = message.partition();
        let offset = message.offset();
        let end = ends.get(&partition).copied().unwrap_or(0);
        if offset + 1 >= end {
            done.insert(partition);
        }
        if offset >= end {
            // Arrived after the listing started: the next listing shows it.
            continue;
        }
        listing.scanned += 1;
        let Some(letter) = message
            .payload()
            .and_then(|bytes| codec.decode::<DeadLetter>(bytes).ok())
        else {
            continue;
        };
        if filter.matches(&letter) {
            listing.dead_letters.push(listed(letter, partition, offset));
        }
    }
    listing.dead_letters.sort_by(|a, b| {
        (b.failed_at_ms, b.offset, b.partition).cmp(&(a.failed_at_ms, a.offset, a.partition))
    });
    listing.dead_letters.truncate(limit);
    Ok(listing)
}

fn listed(letter: DeadLetter, partition: i32, offset: i64) -> ListedLetter {
    ListedLetter {
        source_topic: letter.source_topic,
        source_partition: letter.source_partition,
        source_offset: letter.source_offset,
        key: letter
            .key
            .as_deref()
            .map(|key| String::from_utf8_lossy(key).into_owned()),
        error_class: letter.error_class,
        error_message: letter.error_message,
        attempts: letter.attempts,
        worker: letter.worker,
        failed_at_ms: letter.failed_at_ms,
        replay_count: letter.replay_count,
        partition,
        offset,
    }
}

fn consumer(context: &WorkerContext) -> Result<BaseConsumer, String> {
    let mut config = context
        .kafka
        .base_config("dead-letters", &context.secrets)
        .map_err(|err| err.to_string())?;
    // librdkafka wants a group id; nothing is committed under it.
    config
        .set(
            "group.id",
            format!("chatgptd-dead-letters-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    config.create().map_err(|err| err.to_string())
}
