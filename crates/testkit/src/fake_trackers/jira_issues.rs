//! The fake Jira's issues themselves, for agents' ticket actions: create
//! (`POST /rest/api/3/issue`), read (`GET /rest/api/3/issue/{idOrKey}`), field edits, the
//! workflow's transitions, and the JQL search (`GET /rest/api/3/search/jql`) that looks for an
//! issue by text.
//!
//! The JQL understood is what a client of this fake sends: clauses joined by `AND`, each
//! `project = KEY`, `key = KEY` or `text ~ "words"` (`"\"a phrase\""` for a phrase), values
//! bare or double-quoted with backslash escapes. Anything else is Jira's 400 for a query it
//! cannot parse. `text ~` matches, ignoring case, the summary, the description and the
//! comments. A project exists once an issue of it does.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::jira::{JiraIssue, check_adf, jira_error, jira_field_error, jira_issue_missing};
use super::{FakeTrackers, Request, Trackers};

/// Jira's default priority scheme.
const PRIORITIES: [&str; 5] = ["Highest", "High", "Medium", "Low", "Lowest"];
/// The fake's workflow: every status reachable from every other, by the transition's id.
const STATUSES: [(&str, &str); 3] = [("11", "To Do"), ("21", "In Progress"), ("31", "Done")];

// Reading back what actions did to Jira issues.
impl FakeTrackers {
    /// A Jira issue as `GET /rest/api/3/issue/{idOrKey}` returns it: `id`, `key` and every
    /// field (`summary`, `description`, `labels`, `priority.name`, `status.name`,
    /// `assignee.accountId`).
    pub fn jira_issue(&self, id_or_key: &str) -> Value {
        let base = self.jira_url();
        let mut state = self.state();
        let issue = state.jira_issue(id_or_key).expect("no such Jira issue");
        issue_json(&base, issue, None)
    }

    /// The keys of every Jira issue, in the order they were added or created.
    pub fn jira_issue_keys(&self) -> Vec<String> {
        self.state().jira.iter().map(|i| i.key.clone()).collect()
    }
}

pub(super) fn create(state: &mut Trackers, request: &Request<'_>) -> Response {
    let fields = &request.body["fields"];
    let project = fields
        .pointer("/project/key")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut errors = Map::new();
    let prefix = format!("{project}-");
    if project.is_empty() || !state.jira.iter().any(|i| i.key.starts_with(&prefix)) {
        errors.insert("project".into(), "Specify a valid project ID or key".into());
    }
    if fields["summary"]
        .as_str()
        .is_none_or(|s| s.trim().is_empty())
    {
        errors.insert(
            "summary".into(),
            "You must specify a summary of the issue.".into(),
        );
    }
    if fields.pointer("/issuetype/name").is_none() && fields.pointer("/issuetype/id").is_none() {
        errors.insert("issuetype".into(), "Specify an issue type".into());
    }
    let mut issue = JiraIssue::new("", "");
    if let Err(response) = edit_fields(&mut issue, &without(fields, &["project", "issuetype"])) {
        return *response;
    }
    if issue
        .labels
        .iter()
        .any(|l| l.is_empty() || l.contains(char::is_whitespace))
    {
        errors.insert("labels".into(), "A label cannot contain spaces.".into());
    }
    if !errors.is_empty() {
        let body = json!({"errorMessages": [], "errors": errors});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    let number = state
        .jira
        .iter()
        .filter_map(|i| i.key.strip_prefix(&prefix)?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
        + 1;
    issue.id = (30_000 + state.next_id()).to_string();
    issue.key = format!("{project}-{number}");
    let body = json!({
        "id": issue.id,
        "key": issue.key,
        "self": format!("{}/rest/api/3/issue/{}", request.base, issue.id),
    });
    state.jira.push(issue);
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

pub(super) fn get(state: &mut Trackers, issue: &str, request: &Request<'_>) -> Response {
    let Some(issue) = state.jira_issue(issue) else {
        return jira_issue_missing();
    };
    let body = issue_json(request.base, issue, request.param("fields"));
    (StatusCode::OK, axum::Json(body)).into_response()
}

pub(super) fn search(state: &mut Trackers, request: &Request<'_>) -> Response {
    let jql = request.param("jql").unwrap_or("");
    let clauses = match parse_jql(jql) {
        Ok(clauses) => clauses,
        Err(problem) => {
            return jira_error(
                StatusCode::BAD_REQUEST,
                &format!("Error in the JQL Query: {problem}"),
            );
        }
    };
    let max_results: usize = request
        .param("maxResults")
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let matching: Vec<Value> = state
        .jira
        .iter()
        .filter(|issue| clauses.iter().all(|clause| clause.matches(issue)))
        .take(max_results)
        .map(|issue| issue_json(request.base, issue, request.param("fields")))
        .collect();
    (
        StatusCode::OK,
        axum::Json(json!({"issues": matching, "isLast": true})),
    )
        .into_response()
}

pub(super) fn transitions(state: &mut Trackers, issue: &str) -> Response {
    let Some(issue) = state.jira_issue(issue) else {
        return jira_issue_missing();
    };
    let available: Vec<Value> = STATUSES
        .iter()
        .filter(|(_, name)| *name != issue.status)
        .map(
            |(id, name)| json!({"id": id, "name": name, "to": {"name": name}, "isAvailable": true}),
        )
        .collect();
    (
        StatusCode::OK,
        axum::Json(json!({"transitions": available})),
    )
        .into_response()
}

pub(super) fn transition(state: &mut Trackers, issue: &str, request: &Request<'_>) -> Response {
    let Some(issue) = state.jira_issue(issue) else {
        return jira_issue_missing();
    };
    let id = request
        .body
        .pointer("/transition/id")
        .and_then(Value::as_str)
        .unwrap_or("");
    match STATUSES
        .iter()
        .find(|(known, name)| *known == id && *name != issue.status)
    {
        Some((_, name)) => {
            issue.status = name.to_string();
            StatusCode::NO_CONTENT.into_response()
        }
        None => jira_error(
            StatusCode::BAD_REQUEST,
            &format!("Transition id '{id}' is not valid for this issue."),
        ),
    }
}

/// Applies an edit's `fields` (labels are the caller's: they also come as `update`), or
/// answers Jira's 400 for the first it refuses.
pub(super) fn edit_fields(issue: &mut JiraIssue, fields: &Value) -> Result<(), Box<Response>> {
    let Some(fields) = fields.as_object() else {
        return Ok(());
    };
    for (name, value) in fields {
        match name.as_str() {
            "summary" => issue.summary = value.as_str().unwrap_or_default().to_string(),
            "description" => {
                if !value.is_null() {
                    check_adf(value)
                        .map_err(|problem| Box::new(jira_field_error("description", &problem)))?;
                }
                issue.description = value.clone();
            }
            "priority" => {
                let wanted = value.get("name").and_then(Value::as_str).unwrap_or("");
                if !PRIORITIES.contains(&wanted) {
                    return Err(Box::new(jira_field_error(
                        "priority",
                        &format!("The priority selected is invalid: '{wanted}'."),
                    )));
                }
                issue.priority = wanted.to_string();
            }
            "assignee" => {
                issue.assignee = value
                    .get("accountId")
                    .and_then(Value::as_str)
                    .map(String::from)
            }
            "labels" => {}
            other => {
                return Err(Box::new(jira_field_error(
                    other,
                    &format!(
                        "Field '{other}' cannot be set. It is not on the appropriate screen, or unknown."
                    ),
                )));
            }
        }
    }
    if let Some(labels) = fields.get("labels").and_then(Value::as_array) {
        issue.labels = labels
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect();
    }
    Ok(())
}

/// An issue as `GET /rest/api/3/issue` returns it, with only the `fields` asked for (a
/// comma-separated list; all when absent).
fn issue_json(base: &str, issue: &JiraIssue, wanted: Option<&str>) -> Value {
    let all = json!({
        "summary": issue.summary,
        "description": issue.description,
        "labels": issue.labels,
        "priority": {"name": issue.priority},
        "status": {"name": issue.status},
        "assignee": issue.assignee.as_ref().map(|id| json!({"accountId": id})),
        "project": {"key": issue.key.rsplit_once('-').map_or("", |(p, _)| p)},
    });
    let fields: Map<String, Value> = match wanted {
        Some(wanted) => {
            let wanted: Vec<&str> = wanted.split(',').map(str::trim).collect();
            all.as_object()
                .into_iter()
                .flatten()
                .filter(|(name, _)| wanted.contains(&name.as_str()))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect()
        }
        None => all.as_object().cloned().unwrap_or_default(),
    };
    json!({
        "id": issue.id,
        "key": issue.key,
        "self": format!("{base}/rest/api/3/issue/{}", issue.id),
        "fields": fields,
    })
}

fn without(fields: &Value, names: &[&str]) -> Value {
    let mut fields = fields.as_object().cloned().unwrap_or_default();
    fields.retain(|name, _| !names.contains(&name.as_str()));
    Value::Object(fields)
}

/// One JQL clause the fake understands.
#[derive(Debug, PartialEq)]
enum Clause {
    Project(String),
    Key(String),
    Text(String),
}

impl Clause {
    fn matches(&self, issue: &JiraIssue) -> bool {
        match self {
            Clause::Project(project) => issue
                .key
                .rsplit_once('-')
                .is_some_and(|(p, _)| p.eq_ignore_ascii_case(project)),
            Clause::Key(key) => issue.key.eq_ignore_ascii_case(key),
            Clause::Text(words) => {
                let mut text = vec![issue.summary.clone(), adf_text(&issue.description)];
                text.extend(issue.comments.iter().map(|c| adf_text(&c["body"])));
                let words = words.trim_matches('"').to_lowercase();
                text.iter().any(|t| t.to_lowercase().contains(&words))
            }
        }
    }
}

fn parse_jql(jql: &str) -> Result<Vec<Clause>, String> {
    let mut tokens = tokens(jql)?.into_iter();
    let mut clauses = Vec::new();
    loop {
        let (Some(field), Some(operator), Some(value)) =
            (tokens.next(), tokens.next(), tokens.next())
        else {
            return Err(format!("expected `field operator value` in {jql:?}"));
        };
        let clause = match (field.to_lowercase().as_str(), operator.as_str()) {
            ("project", "=") => Clause::Project(value),
            ("key", "=") => Clause::Key(value),
            ("text", "~") => Clause::Text(value),
            _ => return Err(format!("the fake cannot search {field} {operator}")),
        };
        clauses.push(clause);
        match tokens.next() {
            None => return Ok(clauses),
            Some(and) if and.eq_ignore_ascii_case("and") => {}
            Some(other) => return Err(format!("expected AND, found {other:?}")),
        }
    }
}

/// Words, operators and double-quoted strings (unescaped).
fn tokens(jql: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = jql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '=' | '~' => out.push(c.to_string()),
            '"' => {
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => value.extend(chars.next()),
                        Some('"') => break,
                        Some(c) => value.push(c),
                        None => return Err("an unterminated string".into()),
                    }
                }
                out.push(value);
            }
            c => {
                let mut word = c.to_string();
                while let Some(&next) = chars.peek() {
                    if next.is_whitespace() || "=~\"".contains(next) {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                out.push(word);
            }
        }
    }
    Ok(out)
}

/// Every text node of an ADF value, joined by newlines.
fn adf_text(value: &Value) -> String {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(object) => {
                if let Some(text) = object.get("text").and_then(Value::as_str) {
                    out.push(text.to_string());
                }
                if let Some(content) = object.get("content") {
                    walk(content, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            Value::String(text) => out.push(text.clone()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut out);
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jql_reads_quoted_phrases_and_refuses_what_it_cannot_search() {
        let clauses = parse_jql(r#"project = "OPS" AND text ~ "\"chatgptd-action:act-1\"""#);
        assert_eq!(
            clauses.unwrap(),
            vec![
                Clause::Project("OPS".into()),
                Clause::Text("\"chatgptd-action:act-1\"".into()),
            ]
        );
        assert!(parse_jql("assignee = bob").is_err());
        assert!(parse_jql("project = OPS OR key = OPS-1").is_err());
        assert!(parse_jql("text ~ \"open").is_err());
    }
}
