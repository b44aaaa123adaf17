//! Records for tests that need many distinct ones: workflow steps keyed by their run, a run of
//! distinct tickets, memory records. (One plausible value of each type is in
//! `chatgptd_types::records::examples`.)

use std::collections::BTreeMap;

use chatgptd_types::avro::Codec;
use chatgptd_types::records::{MemoryRecord, TicketEvent, WorkflowStep};

/// A step of run `run_id`, as the tests' processors read it.
pub fn step_value(run_id: &str, step_id: &str) -> WorkflowStep {
    WorkflowStep {
        run_id: run_id.into(),
        workflow: "test".into(),
        step_id: step_id.into(),
        kind: "execute".into(),
        agent: None,
        input_json: "{}".into(),
        attempt: 1,
        requested_at_ms: 0,
    }
}

/// [`step_value`], encoded.
pub fn step(run_id: &str, step_id: &str) -> Vec<u8> {
    Codec::builtin()
        .encode(&step_value(run_id, step_id))
        .unwrap()
}

/// The `n`th of a run of distinct Jira tickets, each with its own key (`PROJ-n`).
pub fn ticket(n: usize) -> TicketEvent {
    TicketEvent {
        event_id: format!("event-{n}"),
        source: "jira".into(),
        delivery_id: format!("delivery-{n}"),
        event_type: "jira:issue_created".into(),
        ticket_id: format!("{}", 10_000 + n),
        ticket_key: format!("PROJ-{n}"),
        title: format!("Cannot log in, case {n}"),
        description: "SSO shows error 500 for everyone".into(),
        priority: None,
        status: None,
        labels: vec![],
        reporter: None,
        actor: None,
        url: None,
        received_at_ms: 0,
        raw_payload: String::new(),
    }
}

/// A message of `owner` remembered now, as the agents write it to `memory.records`, encoded.
pub fn memory_record(id: &str, owner: &str, text: &str) -> Vec<u8> {
    let record = MemoryRecord {
        id: id.into(),
        owner: owner.into(),
        kind: "message".into(),
        text: text.into(),
        tags: vec![],
        created_at_ms: chatgptd_types::now_ms(),
        source_topic: "agents.messages".into(),
        source_partition: 0,
        source_offset: 0,
        attributes: BTreeMap::new(),
    };
    Codec::builtin().encode(&record).unwrap()
}
