//! Interop with fastavro, an Avro implementation independent of apache-avro: it must read our
//! single-object records by its own fingerprint of our schemas, and we must read its records.
//! The Python side is `fastavro_interop.py`; `.ci/run` installs fastavro into `.ci/venv`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chatgptd_types::avro::{AvroRecord, Codec};
use chatgptd_types::records::examples::{
    action_audit, approval_request, enriched, escalation, ticket, ticket_action,
};
use chatgptd_types::records::{
    ActionAudit, ApprovalRequest, EnrichedTicket, Escalation, TicketAction, TicketEvent,
};
use serde_json::{Value, json};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `INTEROP_PYTHON`, else `.ci/venv/bin/python`; either must have fastavro. Not `CHATGPTD_*`:
/// that prefix is the configuration's, and a stray variable in it is a configuration error.
fn python() -> PathBuf {
    let python = std::env::var_os("INTEROP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".ci/venv/bin/python"));
    let has_fastavro = Command::new(&python)
        .args(["-c", "import fastavro"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        has_fastavro,
        "{} cannot import fastavro: run .ci/run (it installs fastavro into .ci/venv), \
         or point INTEROP_PYTHON at a python that has it",
        python.display()
    );
    python
}

/// Sends `request` to the Python side and returns its reply.
fn fastavro(request: Value) -> Value {
    let root = workspace_root();
    let mut child = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fastavro_interop.py"))
        .arg(root.join("schemas"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "fastavro_interop.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn fastavro_computes_the_fingerprints_we_write() {
    let codec = Codec::builtin();
    let reply = fastavro(json!({}));
    let theirs = reply["fingerprints"].as_object().unwrap();
    let ours = codec.store().current_schemas();
    assert_eq!(theirs.len(), ours.len(), "{theirs:?}");
    for schema in ours {
        assert_eq!(
            theirs[&schema.name],
            hex::encode(schema.fingerprint),
            "{}",
            schema.name
        );
    }
    assert_eq!(theirs[TicketEvent::SCHEMA_NAME], "cccfa141feaccc60");
}

/// One example of every record type that is not only part of another, with its schema
/// name, as the Python side reads and writes records.
fn examples() -> Vec<Value> {
    let example = |name: &str, record: Value| json!({"schema": name, "record": record});
    vec![
        example(
            TicketEvent::SCHEMA_NAME,
            serde_json::to_value(ticket()).unwrap(),
        ),
        example(
            EnrichedTicket::SCHEMA_NAME,
            serde_json::to_value(enriched()).unwrap(),
        ),
        example(
            ActionAudit::SCHEMA_NAME,
            serde_json::to_value(action_audit()).unwrap(),
        ),
        example(
            ApprovalRequest::SCHEMA_NAME,
            serde_json::to_value(approval_request()).unwrap(),
        ),
        example(
            Escalation::SCHEMA_NAME,
            serde_json::to_value(escalation()).unwrap(),
        ),
    ]
}

/// Our encoding of each of [`examples`], in the same order.
fn encoded(codec: &Codec) -> Vec<Vec<u8>> {
    vec![
        codec.encode(&ticket()).unwrap(),
        codec.encode(&enriched()).unwrap(),
        codec.encode(&action_audit()).unwrap(),
        codec.encode(&approval_request()).unwrap(),
        codec.encode(&escalation()).unwrap(),
    ]
}

#[test]
fn fastavro_reads_what_we_write() {
    let codec = Codec::builtin();
    let framed: Vec<String> = encoded(&codec).iter().map(hex::encode).collect();
    let reply = fastavro(json!({ "read": framed }));
    assert_eq!(reply["read"], Value::Array(examples()));
}

#[test]
fn we_read_what_fastavro_writes() {
    let codec = Codec::builtin();
    let reply = fastavro(json!({ "write": examples() }));
    let written: Vec<Vec<u8>> = reply["write"]
        .as_array()
        .unwrap()
        .iter()
        .map(|framed| hex::decode(framed.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(written.len(), 5);
    assert_eq!(codec.decode::<TicketEvent>(&written[0]).unwrap(), ticket());
    assert_eq!(
        codec.decode::<EnrichedTicket>(&written[1]).unwrap(),
        enriched()
    );
    assert_eq!(
        codec.decode::<ActionAudit>(&written[2]).unwrap(),
        action_audit()
    );
    assert_eq!(
        codec.decode::<ApprovalRequest>(&written[3]).unwrap(),
        approval_request()
    );
    assert_eq!(
        codec.decode::<Escalation>(&written[4]).unwrap(),
        escalation()
    );
    // Byte for byte what we write: same header, same body.
    assert_eq!(written, encoded(&codec));
}

#[test]
fn a_body_behind_the_legacy_fingerprint_still_decodes() {
    let codec = Codec::builtin();
    let reply = fastavro(json!({ "write": [
        {"schema": TicketEvent::SCHEMA_NAME, "record": serde_json::to_value(ticket()).unwrap()},
    ]}));
    let mut framed = hex::decode(reply["write"][0].as_str().unwrap()).unwrap();
    let stored = codec.store().current(TicketEvent::SCHEMA_NAME).unwrap();
    assert_eq!(&framed[2..10], &stored.fingerprint);
    framed[2..10].copy_from_slice(&stored.legacy_fingerprint);
    assert_eq!(hex::encode(&framed[2..10]), "f1b365819b281363");
    assert_eq!(codec.decode::<TicketEvent>(&framed).unwrap(), ticket());
}

/// The contract between the agent worker and the write-back: both directions, byte for byte.
#[test]
fn a_ticket_action_reads_and_writes_both_ways() {
    let codec = Codec::builtin();
    let action = ticket_action();
    let ours = codec.encode(&action).unwrap();
    let reply = fastavro(json!({
        "read": [hex::encode(&ours)],
        "write": [{"schema": TicketAction::SCHEMA_NAME, "record": serde_json::to_value(&action).unwrap()}],
    }));
    assert_eq!(
        reply["read"],
        json!([{"schema": TicketAction::SCHEMA_NAME, "record": serde_json::to_value(&action).unwrap()}])
    );
    let theirs = hex::decode(reply["write"][0].as_str().unwrap()).unwrap();
    assert_eq!(codec.decode::<TicketAction>(&theirs).unwrap(), action);
    assert_eq!(theirs, ours);
}
