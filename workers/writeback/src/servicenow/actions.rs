//! Agents' ticket actions on ServiceNow incidents (see `actions/`), through the Table API.
//!
//! - The incident: a `sys_id` (32 hex digits) as is; a number (`INC0010023`) looked up with
//!   `GET /api/now/table/incident?sysparm_query=number=<number>`.
//! - Comment: a `work_notes` entry (private to agents), ending with the signature and the
//!   bracketed marker; looked for first in the work notes, as the write-back looks.
//! - Create: `POST /api/now/table/incident` (`short_description`, `description` ending with
//!   the marker, `impact` and `urgency` for the priority, `assigned_to`). Looked for first
//!   with `sysparm_query=descriptionLIKE<marker>`: the Table API reads the database, so an
//!   incident created a moment ago is found. Incidents have no labels.
//! - Update: one `PATCH` of `impact`/`urgency`, `state` and `assigned_to`.

use chatgptd_runtime::ProcessError;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{Incident, ServiceNow};
use crate::actions::action::{Changes, Create, Priority};
use crate::actions::tracker::{ActionTracker, Applied, Created};
use crate::note::Marker;
use crate::source::Source;
use crate::tracker::{invalid_ticket, malformed};

/// Why labels are skipped.
const NO_LABELS: &str = "labels (ServiceNow incidents have none)";

impl ActionTracker for ServiceNow {
    async fn ticket(&self, ticket: &str) -> Result<Incident, ProcessError> {
        if !ticket.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid_ticket(
                Source::ServiceNow,
                format!("{ticket:?} is no incident number or sys_id"),
            ));
        }
        if ticket.len() == 32 && ticket.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(Incident(ticket.to_ascii_lowercase()));
        }
        let what = format!("looking up incident {ticket}");
        let found = self
            .query(&format!("number={ticket}"), "sys_id", 1, &what)
            .await?;
        let sys_id = found
            .first()
            .and_then(|record| record.get("sys_id")?.as_str())
            .ok_or_else(|| {
                ProcessError::permanent(
                    "tracker_rejected",
                    format!("servicenow: there is no incident {ticket}"),
                )
            })?;
        Ok(Incident(sys_id.to_string()))
    }

    async fn comment(
        &self,
        incident: &Incident,
        text: &str,
        signature: &str,
        marker: &Marker,
    ) -> Result<String, ProcessError> {
        let body = json!({"work_notes": plain(Some(text), signature, marker)});
        let url = self
            .http
            .url(&["api", "now", "table", "incident", &incident.0]);
        let what = format!("adding a work note to incident {}", incident.0);
        self.http
            .send(Method::PATCH, url, Some(&body), &what)
            .await?;
        Ok("work note".to_string())
    }

    fn check_project(&self, _create: &Create<'_>) -> Result<(), ProcessError> {
        // One instance, the one the credential belongs to: nothing to choose, nothing to list.
        Ok(())
    }

    async fn find_created(
        &self,
        _create: &Create<'_>,
        marker: &Marker,
    ) -> Result<Option<String>, ProcessError> {
        let what = format!("searching incidents for {}", marker.as_str());
        let found = self
            .query(
                &format!("descriptionLIKE{}", marker.as_str()),
                "number,description",
                10,
                &what,
            )
            .await?;
        let wanted = marker.bracketed();
        Ok(found
            .iter()
            .filter(|record| {
                record
                    .get("description")
                    .and_then(Value::as_str)
                    .is_some_and(|description| description.contains(&wanted))
            })
            .find_map(|record| record.get("number")?.as_str().map(String::from)))
    }

    async fn create(
        &self,
        create: &Create<'_>,
        signature: &str,
        marker: &Marker,
    ) -> Result<Created, ProcessError> {
        let mut fields = Map::new();
        fields.insert("short_description".into(), json!(create.title));
        fields.insert(
            "description".into(),
            json!(plain(create.body, signature, marker)),
        );
        let mut applied = Applied::default();
        if let Some(priority) = create.priority {
            set_priority(&mut fields, priority);
            applied.done.push(format!("priority {}", priority.as_str()));
        }
        if let Some(assignee) = create.assignee {
            fields.insert("assigned_to".into(), json!(assignee));
            applied.done.push(format!("assignee {assignee}"));
        }
        if create.labels.iter().any(|l| !l.trim().is_empty()) {
            applied.skipped.push(NO_LABELS.to_string());
        }
        let mut url = self.http.url(&["api", "now", "table", "incident"]);
        url.query_pairs_mut()
            .append_pair("sysparm_fields", "sys_id,number");
        let what = "creating an incident";
        let body = Value::Object(fields);
        let reply = self.http.send(Method::POST, url, Some(&body), what).await?;
        let number = reply
            .body
            .pointer("/result/number")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(Source::ServiceNow, what))?;
        Ok(Created {
            name: number.to_string(),
            fields: applied,
        })
    }

    async fn update(
        &self,
        incident: &Incident,
        changes: &Changes<'_>,
    ) -> Result<Applied, ProcessError> {
        let mut applied = Applied::default();
        let mut fields = Map::new();
        if let Some(priority) = changes.priority {
            set_priority(&mut fields, priority);
            applied.done.push(format!("priority {}", priority.as_str()));
        }
        if let Some(status) = changes.status {
            match state(status) {
                Some(state) => {
                    fields.insert("state".into(), json!(state));
                    applied.done.push(format!("status {status}"));
                }
                None => applied.skipped.push(format!(
                    "status {status:?} (not an incident state: new, in progress, on hold, resolved, closed, canceled)"
                )),
            }
        }
        if let Some(assignee) = changes.assignee {
            fields.insert("assigned_to".into(), json!(assignee));
            applied.done.push(format!("assignee {assignee}"));
        }
        if changes.labels.iter().any(|l| !l.trim().is_empty()) {
            applied.skipped.push(NO_LABELS.to_string());
        }
        if !fields.is_empty() {
            let url = self
                .http
                .url(&["api", "now", "table", "incident", &incident.0]);
            let what = format!("updating incident {}", incident.0);
            let body = Value::Object(fields);
            self.http
                .send(Method::PATCH, url, Some(&body), &what)
                .await?;
        }
        Ok(applied)
    }
}

impl ServiceNow {
    /// The incidents an encoded query selects, with `fields`.
    async fn query(
        &self,
        query: &str,
        fields: &str,
        limit: usize,
        what: &str,
    ) -> Result<Vec<Value>, ProcessError> {
        let mut url = self.http.url(&["api", "now", "table", "incident"]);
        url.query_pairs_mut()
            .append_pair("sysparm_query", query)
            .append_pair("sysparm_fields", fields)
            .append_pair("sysparm_limit", &limit.to_string());
        let reply = self.http.send(Method::GET, url, None, what).await?;
        reply
            .body
            .get("result")
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| malformed(Source::ServiceNow, what))
    }
}

/// Plain text: the text, the signature, the marker on the last line.
fn plain(text: Option<&str>, signature: &str, marker: &Marker) -> String {
    let mut blocks: Vec<String> = text.map(String::from).into_iter().collect();
    blocks.push(format!("{signature}\n{}", marker.bracketed()));
    blocks.join("\n\n")
}

/// ServiceNow derives the priority from impact and urgency (1 high to 3 low); these pairs
/// give priorities 1 Critical, 2 High, 3 Moderate and 4 Low in the default lookup.
fn set_priority(fields: &mut Map<String, Value>, priority: Priority) {
    let (impact, urgency) = match priority {
        Priority::Critical => ("1", "1"),
        Priority::High => ("1", "2"),
        Priority::Medium => ("2", "2"),
        Priority::Low => ("2", "3"),
    };
    fields.insert("impact".into(), json!(impact));
    fields.insert("urgency".into(), json!(urgency));
}

/// An incident's `state` value for a status name (or the value itself).
fn state(status: &str) -> Option<&'static str> {
    let normalised = status.trim().to_ascii_lowercase().replace(['_', '-'], " ");
    Some(match normalised.as_str() {
        "new" | "1" => "1",
        "in progress" | "2" => "2",
        "on hold" | "3" => "3",
        "resolved" | "6" => "6",
        "closed" | "7" => "7",
        "canceled" | "cancelled" | "8" => "8",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_incident_states() {
        assert_eq!(state("In Progress"), Some("2"));
        assert_eq!(state("on_hold"), Some("3"));
        assert_eq!(state("7"), Some("7"));
        assert_eq!(state("done"), None);
    }
}
