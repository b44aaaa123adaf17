//! Workflow triggers: start a run when a matching event arrives.
//!
//! The only event today is an enriched ticket (`tickets.enriched`): it carries the
//! `category` the enrichment worker chose, which is what triggers filter on.

use std::collections::BTreeMap;

use chatgptd_types::records::EnrichedTicket;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::template::{self, Segment};

/// When a workflow starts by itself, and with what input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// The event: `ticket`, an enriched ticket (`tickets.enriched`).
    pub on: TriggerEvent,

    /// Which events start a run: ticket field -> the value it must have, or a list of
    /// values any of which will do. Compared ignoring case; for `labels`, the ticket must
    /// carry one of the values. Fields: `source`, `category`, `suggested_priority`,
    /// `sentiment`, `language`, `labels`. No conditions: every ticket matches.
    #[serde(rename = "where", default)]
    pub filter: BTreeMap<String, MatchValue>,

    /// The run's input: input field -> a template over the event, e.g.
    /// `"{{ ticket.title }}"` (any field of the enriched ticket). Every required input
    /// field without a default must be mapped; mapped fields must be of type `string`.
    #[serde(default)]
    pub input: BTreeMap<String, String>,
}

/// The events a trigger can wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TriggerEvent {
    /// An enriched ticket (`EnrichedTicket`, topic `tickets.enriched`).
    Ticket,
}

/// A trigger condition's accepted values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MatchValue {
    /// Exactly this value.
    One(String),
    /// Any of these values.
    AnyOf(Vec<String>),
}

impl MatchValue {
    /// The accepted values.
    pub fn values(&self) -> &[String] {
        match self {
            MatchValue::One(value) => std::slice::from_ref(value),
            MatchValue::AnyOf(values) => values,
        }
    }

    fn accepts(&self, actual: &str) -> bool {
        self.values()
            .iter()
            .any(|value| value.trim().eq_ignore_ascii_case(actual.trim()))
    }
}

/// The ticket fields a trigger's `where` may test.
pub const MATCH_FIELDS: &[&str] = &[
    "source",
    "category",
    "suggested_priority",
    "sentiment",
    "language",
    "labels",
];

/// The fields of an enriched ticket that trigger input templates may read as
/// `{{ ticket.<field> }}` (the JSON form of `EnrichedTicket`).
pub const TICKET_FIELDS: &[&str] = &[
    "event_id",
    "source",
    "ticket_id",
    "ticket_key",
    "title",
    "url",
    "category",
    "suggested_priority",
    "sentiment",
    "language",
    "summary",
    "suggested_reply",
    "labels",
    "confidence",
    "related_tickets",
    "provenance",
    "enriched_at_ms",
];

impl Trigger {
    /// Whether `ticket` starts a run. Triggers fire on every enriched record: the caller
    /// decides whether a ticket already started one (e.g. by deriving the run id from
    /// the workflow and the ticket key).
    pub fn matches(&self, ticket: &EnrichedTicket) -> bool {
        self.filter
            .iter()
            .all(|(field, accepted)| match field.as_str() {
                "labels" => ticket.labels.iter().any(|label| accepted.accepts(label)),
                "source" => accepted.accepts(&ticket.source),
                "category" => accepted.accepts(&ticket.category),
                "suggested_priority" => accepted.accepts(&ticket.suggested_priority),
                "sentiment" => accepted.accepts(&ticket.sentiment),
                "language" => accepted.accepts(&ticket.language),
                // Validation refuses other fields; an unvalidated one matches nothing.
                _ => false,
            })
    }

    /// The run input for `ticket`: each mapped field rendered from the ticket. Pass it
    /// through [`super::WorkflowSpec::prepare_input`] to fill in defaults.
    pub fn input_for(&self, ticket: &EnrichedTicket) -> Result<Value, Error> {
        let ticket = serde_json::to_value(ticket).map_err(|err| Error::Template {
            message: format!("ticket does not serialize: {err}"),
        })?;
        let mut input = serde_json::Map::new();
        for (field, text) in &self.input {
            let segments = template::parse(text)?;
            let rendered = template::render_segments(&segments, |path| {
                Ok(ticket_path(path).and_then(|field_path| {
                    template::lookup(&ticket, field_path).map(template::to_text)
                }))
            })?;
            input.insert(field.clone(), Value::String(rendered));
        }
        Ok(Value::Object(input))
    }
}

/// The path below `ticket` of a trigger template's tag, if it starts with `ticket`.
pub(crate) fn ticket_path(path: &[String]) -> Option<&[String]> {
    match path {
        [root, rest @ ..] if root == "ticket" && !rest.is_empty() => Some(rest),
        _ => None,
    }
}

/// Checks a trigger's templates: each tag reads `ticket.<field>` of a known field.
pub(crate) fn check_template(text: &str) -> Result<(), String> {
    let segments = template::parse(text).map_err(|err| err.to_string())?;
    for segment in segments {
        let Segment::Tag(path) = segment else {
            continue;
        };
        let known = ticket_path(&path)
            .and_then(|rest| rest.first())
            .is_some_and(|field| TICKET_FIELDS.contains(&field.as_str()));
        if !known {
            return Err(format!(
                "`{}` is not `ticket.<field>` of an enriched ticket (fields: {})",
                path.join("."),
                TICKET_FIELDS.join(", ")
            ));
        }
    }
    Ok(())
}
