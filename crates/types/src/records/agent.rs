use serde::{Deserialize, Serialize};

use super::Provenance;
use crate::avro::AvroRecord;

/// A message to or from a GPT agent (`schemas/agent_message.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentMessage {
    pub id: String,
    pub conversation_id: String,
    pub correlation_id: String,
    pub from: String,
    pub to: String,
    pub kind: String,
    pub body: String,
    pub reply_to: Option<String>,
    pub in_reply_to: Option<String>,
    pub hop_count: i32,
    pub token_budget: i64,
    pub path: Vec<String>,
    pub sent_at_ms: i64,
    pub provenance: Option<Provenance>,
}

impl AvroRecord for AgentMessage {
    const SCHEMA_NAME: &'static str = "chatgptd.AgentMessage";
}

/// An agent registered or changed at run time, as it now stands
/// (`schemas/agent_registration.avsc`); the latest record of an id wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRegistration {
    pub agent_id: String,
    pub spec_json: String,
    pub registered_by: String,
    pub changed_by: String,
    pub change: String,
    pub changed_at_ms: i64,
}

impl AvroRecord for AgentRegistration {
    const SCHEMA_NAME: &'static str = "chatgptd.AgentRegistration";
}
