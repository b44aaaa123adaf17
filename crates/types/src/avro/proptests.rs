//! Property tests of the decoder: whatever bytes a topic holds, decoding is a typed
//! [`Error`] (so the worker dead-letters the record with its class), never a panic; and
//! generated records round-trip. Bounded case counts keep them to seconds in the suite; the
//! cargo-fuzz target `avro_decode` (fuzz/) calls the same public entry points for longer runs.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::Index;
use serde_bytes::ByteBuf;

use super::{Codec, SingleObject};
use crate::Error;
use crate::records::{
    AgentMessage, DeadLetter, EnrichedTicket, MemoryRecord, TicketEvent, WorkflowStep,
};

/// `cases` in the suite; `PROPTEST_CASES=N` runs N instead, for a longer hunt.
fn config(cases: u32) -> ProptestConfig {
    let defaults = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            defaults.cases
        } else {
            cases
        },
        // A failure is kept as a unit test below, not as a file in the source tree.
        failure_persistence: None,
        ..defaults
    }
}

/// Every error a decoder may return for bad bytes: a dead letter's `decode` or
/// `unknown_schema` class, never `encode` or `config`.
fn assert_decode_error(err: &Error) {
    assert!(
        matches!(
            err,
            Error::Framing(_)
                | Error::UnknownSchema { .. }
                | Error::WrongType { .. }
                | Error::Malformed { .. }
        ),
        "not a decode error: {err:?}"
    );
    assert!(matches!(err.class(), "decode" | "unknown_schema"));
    // The message goes into the dead letter: it must render.
    assert!(!err.to_string().is_empty());
}

fn check<T>(result: Result<T, Error>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(err) => {
            assert_decode_error(&err);
            None
        }
    }
}

/// Every public way to decode `bytes`: the header alone, JSON, and each record type.
/// Returns the TicketEvent if the bytes decode as one.
fn decode_every_way(codec: &Codec, bytes: &[u8]) -> Option<TicketEvent> {
    check(codec.writer_schema(bytes).map(|_| ()));
    check(codec.decode_json(bytes));
    check(codec.decode::<EnrichedTicket>(bytes));
    check(codec.decode::<AgentMessage>(bytes));
    check(codec.decode::<WorkflowStep>(bytes));
    check(codec.decode::<MemoryRecord>(bytes));
    check(codec.decode::<DeadLetter>(bytes));
    check(codec.decode::<TicketEvent>(bytes))
}

fn text() -> impl Strategy<Value = String> {
    // Any Unicode (NUL, surrogates-free scalars, astral planes), mostly short.
    prop_oneof![
        4 => "\\PC{0,24}",
        1 => any::<String>(),
    ]
}

prop_compose! {
    fn ticket_event()(
        ids in proptest::collection::vec(text(), 6),
        title in text(),
        description in text(),
        optionals in proptest::collection::vec(proptest::option::of(text()), 5),
        labels in proptest::collection::vec(text(), 0..6),
        received_at_ms in any::<i64>(),
        raw_payload in text(),
    ) -> TicketEvent {
        let mut ids = ids.into_iter();
        let mut optionals = optionals.into_iter();
        let mut id = || ids.next().unwrap();
        let mut optional = || optionals.next().unwrap();
        TicketEvent {
            event_id: id(),
            source: id(),
            delivery_id: id(),
            event_type: id(),
            ticket_id: id(),
            ticket_key: id(),
            title,
            description,
            priority: optional(),
            status: optional(),
            labels,
            reporter: optional(),
            actor: optional(),
            url: optional(),
            received_at_ms,
            raw_payload,
        }
    }
}

prop_compose! {
    fn dead_letter()(
        source_topic in text(),
        source_partition in any::<i32>(),
        source_offset in any::<i64>(),
        key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..256)),
        headers in proptest::collection::btree_map(
            text(), proptest::collection::vec(any::<u8>(), 0..32), 0..4),
        error_class in text(),
        error_message in text(),
        attempts in any::<i32>(),
        worker in text(),
        failed_at_ms in any::<i64>(),
        replay_count in any::<i32>(),
    ) -> DeadLetter {
        DeadLetter {
            source_topic,
            source_partition,
            source_offset,
            key,
            value,
            headers: headers
                .into_iter()
                .map(|(name, value)| (name, ByteBuf::from(value)))
                .collect::<BTreeMap<_, _>>(),
            error_class,
            error_message,
            attempts,
            worker,
            failed_at_ms,
            replay_count,
        }
    }
}

/// A change to a valid encoding.
#[derive(Debug, Clone)]
enum Mutation {
    /// One bit flipped anywhere, header included.
    FlipBit(Index, u8),
    /// A byte replaced.
    SetByte(Index, u8),
    /// Cut short by at least one byte.
    Truncate(Index),
    /// Bytes after the record.
    Append(Vec<u8>),
    /// The valid header with another body.
    ReplaceBody(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::SetByte(at, byte)),
        any::<Index>().prop_map(Mutation::Truncate),
        proptest::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Append),
        proptest::collection::vec(any::<u8>(), 0..512).prop_map(Mutation::ReplaceBody),
    ]
}

/// A valid header of any schema version this build reads (its spec or legacy fingerprint)
/// followed by `body`.
fn known_header_then(codec: &Codec, version: Index, legacy: bool, body: &[u8]) -> Vec<u8> {
    let versions: Vec<_> = codec.store().all_versions().collect();
    let stored = versions[version.index(versions.len())];
    let fingerprint = if legacy {
        stored.legacy_fingerprint
    } else {
        stored.fingerprint
    };
    let mut bytes = Vec::with_capacity(SingleObject::HEADER_LEN + body.len());
    bytes.extend_from_slice(&SingleObject::MARKER);
    bytes.extend_from_slice(&fingerprint);
    bytes.extend_from_slice(body);
    bytes
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_bytes_are_a_typed_error(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        decode_every_way(&Codec::builtin(), &bytes);
    }

    #[test]
    fn a_known_header_with_any_body_is_a_typed_error_or_a_record(
        version in any::<Index>(),
        legacy in any::<bool>(),
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let codec = Codec::builtin();
        decode_every_way(&codec, &known_header_then(&codec, version, legacy, &body));
    }

    #[test]
    fn mutated_ticket_events_decode_or_fail_typed(event in ticket_event(), change in mutation()) {
        let codec = Codec::builtin();
        let valid = codec.encode(&event).unwrap();
        let mut bytes = valid.clone();
        match &change {
            Mutation::FlipBit(at, bit) => bytes[at.index(valid.len())] ^= 1 << bit,
            Mutation::SetByte(at, byte) => bytes[at.index(valid.len())] = *byte,
            Mutation::Truncate(at) => bytes.truncate(at.index(valid.len())),
            Mutation::Append(extra) => bytes.extend_from_slice(extra),
            Mutation::ReplaceBody(body) => {
                bytes.truncate(SingleObject::HEADER_LEN);
                bytes.extend_from_slice(body);
            }
        }
        let decoded = decode_every_way(&codec, &bytes);
        match change {
            // Every field is length-prefixed: a shorter record cannot be whole, and a longer
            // one leaves bytes over.
            Mutation::Truncate(_) | Mutation::Append(_) => prop_assert_eq!(decoded, None),
            _ if bytes == valid => prop_assert_eq!(decoded, Some(event)),
            _ => {}
        }
    }

    #[test]
    fn mutated_dead_letters_decode_or_fail_typed(letter in dead_letter(), change in mutation()) {
        let codec = Codec::builtin();
        let mut bytes = codec.encode(&letter).unwrap();
        let len = bytes.len();
        match change {
            Mutation::FlipBit(at, bit) => bytes[at.index(len)] ^= 1 << bit,
            Mutation::SetByte(at, byte) => bytes[at.index(len)] = byte,
            Mutation::Truncate(at) => bytes.truncate(at.index(len)),
            Mutation::Append(extra) => bytes.extend_from_slice(&extra),
            Mutation::ReplaceBody(body) => {
                bytes.truncate(SingleObject::HEADER_LEN);
                bytes.extend_from_slice(&body);
            }
        }
        decode_every_way(&codec, &bytes);
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn ticket_events_round_trip(event in ticket_event()) {
        let codec = Codec::builtin();
        let bytes = codec.encode(&event).unwrap();
        prop_assert_eq!(codec.decode::<TicketEvent>(&bytes).unwrap(), event.clone());
        let (name, json) = codec.decode_json(&bytes).unwrap();
        prop_assert_eq!(name, "chatgptd.TicketEvent");
        prop_assert_eq!(&json["ticket_key"], &serde_json::Value::from(event.ticket_key));
    }

    #[test]
    fn dead_letters_round_trip(letter in dead_letter()) {
        let codec = Codec::builtin();
        let bytes = codec.encode(&letter).unwrap();
        prop_assert_eq!(codec.decode::<DeadLetter>(&bytes).unwrap(), letter);
    }
}
