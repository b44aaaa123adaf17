//! The fake ServiceNow Table API: incidents, with `work_notes` and `comments` as journal
//! fields.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{FakeTrackers, Request, Trackers, now_ms, utc};

/// The ServiceNow user the fake accepts (basic auth).
pub const SERVICENOW_USER: &str = "chatgptd.integration";
/// The ServiceNow password the fake accepts.
pub const SERVICENOW_PASSWORD: &str = "fake-servicenow-password";

#[derive(Debug)]
struct JournalEntry {
    field: String,
    text: String,
    at: String,
}

#[derive(Debug, Default)]
pub(super) struct Incident {
    number: String,
    fields: Map<String, Value>,
    journal: Vec<JournalEntry>,
    updated_on: String,
}

// The ServiceNow half of `FakeTrackers`' test API: seeding tickets and reading back state.
impl FakeTrackers {
    /// Adds a ServiceNow incident.
    pub fn add_servicenow_incident(&self, sys_id: &str, number: &str) {
        self.state().servicenow.insert(
            sys_id.into(),
            Incident {
                number: number.into(),
                updated_on: servicenow_time(now_ms()),
                ..Default::default()
            },
        );
    }

    /// Adds a work note to an incident as if someone had written it.
    pub fn add_servicenow_work_note(&self, sys_id: &str, text: &str) {
        let mut state = self.state();
        let incident = state.servicenow.get_mut(sys_id).expect("no such incident");
        incident.journal.push(JournalEntry {
            field: "work_notes".into(),
            text: text.into(),
            at: servicenow_time(now_ms()),
        });
    }

    /// An incident's journal, oldest first: (`work_notes` or `comments`, text).
    pub fn servicenow_journal(&self, sys_id: &str) -> Vec<(String, String)> {
        let state = self.state();
        let incident = state.servicenow.get(sys_id).expect("no such incident");
        incident
            .journal
            .iter()
            .map(|e| (e.field.clone(), e.text.clone()))
            .collect()
    }
}

/// The journal fields of an incident.
const JOURNAL_FIELDS: [&str; 2] = ["work_notes", "comments"];

pub(super) fn servicenow(state: &mut Trackers, request: &Request<'_>) -> Response {
    let (method, segments) = (request.method.as_str(), request.segments);
    let ["api", "now", "table", "incident", sys_id] = segments else {
        return servicenow_error(StatusCode::BAD_REQUEST, "Invalid table", "Not a table URL");
    };
    let Some(incident) = state.servicenow.get_mut(*sys_id) else {
        return servicenow_error(
            StatusCode::NOT_FOUND,
            "No Record found",
            "Record doesn't exist or ACL restricts the record retrieval",
        );
    };
    let display = matches!(
        request.param("sysparm_display_value"),
        Some("true") | Some("all")
    );
    match method {
        "GET" => {}
        "PATCH" | "PUT" => {
            let Some(fields) = request.body.as_object() else {
                return servicenow_error(
                    StatusCode::BAD_REQUEST,
                    "Exception while reading request",
                    "The payload is not valid JSON.",
                );
            };
            let now = now_ms();
            for (name, value) in fields {
                let text = match value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                if JOURNAL_FIELDS.contains(&name.as_str()) {
                    if !text.is_empty() {
                        incident.journal.push(JournalEntry {
                            field: name.clone(),
                            text,
                            at: servicenow_time(now),
                        });
                    }
                } else {
                    incident.fields.insert(name.clone(), Value::String(text));
                }
            }
            incident.updated_on = servicenow_time(now);
        }
        _ => {
            return servicenow_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not Supported",
                "The method is not supported for this resource",
            );
        }
    }
    let record = incident_record(request.base, sys_id, incident, display);
    let record = match request.param("sysparm_fields") {
        Some(fields) => {
            let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
            record
                .into_iter()
                .filter(|(name, _)| wanted.contains(&name.as_str()))
                .collect()
        }
        None => record,
    };
    (StatusCode::OK, axum::Json(json!({"result": record}))).into_response()
}

/// An incident as the Table API returns it (a subset of the docs' record).
fn incident_record(
    base: &str,
    sys_id: &str,
    incident: &Incident,
    display: bool,
) -> Map<String, Value> {
    let mut record = Map::new();
    let text = |value: &str| Value::String(value.to_string());
    record.insert("sys_id".into(), text(sys_id));
    record.insert("number".into(), text(&incident.number));
    record.insert("sys_class_name".into(), text("incident"));
    record.insert("state".into(), text("1"));
    record.insert("sys_updated_on".into(), text(&incident.updated_on));
    record.insert("sys_updated_by".into(), text(SERVICENOW_USER));
    record.insert(
        "caller_id".into(),
        json!({
            "link": format!("{base}/api/now/table/sys_user/46c6f9efa9fe198101ddf5eed9adf6e7"),
            "value": "46c6f9efa9fe198101ddf5eed9adf6e7",
        }),
    );
    for (name, value) in &incident.fields {
        record.insert(name.clone(), value.clone());
    }
    for field in JOURNAL_FIELDS {
        // Journal fields read as "" unless display values are asked for; then as every
        // entry, newest first, each under a header line.
        let value = if display {
            let label = if field == "work_notes" {
                "Work notes"
            } else {
                "Additional comments"
            };
            incident
                .journal
                .iter()
                .rev()
                .filter(|e| e.field == field)
                .map(|e| format!("{} - {SERVICENOW_USER} ({label})\n{}\n\n", e.at, e.text))
                .collect::<String>()
        } else {
            String::new()
        };
        record.insert(field.into(), Value::String(value));
    }
    record
}

pub(super) fn servicenow_error(status: StatusCode, message: &str, detail: &str) -> Response {
    let body = json!({"error": {"message": message, "detail": detail}, "status": "failure"});
    (status, axum::Json(body)).into_response()
}

/// `2015-11-01 22:37:27`.
pub(super) fn servicenow_time(epoch_ms: i64) -> String {
    let (y, mo, d, h, mi, s, _) = utc(epoch_ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}
