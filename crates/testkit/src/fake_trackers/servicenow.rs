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

    /// An incident as the Table API returns it, without display values.
    pub fn servicenow_incident(&self, sys_id: &str) -> Value {
        let base = self.servicenow_url();
        let state = self.state();
        let incident = state.servicenow.get(sys_id).expect("no such incident");
        Value::Object(incident_record(&base, sys_id, incident, false))
    }

    /// The `sys_id`s of every incident, sorted.
    pub fn servicenow_sys_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.state().servicenow.keys().cloned().collect();
        ids.sort();
        ids
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
    if segments == ["api", "now", "table", "incident"] {
        return match method {
            "GET" => query(state, request),
            "POST" => create(state, request),
            _ => servicenow_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not Supported",
                "The method is not supported for this resource",
            ),
        };
    }
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
            write(incident, fields);
        }
        _ => {
            return servicenow_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not Supported",
                "The method is not supported for this resource",
            );
        }
    }
    let record = selected(
        incident_record(request.base, sys_id, incident, display),
        request,
    );
    (StatusCode::OK, axum::Json(json!({"result": record}))).into_response()
}

/// Writes a request's fields: journal fields append an entry, others replace the value, and
/// `priority` follows `impact` and `urgency` as the default priority lookup does.
fn write(incident: &mut Incident, fields: &Map<String, Value>) {
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
    let level = |name: &str| -> i64 {
        let value = incident.fields.get(name).and_then(Value::as_str);
        value.and_then(|v| v.parse().ok()).unwrap_or(3)
    };
    if fields.contains_key("impact") || fields.contains_key("urgency") {
        let priority = (level("impact") + level("urgency") - 1).clamp(1, 5);
        incident
            .fields
            .insert("priority".into(), Value::String(priority.to_string()));
    }
    incident.updated_on = servicenow_time(now);
}

/// The fields `sysparm_fields` asks for (all when absent).
fn selected(record: Map<String, Value>, request: &Request<'_>) -> Map<String, Value> {
    match request.param("sysparm_fields") {
        Some(fields) => {
            let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
            record
                .into_iter()
                .filter(|(name, _)| wanted.contains(&name.as_str()))
                .collect()
        }
        None => record,
    }
}

/// `POST /api/now/table/incident`: a new incident with the given fields (201).
fn create(state: &mut Trackers, request: &Request<'_>) -> Response {
    let Some(fields) = request.body.as_object() else {
        return servicenow_error(
            StatusCode::BAD_REQUEST,
            "Exception while reading request",
            "The payload is not valid JSON.",
        );
    };
    let id = state.next_id();
    let sys_id = format!("{:032x}", 0x5eed_0000_u128 + u128::from(id));
    let mut incident = Incident {
        number: format!("INC{:07}", 10_000 + id),
        updated_on: servicenow_time(now_ms()),
        ..Default::default()
    };
    write(&mut incident, fields);
    let record = incident_record(request.base, &sys_id, &incident, false);
    state.servicenow.insert(sys_id, incident);
    (
        StatusCode::CREATED,
        axum::Json(json!({"result": selected(record, request)})),
    )
        .into_response()
}

/// `GET /api/now/table/incident?sysparm_query=...`: the incidents matching every clause
/// (`^`-joined `field=value` or `fieldLIKEvalue`; `ORDERBY` clauses are accepted and ignored).
/// The real Table API ignores a clause it cannot read, and can return every record; the fake
/// refuses it instead, so a client's malformed query fails a test rather than matching all.
fn query(state: &mut Trackers, request: &Request<'_>) -> Response {
    let query = request.param("sysparm_query").unwrap_or("");
    let mut clauses = Vec::new();
    for clause in query.split('^').filter(|c| !c.is_empty()) {
        if clause.starts_with("ORDERBY") {
            continue;
        }
        let parsed = match clause.split_once("LIKE") {
            Some((field, value)) => (field, value, true),
            None => match clause.split_once('=') {
                Some((field, value)) => (field, value, false),
                None => {
                    return servicenow_error(
                        StatusCode::BAD_REQUEST,
                        "Invalid query",
                        &format!("the fake cannot read the clause {clause:?}"),
                    );
                }
            },
        };
        clauses.push(parsed);
    }
    let limit: usize = request
        .param("sysparm_limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut ids: Vec<&String> = state.servicenow.keys().collect();
    ids.sort();
    let matching: Vec<Value> = ids
        .into_iter()
        .filter_map(|sys_id| {
            let incident = &state.servicenow[sys_id];
            let record = incident_record(request.base, sys_id, incident, false);
            let all = clauses.iter().all(|(field, value, like)| {
                let have = record.get(*field).and_then(Value::as_str).unwrap_or("");
                if *like {
                    have.to_lowercase().contains(&value.to_lowercase())
                } else {
                    have == *value
                }
            });
            all.then(|| Value::Object(selected(record, request)))
        })
        .take(limit)
        .collect();
    (StatusCode::OK, axum::Json(json!({"result": matching}))).into_response()
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
