//! Agents' ticket actions on Jira (see `actions/`).
//!
//! - Comment: `POST /rest/api/3/issue/{key}/comment`, an ADF document flagged internal
//!   (`sd.public.comment`), ending with the signature and the bracketed marker; looked for
//!   first with the write-back's comment search.
//! - Create: `POST /rest/api/3/issue` with the project, summary, `jira.issue_type`, the
//!   description (ADF, ending with the marker), priority, labels and assignee. Looked for
//!   first with `GET /rest/api/3/search/jql` (`project = "P" AND text ~ "\"<marker>\""`),
//!   each hit's description checked for the bracketed marker. Jira's search index lags
//!   writes by a few seconds: a try that crashed after creating and is retried within
//!   them could create a second issue. Nothing else finds an issue by its content.
//! - Update: the status first, read only (`GET .../issue/{key}?fields=status`, then
//!   `.../transitions`), so a status the workflow cannot reach refuses the update before
//!   anything is written; then `PUT /rest/api/3/issue/{key}` (priority, assignee as an
//!   account id, labels added), then `POST .../transitions`.

use chatgptd_runtime::ProcessError;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Jira, JiraIssue, MAX_LABEL_CHARS, adf};
use crate::actions::action::{Changes, Create, Priority};
use crate::actions::tracker::{ActionTracker, Applied, Created, labels_text};
use crate::note::{Marker, normalise_labels};
use crate::source::Source;
use crate::tracker::{invalid_ticket, malformed};

/// Issues read when looking for an earlier try's: the marker is unique, so more than one
/// hit is already one too many.
const SEARCH_RESULTS: usize = 10;

impl ActionTracker for Jira {
    async fn ticket(&self, ticket: &str) -> Result<JiraIssue, ProcessError> {
        let valid = ticket
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(invalid_ticket(Source::Jira, format!("issue {ticket:?}")));
        }
        // A key names its project; a numeric id does not, and passes only under "*".
        let project = ticket.rsplit_once('-').map(|(project, _)| project);
        self.projects.check(Source::Jira, project)?;
        Ok(JiraIssue(ticket.to_string()))
    }

    async fn comment(
        &self,
        issue: &JiraIssue,
        text: &str,
        signature: &str,
        marker: &Marker,
    ) -> Result<String, ProcessError> {
        let body = json!({
            "body": adf::action_document(Some(text), signature, marker),
            "properties": [{"key": "sd.public.comment", "value": {"internal": true}}],
        });
        let url = self
            .http
            .url(&["rest", "api", "3", "issue", &issue.0, "comment"]);
        let what = format!("commenting on issue {}", issue.0);
        let reply = self
            .http
            .send(Method::POST, url, Some(&body), &what)
            .await?;
        let id = reply.body.get("id").and_then(Value::as_str).unwrap_or("?");
        Ok(format!("comment {id}"))
    }

    fn check_project(&self, create: &Create<'_>) -> Result<(), ProcessError> {
        let project = project(create)?;
        self.projects.check(Source::Jira, Some(project))
    }

    async fn find_created(
        &self,
        create: &Create<'_>,
        marker: &Marker,
    ) -> Result<Option<String>, ProcessError> {
        let project = project(create)?;
        // The marker as a phrase (inner quotes), in a JQL string (outer quotes); the marker
        // holds no quotes or backslashes, and `project` was checked to be a bare key.
        let jql = format!(
            "project = \"{project}\" AND text ~ \"\\\"{}\\\"\"",
            marker.as_str()
        );
        let mut url = self.http.url(&["rest", "api", "3", "search", "jql"]);
        url.query_pairs_mut()
            .append_pair("jql", &jql)
            .append_pair("fields", "description")
            .append_pair("maxResults", &SEARCH_RESULTS.to_string());
        let what = format!("searching project {project} for {}", marker.as_str());
        let reply = self.http.send(Method::GET, url, None, &what).await?;
        let issues = reply
            .body
            .get("issues")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed(Source::Jira, &what))?;
        // The search matches words; the description must hold the marker exactly.
        let wanted = marker.bracketed();
        Ok(issues
            .iter()
            .filter(|issue| {
                issue
                    .pointer("/fields/description")
                    .is_some_and(|description| adf::plain_text(description).contains(&wanted))
            })
            .find_map(|issue| issue.get("key").and_then(Value::as_str).map(String::from)))
    }

    async fn create(
        &self,
        create: &Create<'_>,
        signature: &str,
        marker: &Marker,
    ) -> Result<Created, ProcessError> {
        let project = project(create)?;
        let mut fields = json!({
            "project": {"key": project},
            "summary": create.title,
            "issuetype": {"name": self.issue_type},
            "description": adf::action_document(create.body, signature, marker),
        });
        let mut applied = Applied::default();
        if let Some(priority) = create.priority {
            fields["priority"] = json!({"name": priority_name(priority)});
            applied.done.push(format!("priority {}", priority.as_str()));
        }
        let labels = normalise_labels(create.labels, true, MAX_LABEL_CHARS);
        if !labels.is_empty() {
            fields["labels"] = json!(labels);
            applied.done.push(labels_text(&labels));
        }
        if let Some(assignee) = create.assignee {
            fields["assignee"] = json!({"accountId": assignee});
            applied.done.push(format!("assignee {assignee}"));
        }
        let url = self.http.url(&["rest", "api", "3", "issue"]);
        let what = format!("creating an issue in project {project}");
        let body = json!({"fields": fields});
        let reply = self
            .http
            .send(Method::POST, url, Some(&body), &what)
            .await?;
        let key = reply
            .body
            .get("key")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(Source::Jira, &what))?;
        Ok(Created {
            name: key.to_string(),
            fields: applied,
        })
    }

    async fn update(
        &self,
        issue: &JiraIssue,
        changes: &Changes<'_>,
    ) -> Result<Applied, ProcessError> {
        let transition = match changes.status {
            Some(status) => self.transition_to(issue, status).await?,
            None => None,
        };
        let mut applied = Applied::default();
        let mut body = json!({});
        if let Some(priority) = changes.priority {
            body["fields"]["priority"] = json!({"name": priority_name(priority)});
            applied.done.push(format!("priority {}", priority.as_str()));
        }
        if let Some(assignee) = changes.assignee {
            body["fields"]["assignee"] = json!({"accountId": assignee});
            applied.done.push(format!("assignee {assignee}"));
        }
        let labels = normalise_labels(changes.labels, true, MAX_LABEL_CHARS);
        if !labels.is_empty() {
            let adds: Vec<Value> = labels.iter().map(|label| json!({"add": label})).collect();
            body["update"]["labels"] = json!(adds);
            applied.done.push(labels_text(&labels));
        }
        if body.as_object().is_some_and(|body| !body.is_empty()) {
            let url = self.http.url(&["rest", "api", "3", "issue", &issue.0]);
            let what = format!("editing issue {}", issue.0);
            self.http.send(Method::PUT, url, Some(&body), &what).await?;
        }
        if let Some(status) = changes.status {
            if let Some(id) = transition {
                let url = self
                    .http
                    .url(&["rest", "api", "3", "issue", &issue.0, "transitions"]);
                let what = format!("moving issue {} to {status:?}", issue.0);
                let body = json!({"transition": {"id": id}});
                self.http
                    .send(Method::POST, url, Some(&body), &what)
                    .await?;
            }
            applied.done.push(format!("status {status}"));
        }
        Ok(applied)
    }
}

impl Jira {
    /// The transition that moves `issue` to `status`: `None` when it is there already; a
    /// permanent error naming the reachable statuses when no transition leads there.
    async fn transition_to(
        &self,
        issue: &JiraIssue,
        status: &str,
    ) -> Result<Option<String>, ProcessError> {
        let mut url = self.http.url(&["rest", "api", "3", "issue", &issue.0]);
        url.query_pairs_mut().append_pair("fields", "status");
        let what = format!("reading the status of issue {}", issue.0);
        let reply = self.http.send(Method::GET, url, None, &what).await?;
        let current = reply
            .body
            .pointer("/fields/status/name")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(Source::Jira, &what))?;
        if current.eq_ignore_ascii_case(status) {
            return Ok(None);
        }
        let url = self
            .http
            .url(&["rest", "api", "3", "issue", &issue.0, "transitions"]);
        let what = format!("listing the transitions of issue {}", issue.0);
        let reply = self.http.send(Method::GET, url, None, &what).await?;
        let transitions = reply
            .body
            .get("transitions")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed(Source::Jira, &what))?;
        let target = |t: &Value| {
            t.pointer("/to/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        if let Some(found) = transitions
            .iter()
            .find(|t| target(t).eq_ignore_ascii_case(status))
        {
            let id = found.get("id").and_then(Value::as_str).unwrap_or_default();
            return Ok(Some(id.to_string()));
        }
        let reachable: Vec<String> = transitions.iter().map(target).collect();
        Err(ProcessError::permanent(
            "status_unreachable",
            format!(
                "jira: issue {} is {current:?} and no transition leads to {status:?} (reachable: {}); nothing was changed",
                issue.0,
                reachable.join(", ")
            ),
        ))
    }
}

/// The project a create names: a bare project key, as JQL may quote it.
fn project<'a>(create: &Create<'a>) -> Result<&'a str, ProcessError> {
    let project = create.project.ok_or_else(|| {
        ProcessError::permanent(
            "invalid_action",
            "the action is invalid: a Jira issue needs a project (its key)",
        )
    })?;
    if project
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        Ok(project)
    } else {
        Err(ProcessError::permanent(
            "invalid_action",
            format!("the action is invalid: {project:?} is not a Jira project key"),
        ))
    }
}

/// Jira's default priority scheme.
fn priority_name(priority: Priority) -> &'static str {
    match priority {
        Priority::Critical => "Highest",
        Priority::High => "High",
        Priority::Medium => "Medium",
        Priority::Low => "Low",
    }
}
