//! ServiceNow, Table API: the note goes into the incident's `work_notes` (private to
//! agents), and, when replies are posted, the reply into `comments` (the caller sees it),
//! in one `PATCH /api/now/table/incident/{sys_id}`: both land, or neither.
//!
//! Look before posting reads the incident's journal through the same table:
//! `GET /api/now/table/incident/{sys_id}?sysparm_fields=work_notes&sysparm_display_value=true`.
//! A journal field reads as an empty string unless display values are asked for; with them it
//! is every work note, newest first, which is searched for the bracketed marker. This needs
//! no access beyond the incident the worker writes anyway (the alternative, querying
//! `sys_journal_field` by `element_id`, needs read access to that table, which integration
//! users rarely have). The marker is in the work note even when a reply is posted, and the
//! two are written together, so finding it means both were written.
//!
//! The record's `ticket_id` must be the incident's `sys_id`.
//!
//! Agents' ticket actions (comment, create, update) are in `actions.rs`.

mod actions;

use std::time::Duration;

use chatgptd_runtime::ProcessError;
use chatgptd_types::records::EnrichedTicket;
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::Error;
use crate::http::{TrackerHttp, basic_auth};
use crate::note::{Marker, ReplyMode, TITLE, TriageNote};
use crate::options::ServiceNowOptions;
use crate::secret::Secret;
use crate::source::Source;
use crate::tracker::{Tracker, invalid_ticket, malformed};

/// A ServiceNow instance.
#[derive(Debug)]
pub(crate) struct ServiceNow {
    http: TrackerHttp,
    post_replies: bool,
}

/// An incident's `sys_id`.
#[derive(Debug)]
pub(crate) struct Incident(String);

impl ServiceNow {
    pub fn new(
        options: &ServiceNowOptions,
        password: &Secret,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, basic_auth(&options.username, password)?);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        Ok(ServiceNow {
            http: TrackerHttp::new(
                Source::ServiceNow,
                &options.instance_url,
                headers,
                timeout,
                options.requests_per_second,
            )?,
            post_replies: options.post_replies,
        })
    }
}

impl Tracker for ServiceNow {
    type Target = Incident;
    const SOURCE: Source = Source::ServiceNow;

    fn target(&self, ticket: &EnrichedTicket) -> Result<Incident, ProcessError> {
        let sys_id = ticket.ticket_id.trim();
        if sys_id.is_empty() || !sys_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid_ticket(
                Source::ServiceNow,
                format!("sys_id {sys_id:?}"),
            ));
        }
        Ok(Incident(sys_id.to_string()))
    }

    fn ticket_ref(target: &Incident) -> String {
        target.0.clone()
    }

    fn post_replies(&self) -> bool {
        self.post_replies
    }

    async fn find_marker(
        &self,
        incident: &Incident,
        marker: &Marker,
    ) -> Result<bool, ProcessError> {
        let mut url = self
            .http
            .url(&["api", "now", "table", "incident", &incident.0]);
        url.query_pairs_mut()
            .append_pair("sysparm_fields", "work_notes")
            .append_pair("sysparm_display_value", "true");
        let what = format!("reading the work notes of incident {}", incident.0);
        let reply = self.http.send(Method::GET, url, None, &what).await?;
        // Asked for by name, the field is there unless an ACL hides it: without it there is
        // nothing to search, and posting blind could post twice.
        let notes = reply
            .body
            .pointer("/result/work_notes")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(Source::ServiceNow, &what))?;
        Ok(notes.contains(&marker.bracketed()))
    }

    async fn post(&self, incident: &Incident, note: &TriageNote<'_>) -> Result<(), ProcessError> {
        let mut body = json!({"work_notes": work_notes(note)});
        if note.reply == ReplyMode::Posted
            && let Some(reply) = note.reply_text()
        {
            body["comments"] = json!(reply);
        }
        let url = self
            .http
            .url(&["api", "now", "table", "incident", &incident.0]);
        let what = format!("updating incident {}", incident.0);
        self.http
            .send(Method::PATCH, url, Some(&body), &what)
            .await?;
        Ok(())
    }

    async fn add_labels(
        &self,
        _incident: &Incident,
        _labels: &[String],
    ) -> Result<(), ProcessError> {
        // Incidents have no labels; the work note lists them.
        Ok(())
    }
}

/// The work note: plain text, one fact per line, the marker on the last line.
fn work_notes(note: &TriageNote<'_>) -> String {
    let mut lines = vec![TITLE.to_string()];
    lines.extend(
        note.facts()
            .into_iter()
            .map(|(label, value)| format!("- {label}: {value}")),
    );
    if let Some(summary) = note.summary() {
        lines.push(String::new());
        lines.push("Summary:".to_string());
        lines.push(summary.to_string());
    }
    if let Some(reply) = note.reply_text() {
        lines.push(String::new());
        match note.reply {
            ReplyMode::Draft => {
                lines.push(format!("{}:", note.reply_heading()));
                lines.push(reply.to_string());
            }
            ReplyMode::Posted => lines.push(format!(
                "{}: see Additional comments.",
                note.reply_heading()
            )),
        }
    }
    lines.push(String::new());
    lines.push(note.provenance());
    lines.push(note.marker.bracketed());
    lines.join("\n")
}
