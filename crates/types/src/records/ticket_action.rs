use serde::{Deserialize, Serialize};

use crate::avro::AvroRecord;

/// An agent's action on a tracker, for the write-back worker to execute once
/// (`schemas/ticket_action.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketAction {
    pub id: String,
    pub conversation_id: String,
    pub message_id: String,
    pub agent: String,
    pub kind: String,
    pub source: String,
    pub ticket: Option<String>,
    pub project: Option<String>,
    pub body: Option<String>,
    pub title: Option<String>,
    pub priority: Option<String>,
    pub status: Option<String>,
    pub labels: Vec<String>,
    pub assignee: Option<String>,
    pub reply_to: String,
    pub requested_at_ms: i64,
}

impl TicketAction {
    /// The record key: `<source>:<ticket>`, or `<source>:new` for a create, so the actions
    /// on one ticket run one after another.
    pub fn key(&self) -> String {
        let ticket = self.ticket.as_deref().unwrap_or("new");
        format!("{}:{ticket}", self.source)
    }
}

impl AvroRecord for TicketAction {
    const SCHEMA_NAME: &'static str = "chatgptd.TicketAction";
}
