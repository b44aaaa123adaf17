//! Dead letters: a record a worker gave up on, with the reason in its value and its headers.

use std::collections::BTreeMap;

use chatgptd_types::avro::Codec;
use chatgptd_types::records::DeadLetter;
use chatgptd_types::trace::TraceContext;
use rdkafka::message::{Headers, Message, OwnedMessage};
use serde_bytes::ByteBuf;

use crate::processor::{OutputRecord, ProcessError};

/// Header names on every dead letter, so tools that only read headers can triage.
pub mod header {
    pub const SOURCE_TOPIC: &str = "dlq.source.topic";
    pub const SOURCE_PARTITION: &str = "dlq.source.partition";
    pub const SOURCE_OFFSET: &str = "dlq.source.offset";
    pub const ERROR_CLASS: &str = "dlq.error.class";
    pub const ERROR_MESSAGE: &str = "dlq.error.message";
    pub const ATTEMPTS: &str = "dlq.attempts";
    pub const WORKER: &str = "dlq.worker";
    /// Set by the replayer on the records it re-publishes: how many times they were replayed.
    pub const REPLAY_COUNT: &str = "dlq.replay.count";
    /// Set when the broker refused the full dead letter (usually too large: the original was
    /// close to `message.max.bytes`): the letter then carries neither the original value nor
    /// its headers, and this says why and where the original is (topic/partition/offset). It
    /// is in the letter's value's `headers` map too.
    pub const VALUE_OMITTED: &str = "dlq.value.omitted";
}

/// Error messages are cut to this many bytes in headers and values.
const MAX_MESSAGE_BYTES: usize = 2048;

/// Why a record is dead, and after how many tries.
#[derive(Debug, Clone)]
pub struct Failure {
    pub class: &'static str,
    pub message: String,
    pub attempts: u32,
}

/// Builds the dead letter for `message` on `topic`.
pub fn dead_letter_record(
    codec: &Codec,
    topic: &str,
    worker: &str,
    message: &OwnedMessage,
    failure: &Failure,
    trace: &TraceContext,
) -> Result<OutputRecord, ProcessError> {
    build(codec, topic, worker, message, failure, trace, None)
}

/// Builds the dead letter for `message` when the full one was refused (`refused` says how):
/// without the original value and headers, which are what can make it too large, and with
/// [`header::VALUE_OMITTED`] saying so and where the original is. The reason it died is kept.
pub fn dead_letter_without_value(
    codec: &Codec,
    topic: &str,
    worker: &str,
    message: &OwnedMessage,
    failure: &Failure,
    trace: &TraceContext,
    refused: &str,
) -> Result<OutputRecord, ProcessError> {
    let omitted = truncate(
        &format!(
            "the dead letter with the original value ({} bytes) was refused ({refused}); \
             the original is at {}/{}/{}",
            message.payload().map_or(0, <[u8]>::len),
            message.topic(),
            message.partition(),
            message.offset()
        ),
        MAX_MESSAGE_BYTES,
    );
    build(codec, topic, worker, message, failure, trace, Some(omitted))
}

fn build(
    codec: &Codec,
    topic: &str,
    worker: &str,
    message: &OwnedMessage,
    failure: &Failure,
    trace: &TraceContext,
    omitted: Option<String>,
) -> Result<OutputRecord, ProcessError> {
    let mut source_headers = BTreeMap::new();
    let mut replay_count = 0;
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            let value = header.value.unwrap_or_default();
            if header.key == header::REPLAY_COUNT {
                replay_count = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
            }
            source_headers.insert(header.key.to_string(), ByteBuf::from(value.to_vec()));
        }
    }
    let value = match &omitted {
        None => message.payload().map(<[u8]>::to_vec),
        Some(omitted) => {
            source_headers = BTreeMap::from([(
                header::VALUE_OMITTED.to_string(),
                ByteBuf::from(omitted.as_bytes().to_vec()),
            )]);
            None
        }
    };
    let error_message = truncate(&failure.message, MAX_MESSAGE_BYTES);
    let letter = DeadLetter {
        source_topic: message.topic().to_string(),
        source_partition: message.partition(),
        source_offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        value,
        headers: source_headers,
        error_class: failure.class.to_string(),
        error_message: error_message.clone(),
        attempts: failure.attempts as i32,
        worker: worker.to_string(),
        failed_at_ms: chatgptd_types::now_ms(),
        replay_count,
    };
    let payload = codec
        .encode(&letter)
        .map_err(|err| ProcessError::permanent("encode", err.to_string()))?;
    let mut headers = vec![
        (
            header::SOURCE_TOPIC.into(),
            message.topic().as_bytes().to_vec(),
        ),
        (
            header::SOURCE_PARTITION.into(),
            message.partition().to_string().into_bytes(),
        ),
        (
            header::SOURCE_OFFSET.into(),
            message.offset().to_string().into_bytes(),
        ),
        (
            header::ERROR_CLASS.into(),
            failure.class.as_bytes().to_vec(),
        ),
        (header::ERROR_MESSAGE.into(), error_message.into_bytes()),
        (
            header::ATTEMPTS.into(),
            failure.attempts.to_string().into_bytes(),
        ),
        (header::WORKER.into(), worker.as_bytes().to_vec()),
        (TraceContext::HEADER.into(), trace.to_header().into_bytes()),
    ];
    if let Some(omitted) = omitted {
        headers.push((header::VALUE_OMITTED.into(), omitted.into_bytes()));
    }
    Ok(OutputRecord {
        topic: topic.to_string(),
        key: message.key().map(<[u8]>::to_vec),
        payload,
        headers,
    })
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::Timestamp;
    use rdkafka::message::{Header, OwnedHeaders};

    #[test]
    fn carries_the_source_and_the_reason_in_value_and_headers() {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "traceparent",
                value: Some("x"),
            })
            .insert(Header {
                key: header::REPLAY_COUNT,
                value: Some("2"),
            });
        let message = OwnedMessage::new(
            Some(b"payload".to_vec()),
            Some(b"key".to_vec()),
            "tickets.events".into(),
            Timestamp::NotAvailable,
            3,
            42,
            Some(headers),
        );
        let failure = Failure {
            class: "validation",
            message: "é".repeat(3000),
            attempts: 1,
        };
        let trace = TraceContext::new_root();
        let codec = Codec::builtin();
        let record =
            dead_letter_record(&codec, "dlq", "enrich", &message, &failure, &trace).unwrap();
        let header = |name: &str| {
            record
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
        };
        assert_eq!(
            header(header::SOURCE_TOPIC).as_deref(),
            Some("tickets.events")
        );
        assert_eq!(header(header::SOURCE_PARTITION).as_deref(), Some("3"));
        assert_eq!(header(header::SOURCE_OFFSET).as_deref(), Some("42"));
        assert_eq!(header(header::ERROR_CLASS).as_deref(), Some("validation"));
        assert_eq!(header(header::ATTEMPTS).as_deref(), Some("1"));
        assert!(header(header::ERROR_MESSAGE).unwrap().len() <= MAX_MESSAGE_BYTES + 3);

        let letter: DeadLetter = codec.decode(&record.payload).unwrap();
        assert_eq!(letter.value.as_deref(), Some(&b"payload"[..]));
        assert_eq!(letter.key.as_deref(), Some(&b"key"[..]));
        assert_eq!(letter.replay_count, 2);
        assert_eq!(letter.headers["traceparent"].as_ref(), b"x");
        assert_eq!(record.key.as_deref(), Some(&b"key"[..]));
        assert_eq!(header(header::VALUE_OMITTED), None);
    }

    #[test]
    fn without_the_value_it_says_where_the_original_is_and_keeps_the_reason() {
        let headers = OwnedHeaders::new().insert(Header {
            key: "big",
            value: Some(&[b'h'; 5000][..]),
        });
        let message = OwnedMessage::new(
            Some(vec![b'v'; 100_000]),
            Some(b"key".to_vec()),
            "tickets.events".into(),
            Timestamp::NotAvailable,
            3,
            42,
            Some(headers),
        );
        let failure = Failure {
            class: "validation",
            message: "too long".into(),
            attempts: 1,
        };
        let codec = Codec::builtin();
        let trace = TraceContext::new_root();
        let full = dead_letter_record(&codec, "dlq", "enrich", &message, &failure, &trace).unwrap();
        let record = dead_letter_without_value(
            &codec,
            "dlq",
            "enrich",
            &message,
            &failure,
            &trace,
            "Message size too large",
        )
        .unwrap();
        assert!(
            record.payload.len() < 1000,
            "{} bytes",
            record.payload.len()
        );
        assert!(full.payload.len() > 100_000);
        let omitted = record
            .headers
            .iter()
            .find(|(name, _)| name == header::VALUE_OMITTED)
            .map(|(_, value)| String::from_utf8(value.clone()).unwrap())
            .unwrap();
        assert!(
            omitted.contains("tickets.events/3/42") && omitted.contains("100000 bytes"),
            "{omitted}"
        );
        let letter: DeadLetter = codec.decode(&record.payload).unwrap();
        assert_eq!(letter.value, None);
        assert_eq!(letter.error_class, "validation");
        assert_eq!(letter.error_message, "too long");
        assert_eq!(letter.source_offset, 42);
        assert_eq!(letter.key.as_deref(), Some(&b"key"[..]));
        assert_eq!(
            letter.headers.keys().collect::<Vec<_>>(),
            vec![header::VALUE_OMITTED]
        );
    }
}
