use std::collections::BTreeMap;

use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use serde_bytes::ByteBuf;

use super::examples::{
    action_audit, approval_request, enriched, escalation, provenance, ticket, ticket_action,
};
use super::*;
use crate::Error;
use crate::avro::{AvroRecord, Codec, SchemaStore};

fn round_trip<T: AvroRecord + PartialEq + std::fmt::Debug>(value: T) {
    let codec = Codec::builtin();
    let bytes = codec.encode(&value).unwrap();
    assert_eq!(&bytes[..2], &[0xC3, 0x01]);
    assert_eq!(codec.decode::<T>(&bytes).unwrap(), value);
}

#[test]
fn every_record_type_round_trips() {
    round_trip(ticket());
    round_trip(enriched());
    round_trip(action_audit());
    round_trip(approval_request());
    round_trip(escalation());
    round_trip(ticket_action());
    round_trip(AgentRegistration {
        agent_id: "scout".into(),
        spec_json: "{}".into(),
        registered_by: "ops".into(),
        changed_by: "ops".into(),
        change: "register".into(),
        changed_at_ms: 1_700_000_000_000,
    });
    round_trip(AgentMessage {
        id: "m1".into(),
        conversation_id: "c1".into(),
        correlation_id: "m1".into(),
        from: "user:bob".into(),
        to: "wanderweave".into(),
        kind: "request".into(),
        body: "Plan a trip".into(),
        reply_to: Some("inbox:m1".into()),
        in_reply_to: None,
        hop_count: 0,
        token_budget: 4000,
        path: vec![],
        sent_at_ms: 1,
        provenance: Some(provenance()),
    });
    round_trip(WorkflowStep {
        run_id: "r1".into(),
        workflow: "research".into(),
        step_id: "plan".into(),
        kind: "execute".into(),
        agent: Some("atlas-sentinel".into()),
        input_json: "{\"topic\":\"kafka\"}".into(),
        attempt: 1,
        requested_at_ms: 2,
    });
    round_trip(MemoryRecord {
        id: "mem1".into(),
        owner: "ticket:jira:10001".into(),
        kind: "ticket".into(),
        text: "Login fails".into(),
        tags: vec!["auth".into()],
        created_at_ms: 3,
        source_topic: "tickets.events".into(),
        source_partition: 0,
        source_offset: 7,
        attributes: BTreeMap::from([("ticket_key".into(), "PROJ-1".into())]),
    });
    round_trip(Subscription {
        id: "sub_1".into(),
        topics: vec!["tickets.enriched".into()],
        kinds: vec![],
        agent: Some("wanderweave".into()),
        fleet: None,
        run: None,
        ticket: None,
        url: "https://example.com/hook".into(),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        created_at_ms: 5,
    });
    round_trip(DeadLetter {
        source_topic: "tickets.events".into(),
        source_partition: 1,
        source_offset: 99,
        key: Some(b"jira:1".to_vec()),
        value: Some(vec![0xC3, 0x01, 0xFF, 0x00]),
        headers: BTreeMap::from([("traceparent".into(), ByteBuf::from(b"00-ab".to_vec()))]),
        error_class: "decode".into(),
        error_message: "bad".into(),
        attempts: 1,
        worker: "enrich".into(),
        failed_at_ms: 4,
        replay_count: 0,
    });
}

/// apache-avro 0.22's single-object writer puts its own (non-spec) fingerprint in the header,
/// as chatgptd did before: those records are on topics and must still decode.
#[test]
fn records_with_the_legacy_apache_avro_fingerprint_still_decode() {
    let codec = Codec::builtin();
    let stored = codec.store().current(TicketEvent::SCHEMA_NAME).unwrap();
    let mut writer =
        apache_avro::GenericSingleObjectWriter::new_with_capacity(&stored.schema, 1024).unwrap();
    let mut bytes = Vec::new();
    let value = apache_avro::to_value(ticket())
        .unwrap()
        .resolve(&stored.schema)
        .unwrap();
    writer.write_value(value, &mut bytes).unwrap();
    assert_eq!(&bytes[2..10], &stored.legacy_fingerprint);
    assert_ne!(stored.legacy_fingerprint, stored.fingerprint);

    assert_eq!(codec.decode::<TicketEvent>(&bytes).unwrap(), ticket());
    let (name, json) = codec.decode_json(&bytes).unwrap();
    assert_eq!(name, TicketEvent::SCHEMA_NAME);
    assert_eq!(json["received_at_ms"], ticket().received_at_ms);
}

#[test]
fn we_write_the_spec_fingerprint() {
    let codec = Codec::builtin();
    let bytes = codec.encode(&ticket()).unwrap();
    assert_eq!(hex::encode(&bytes[2..10]), "cccfa141feaccc60");
}

#[test]
fn a_record_written_with_an_earlier_version_gets_the_new_fields_defaults() {
    let codec = Codec::builtin();
    let v1 = codec
        .store()
        .all_versions()
        .find(|s| s.name == TicketEvent::SCHEMA_NAME && !s.current)
        .unwrap();
    let old = Value::Record(vec![
        ("event_id".into(), Value::String("e1".into())),
        ("source".into(), Value::String("github".into())),
        ("delivery_id".into(), Value::String("d1".into())),
        ("event_type".into(), Value::String("issues.opened".into())),
        ("ticket_id".into(), Value::String("42".into())),
        ("ticket_key".into(), Value::String("o/r#42".into())),
        ("title".into(), Value::String("t".into())),
        ("description".into(), Value::String("d".into())),
        ("priority".into(), Value::Union(0, Box::new(Value::Null))),
        ("labels".into(), Value::Array(vec![])),
        ("reporter".into(), Value::Union(0, Box::new(Value::Null))),
        ("url".into(), Value::Union(0, Box::new(Value::Null))),
        ("received_at_ms".into(), Value::TimestampMillis(5)),
    ]);
    let mut bytes = vec![0xC3, 0x01];
    bytes.extend_from_slice(&v1.fingerprint);
    let body = GenericDatumWriter::builder(&v1.schema)
        .build()
        .unwrap()
        .write_value_to_vec(old);
    bytes.extend_from_slice(&body.unwrap());

    let decoded: TicketEvent = codec.decode(&bytes).unwrap();
    assert_eq!(decoded.ticket_key, "o/r#42");
    assert_eq!(decoded.status, None);
    assert_eq!(decoded.actor, None);
    assert_eq!(decoded.raw_payload, "");
}

#[test]
fn unknown_fingerprint_wrong_type_and_trailing_bytes_are_errors() {
    let codec = Codec::builtin();
    let mut bytes = codec.encode(&ticket()).unwrap();

    let mut unknown = bytes.clone();
    unknown[2] ^= 0xFF;
    assert!(matches!(
        codec.decode::<TicketEvent>(&unknown),
        Err(Error::UnknownSchema { .. })
    ));

    assert!(matches!(
        codec.decode::<WorkflowStep>(&bytes),
        Err(Error::WrongType { .. })
    ));

    bytes.push(0);
    let err = codec.decode::<TicketEvent>(&bytes).unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err}");
    assert_eq!(err.class(), "decode");
}

#[test]
fn garbage_bodies_are_errors_never_panics() {
    let codec = Codec::builtin();
    let good = codec.encode(&ticket()).unwrap();
    // Every truncation, and every single-byte corruption of the body.
    for len in 0..good.len() {
        let _ = codec.decode::<TicketEvent>(&good[..len]);
        let _ = codec.decode_json(&good[..len]);
    }
    for i in 10..good.len() {
        for flip in [0x01u8, 0x80, 0xFF] {
            let mut bad = good.clone();
            bad[i] ^= flip;
            let _ = codec.decode::<TicketEvent>(&bad);
        }
    }
    // A huge length prefix must not allocate gigabytes.
    let mut huge = good[..10].to_vec();
    huge.extend_from_slice(&[0xFE, 0xFF, 0xFF, 0xFF, 0x0F]);
    assert!(codec.decode::<TicketEvent>(&huge).is_err());
}

#[test]
fn json_in_and_out() {
    let codec = Codec::builtin();
    let json = serde_json::json!({
        "event_id": "e1", "source": "github", "delivery_id": "d1", "event_type": "issues.opened",
        "ticket_id": "42", "ticket_key": "o/r#42", "title": "Crash on start",
        "labels": ["bug"], "priority": "high", "received_at_ms": 1700000000000i64
    });
    let bytes = codec.encode_json("chatgptd.TicketEvent", &json).unwrap();
    let decoded: TicketEvent = codec.decode(&bytes).unwrap();
    assert_eq!(decoded.priority.as_deref(), Some("high"));
    assert_eq!(decoded.description, "", "defaulted");

    let (name, back) = codec.decode_json(&bytes).unwrap();
    assert_eq!(name, "chatgptd.TicketEvent");
    assert_eq!(back["title"], "Crash on start");
    assert_eq!(back["reporter"], serde_json::Value::Null);

    let typo = serde_json::json!({"event_id": "e1", "titel": "x"});
    let err = codec
        .encode_json("chatgptd.TicketEvent", &typo)
        .unwrap_err();
    assert!(err.to_string().contains("unknown field `titel`"), "{err}");

    let missing = serde_json::json!({"event_id": "e1"});
    let err = codec
        .encode_json("chatgptd.TicketEvent", &missing)
        .unwrap_err();
    assert!(err.to_string().contains("missing field `source`"), "{err}");
}

#[test]
fn dead_letter_bytes_print_as_text_or_hex() {
    let codec = Codec::builtin();
    let letter = DeadLetter {
        source_topic: "t".into(),
        source_partition: 0,
        source_offset: 1,
        key: Some(b"k".to_vec()),
        value: Some(vec![0xC3, 0x01]),
        headers: BTreeMap::new(),
        error_class: "decode".into(),
        error_message: "m".into(),
        attempts: 1,
        worker: "w".into(),
        failed_at_ms: 0,
        replay_count: 0,
    };
    let (_, json) = codec.decode_json(&codec.encode(&letter).unwrap()).unwrap();
    assert_eq!(json["key"], "k");
    assert_eq!(json["value"], "0xc301");
}

#[test]
fn store_from_the_repository_directory_matches_builtin() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let store = SchemaStore::from_dir(&dir).unwrap();
    let names = |store: &SchemaStore| -> Vec<String> {
        store
            .current_schemas()
            .iter()
            .map(|schema| schema.name.clone())
            .collect()
    };
    assert_eq!(names(&store), names(&SchemaStore::builtin().unwrap()));
    assert_eq!(store.current_schemas().len(), 13);
}

/// `chatgptd tail` prints records through `decode_json`: a timestamp inside a union (the
/// approval's `decided_at_ms`) must come out as the same number as a plain one.
#[test]
fn nullable_timestamps_print_as_numbers() {
    let codec = Codec::builtin();
    let approval = approval_request();
    let (name, json) = codec
        .decode_json(&codec.encode(&approval).unwrap())
        .unwrap();
    assert_eq!(name, ApprovalRequest::SCHEMA_NAME);
    assert_eq!(json, serde_json::to_value(&approval).unwrap());

    let pending = ApprovalRequest {
        state: "pending".into(),
        decided_by: None,
        decision_reason: None,
        decided_at_ms: None,
        ..approval
    };
    let (_, json) = codec.decode_json(&codec.encode(&pending).unwrap()).unwrap();
    assert_eq!(json["decided_at_ms"], serde_json::Value::Null);
    let bytes = codec
        .encode_json(ApprovalRequest::SCHEMA_NAME, &json)
        .unwrap();
    assert_eq!(codec.decode::<ApprovalRequest>(&bytes).unwrap(), pending);
}
