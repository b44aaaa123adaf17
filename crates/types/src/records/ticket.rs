use serde::{Deserialize, Serialize};

use crate::avro::AvroRecord;

/// A webhook delivery from Jira, ServiceNow or GitHub, normalised (`schemas/ticket_event.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketEvent {
    pub event_id: String,
    pub source: String,
    pub delivery_id: String,
    pub event_type: String,
    pub ticket_id: String,
    pub ticket_key: String,
    pub title: String,
    pub description: String,
    pub priority: Option<String>,
    pub status: Option<String>,
    pub labels: Vec<String>,
    pub reporter: Option<String>,
    pub actor: Option<String>,
    pub url: Option<String>,
    pub received_at_ms: i64,
    pub raw_payload: String,
}

impl AvroRecord for TicketEvent {
    const SCHEMA_NAME: &'static str = "chatgptd.TicketEvent";
}

impl TicketEvent {
    /// The Kafka key: every event of one ticket lands on one partition, in order.
    pub fn key(&self) -> String {
        format!("{}:{}", self.source, self.ticket_id)
    }
}

/// Where a model output came from (`schemas/provenance.avsc`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub provider: String,
    pub model: String,
    pub prompt_version: String,
    pub request_id: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub finish_reason: String,
    pub cached: bool,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
}

/// What the enrichment worker made of a ticket (`schemas/enriched_ticket.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrichedTicket {
    pub event_id: String,
    pub source: String,
    pub ticket_id: String,
    pub ticket_key: String,
    pub title: String,
    pub url: Option<String>,
    pub category: String,
    pub suggested_priority: String,
    pub sentiment: String,
    pub language: String,
    pub summary: String,
    pub suggested_reply: String,
    pub labels: Vec<String>,
    pub confidence: f64,
    pub related_tickets: Vec<String>,
    pub provenance: Provenance,
    pub enriched_at_ms: i64,
}

impl AvroRecord for EnrichedTicket {
    const SCHEMA_NAME: &'static str = "chatgptd.EnrichedTicket";
}

impl EnrichedTicket {
    /// The same key as the ticket it enriches.
    pub fn key(&self) -> String {
        format!("{}:{}", self.source, self.ticket_id)
    }
}
