//! The fake Jira Cloud REST API v3: issue comments and labels.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::jira_issues as issues;
use super::{FakeTrackers, Request, Trackers, now_ms, utc};

/// The Jira account the fake accepts (basic auth `email:token`).
pub const JIRA_EMAIL: &str = "chatgptd-bot@example.com";
/// The Jira API token the fake accepts.
pub const JIRA_API_TOKEN: &str = "fake-jira-token";

#[derive(Debug, Default)]
pub(super) struct JiraIssue {
    pub(super) id: String,
    pub(super) key: String,
    pub(super) comments: Vec<Value>,
    pub(super) labels: Vec<String>,
    pub(super) summary: String,
    /// ADF, or `Null` when the issue has none.
    pub(super) description: Value,
    pub(super) priority: String,
    pub(super) status: String,
    /// The assignee's account id.
    pub(super) assignee: Option<String>,
}

impl JiraIssue {
    /// A new issue as Jira starts one: status `To Do`, priority `Medium`.
    pub(super) fn new(id: &str, key: &str) -> JiraIssue {
        JiraIssue {
            id: id.into(),
            key: key.into(),
            priority: "Medium".into(),
            status: "To Do".into(),
            ..Default::default()
        }
    }
}

impl Trackers {
    pub(super) fn jira_issue(&mut self, id_or_key: &str) -> Option<&mut JiraIssue> {
        self.jira
            .iter_mut()
            .find(|i| i.id == id_or_key || i.key == id_or_key)
    }
}

// The Jira half of `FakeTrackers`' test API: seeding tickets and reading back state.
impl FakeTrackers {
    /// Adds a Jira issue, addressable by its numeric id and its key.
    pub fn add_jira_issue(&self, id: &str, key: &str) {
        self.state().jira.push(JiraIssue::new(id, key));
    }

    /// Adds a comment to a Jira issue as if someone had posted it (`body` is ADF).
    pub fn add_jira_comment(&self, id_or_key: &str, body: Value) {
        let base = self.jira_url();
        let mut state = self.state();
        let id = state.next_id();
        let issue = state.jira_issue(id_or_key).expect("no such Jira issue");
        let comment = jira_comment(&base, &issue.id, id, body);
        issue.comments.push(comment);
    }

    /// The bodies (ADF) of a Jira issue's comments, oldest first.
    pub fn jira_comments(&self, id_or_key: &str) -> Vec<Value> {
        let mut state = self.state();
        let issue = state.jira_issue(id_or_key).expect("no such Jira issue");
        issue.comments.iter().map(|c| c["body"].clone()).collect()
    }

    /// A Jira issue's labels.
    pub fn jira_labels(&self, id_or_key: &str) -> Vec<String> {
        let mut state = self.state();
        state
            .jira_issue(id_or_key)
            .expect("no such Jira issue")
            .labels
            .clone()
    }
}

pub(super) fn jira(state: &mut Trackers, request: &Request<'_>) -> Response {
    match (request.method.as_str(), request.segments) {
        ("POST", ["rest", "api", "3", "issue"]) => issues::create(state, request),
        ("GET", ["rest", "api", "3", "search", "jql"]) => issues::search(state, request),
        ("GET", ["rest", "api", "3", "issue", issue]) => issues::get(state, issue, request),
        ("GET", ["rest", "api", "3", "issue", issue, "transitions"]) => {
            issues::transitions(state, issue)
        }
        ("POST", ["rest", "api", "3", "issue", issue, "transitions"]) => {
            issues::transition(state, issue, request)
        }
        ("GET", ["rest", "api", "3", "issue", issue, "comment"]) => {
            jira_list_comments(state, issue, request)
        }
        ("POST", ["rest", "api", "3", "issue", issue, "comment"]) => {
            jira_add_comment(state, issue, request)
        }
        ("PUT", ["rest", "api", "3", "issue", issue]) => jira_edit_issue(state, issue, request),
        _ => jira_error(StatusCode::NOT_FOUND, "No such resource."),
    }
}

pub(super) fn jira_issue_missing() -> Response {
    jira_error(
        StatusCode::NOT_FOUND,
        "Issue does not exist or you do not have permission to see it.",
    )
}

fn jira_list_comments(state: &mut Trackers, issue: &str, request: &Request<'_>) -> Response {
    let Some(issue) = state.jira_issue(issue) else {
        return jira_issue_missing();
    };
    let start_at: usize = request
        .param("startAt")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let max_results: usize = request
        .param("maxResults")
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000)
        .min(5000);
    let mut comments = issue.comments.clone();
    if request.param("orderBy") == Some("-created") {
        comments.reverse();
    }
    let page: Vec<Value> = comments
        .iter()
        .skip(start_at)
        .take(max_results)
        .cloned()
        .collect();
    let body = json!({
        "startAt": start_at,
        "maxResults": max_results,
        "total": comments.len(),
        "comments": page,
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn jira_add_comment(state: &mut Trackers, issue: &str, request: &Request<'_>) -> Response {
    let id = state.next_id();
    let Some(issue) = state.jira_issue(issue) else {
        return jira_issue_missing();
    };
    let body = &request.body["body"];
    if let Err(problem) = check_adf(body) {
        return jira_field_error("comment", &problem);
    }
    let comment = jira_comment(request.base, &issue.id, id, body.clone());
    issue.comments.push(comment.clone());
    (StatusCode::CREATED, axum::Json(comment)).into_response()
}

fn jira_edit_issue(state: &mut Trackers, issue: &str, request: &Request<'_>) -> Response {
    let Some(issue) = state.jira_issue(issue) else {
        return jira_issue_missing();
    };
    let operations = request
        .body
        .pointer("/update/labels")
        .and_then(Value::as_array);
    let set = request
        .body
        .pointer("/fields/labels")
        .and_then(Value::as_array);
    if let Err(response) = issues::edit_fields(issue, &request.body["fields"]) {
        return *response;
    }
    let mut labels = issue.labels.clone();
    if let Some(set) = set {
        labels = set
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect();
    }
    for operation in operations.into_iter().flatten() {
        if let Some(add) = operation.get("add").and_then(Value::as_str) {
            if !labels.iter().any(|l| l == add) {
                labels.push(add.to_string());
            }
        } else if let Some(remove) = operation.get("remove").and_then(Value::as_str) {
            labels.retain(|l| l != remove);
        } else if let Some(set) = operation.get("set").and_then(Value::as_array) {
            labels = set
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect();
        } else {
            return jira_field_error("labels", "Unsupported operation.");
        }
    }
    if let Some(bad) = labels
        .iter()
        .find(|l| l.contains(char::is_whitespace) || l.is_empty())
    {
        return jira_field_error(
            "labels",
            &format!("The label '{bad}' contains spaces which is invalid."),
        );
    }
    issue.labels = labels;
    StatusCode::NO_CONTENT.into_response()
}

/// A comment as Jira returns it (the shape of the REST v3 `addComment` 201 example).
fn jira_comment(base: &str, issue_id: &str, id: u64, body: Value) -> Value {
    let author = json!({
        "self": format!("{base}/rest/api/3/user?accountId=5b10a2844c20165700ede21g"),
        "accountId": "5b10a2844c20165700ede21g",
        "displayName": "chatgptd",
        "active": true,
    });
    let now = jira_time(now_ms());
    json!({
        "self": format!("{base}/rest/api/3/issue/{issue_id}/comment/{}", 10_000 + id),
        "id": (10_000 + id).to_string(),
        "author": author,
        "body": body,
        "updateAuthor": author,
        "created": now,
        "updated": now,
        "jsdPublic": true,
    })
}

/// What Jira checks of an ADF comment body: a version 1 `doc` with content, and no empty
/// text node anywhere.
pub(super) fn check_adf(body: &Value) -> Result<(), String> {
    if body.get("type").and_then(Value::as_str) != Some("doc")
        || body.get("version").and_then(Value::as_u64) != Some(1)
    {
        return Err("Comment body must be an ADF document (type doc, version 1).".into());
    }
    let empty = body
        .get("content")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if empty {
        return Err("Comment body can not be empty!".into());
    }
    fn empty_text(value: &Value) -> bool {
        match value {
            Value::Object(object) => {
                let is_empty_text = object.get("type").and_then(Value::as_str) == Some("text")
                    && object
                        .get("text")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty);
                is_empty_text || object.get("content").is_some_and(empty_text)
            }
            Value::Array(items) => items.iter().any(empty_text),
            _ => false,
        }
    }
    if empty_text(body) {
        return Err("INVALID_INPUT: text nodes must not be empty.".into());
    }
    Ok(())
}

pub(super) fn jira_error(status: StatusCode, message: &str) -> Response {
    let body = json!({"errorMessages": [message], "errors": {}});
    (status, axum::Json(body)).into_response()
}

pub(super) fn jira_field_error(field: &str, message: &str) -> Response {
    let body = json!({"errorMessages": [], "errors": {field: message}});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// `2021-01-17T12:34:00.000+0000`.
pub(super) fn jira_time(epoch_ms: i64) -> String {
    let (y, mo, d, h, mi, s, ms) = utc(epoch_ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}+0000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adf_checks_catch_what_jira_refuses() {
        let good = json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "x"}]}
        ]});
        assert!(check_adf(&good).is_ok());
        let empty_text = json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": ""}]}
        ]});
        assert!(check_adf(&empty_text).is_err());
        assert!(check_adf(&json!("plain text")).is_err());
    }
}
