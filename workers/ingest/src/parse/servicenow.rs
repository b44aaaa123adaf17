//! ServiceNow Business Rule webhooks.
//!
//! ServiceNow has no outbound webhook schema: a Business Rule on `incident` posts the record's
//! fields. Accepted: the fields at the top level (optionally with `event` and `table`), or a
//! Table API record wrapped in `result`. Values are strings, or reference objects
//! (`{"value", "link"}`, `{"display_value", ...}`).
//!
//! - delivery id: `sys_id + ":" + sys_updated_on` (each update of a record is one delivery);
//! - event type: the payload's `event` (e.g. `incident.updated`) if the rule sets it, else
//!   `<table>.event`;
//! - ticket: `sys_id` / `number`; title `short_description`; description `description`, else
//!   the short one; priority `1..5` (else urgency `1..3`) and state codes mapped to their
//!   names; category and subcategory as labels; the caller as reporter; `sys_updated_by` as
//!   actor;
//! - URL: `<instance_url>/nav_to.do?uri=<table>.do?sys_id=<sys_id>` when the instance is
//!   configured.

use serde_json::Value;

use super::{Envelope, ParseError, Parsed, Ticket, new_event, text_at};
use crate::source::Source;

/// The table when the payload does not say.
const DEFAULT_TABLE: &str = "incident";

/// Parses a ServiceNow webhook; `instance_url` links the record (empty: no URL).
pub fn parse(envelope: Envelope<'_>, instance_url: &str) -> Result<Parsed, ParseError> {
    let payload = envelope.payload;
    let record = match payload.get("result") {
        Some(result) if result.is_object() && payload.get("sys_id").is_none() => result,
        _ => payload,
    };
    let sys_id = field(record, "sys_id").ok_or_else(|| ParseError::missing_field("sys_id"))?;
    let updated_on = field(record, "sys_updated_on")
        .ok_or_else(|| ParseError::missing_field("sys_updated_on"))?;
    let number = field(record, "number").ok_or_else(|| ParseError::missing_field("number"))?;
    let table = field(payload, "table")
        .or_else(|| field(record, "sys_class_name"))
        .filter(|table| is_table_name(table))
        .unwrap_or_else(|| DEFAULT_TABLE.to_string());
    let event_type = text_at(payload, "/event").unwrap_or_else(|| format!("{table}.event"));

    let delivery_id = format!("{sys_id}:{updated_on}");
    let mut event = new_event(
        Source::ServiceNow,
        envelope.raw,
        envelope.received_at_ms,
        delivery_id,
        event_type,
        sys_id.clone(),
        number,
    );
    let short_description = field(record, "short_description").unwrap_or_default();
    event.description = field(record, "description").unwrap_or_else(|| short_description.clone());
    event.title = short_description;
    event.priority = field(record, "priority")
        .map(|code| priority_name(&code))
        .or_else(|| field(record, "urgency").map(|code| urgency_name(&code)));
    event.status = field(record, "state").map(|code| state_name(&code));
    event.labels = ["category", "subcategory"]
        .into_iter()
        .filter_map(|name| field(record, name))
        .collect();
    event.reporter = field(record, "caller_id").or_else(|| field(record, "opened_by"));
    let actor = field(record, "sys_updated_by");
    event.actor = actor.clone();
    let instance = instance_url.trim().trim_end_matches('/');
    if !instance.is_empty() {
        event.url = Some(format!(
            "{instance}/nav_to.do?uri={table}.do?sys_id={sys_id}"
        ));
    }
    Ok(Parsed::Ticket(Box::new(Ticket {
        event,
        actor_ids: actor.into_iter().collect(),
    })))
}

/// A field's text: a non-empty string, or a reference's display value, else its value.
fn field(record: &Value, name: &str) -> Option<String> {
    match record.get(name)? {
        Value::String(text) => Some(text.trim().to_string()).filter(|text| !text.is_empty()),
        reference @ Value::Object(_) => {
            text_at(reference, "/display_value").or_else(|| text_at(reference, "/value"))
        }
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Table names go into URLs and event types: only ServiceNow's own character set.
fn is_table_name(name: &str) -> bool {
    name.len() <= 80
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Incident priority codes (`1 - Critical` ... `5 - Planning`); display values pass through.
fn priority_name(code: &str) -> String {
    match code {
        "1" => "Critical",
        "2" => "High",
        "3" => "Moderate",
        "4" => "Low",
        "5" => "Planning",
        other => other,
    }
    .to_string()
}

/// Urgency codes, used when there is no priority.
fn urgency_name(code: &str) -> String {
    match code {
        "1" => "High",
        "2" => "Medium",
        "3" => "Low",
        other => other,
    }
    .to_string()
}

/// Incident state codes of the base system.
fn state_name(code: &str) -> String {
    match code {
        "1" => "New",
        "2" => "In Progress",
        "3" => "On Hold",
        "6" => "Resolved",
        "7" => "Closed",
        "8" => "Canceled",
        other => other,
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_may_be_strings_or_references() {
        let record = json!({
            "a": " x ",
            "b": {"link": "https://i/api/now/table/sys_user/1", "value": "46c6"},
            "c": {"display_value": "Ana Lee", "value": "46c6"},
            "d": "",
            "e": null,
        });
        assert_eq!(field(&record, "a").as_deref(), Some("x"));
        assert_eq!(field(&record, "b").as_deref(), Some("46c6"));
        assert_eq!(field(&record, "c").as_deref(), Some("Ana Lee"));
        assert_eq!(field(&record, "d"), None);
        assert_eq!(field(&record, "e"), None);
    }

    #[test]
    fn codes_become_words_and_display_values_pass() {
        assert_eq!(priority_name("1"), "Critical");
        assert_eq!(priority_name("2 - High"), "2 - High");
        assert_eq!(urgency_name("3"), "Low");
        assert_eq!(state_name("6"), "Resolved");
        assert!(is_table_name("incident") && is_table_name("u_custom_2"));
        assert!(!is_table_name("incident.do?x=1") && !is_table_name("Incident"));
    }
}
