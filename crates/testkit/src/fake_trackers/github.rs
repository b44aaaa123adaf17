//! The fake GitHub REST API: issue comments and labels.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{FakeTrackers, Request, Trackers, now_ms, utc};

/// The GitHub token the fake accepts (`Authorization: Bearer` or `token`).
pub const GITHUB_TOKEN: &str = "ghp_fake_token";

#[derive(Debug)]
pub(super) struct GitHubIssue {
    comments: Vec<Value>,
    labels: Vec<String>,
    title: String,
    body: String,
    /// `open` or `closed`.
    state: String,
    assignees: Vec<String>,
    created_at: String,
}

impl Default for GitHubIssue {
    fn default() -> Self {
        GitHubIssue {
            comments: Vec::new(),
            labels: Vec::new(),
            title: String::new(),
            body: String::new(),
            state: "open".into(),
            assignees: Vec::new(),
            created_at: github_time(now_ms()),
        }
    }
}

// The GitHub half of `FakeTrackers`' test API: seeding tickets and reading back state.
impl FakeTrackers {
    /// Adds a GitHub issue.
    pub fn add_github_issue(&self, owner: &str, repo: &str, number: u64) {
        self.state()
            .github
            .insert((owner.into(), repo.into(), number), GitHubIssue::default());
    }

    /// Adds a comment to a GitHub issue as if someone had posted it.
    pub fn add_github_comment(&self, owner: &str, repo: &str, number: u64, body: &str) {
        let base = self.github_url();
        let mut state = self.state();
        let id = state.next_id();
        let issue = state
            .github
            .get_mut(&(owner.into(), repo.into(), number))
            .expect("no such GitHub issue");
        issue
            .comments
            .push(github_comment(&base, owner, repo, number, id, body));
    }

    /// A GitHub issue's comment bodies, oldest first.
    pub fn github_comments(&self, owner: &str, repo: &str, number: u64) -> Vec<String> {
        let state = self.state();
        let issue = state
            .github
            .get(&(owner.into(), repo.into(), number))
            .expect("no such GitHub issue");
        issue
            .comments
            .iter()
            .map(|c| c["body"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// A GitHub issue as `GET /repos/{owner}/{repo}/issues/{number}` returns it.
    pub fn github_issue(&self, owner: &str, repo: &str, number: u64) -> Value {
        let base = self.github_url();
        let state = self.state();
        let issue = state
            .github
            .get(&(owner.into(), repo.into(), number))
            .expect("no such GitHub issue");
        issue_json(&base, owner, repo, number, issue)
    }

    /// The numbers of a repository's issues, ascending.
    pub fn github_issue_numbers(&self, owner: &str, repo: &str) -> Vec<u64> {
        let state = self.state();
        let mut numbers: Vec<u64> = state
            .github
            .keys()
            .filter(|key| key.0 == owner && key.1 == repo)
            .map(|key| key.2)
            .collect();
        numbers.sort_unstable();
        numbers
    }

    /// A GitHub issue's labels.
    pub fn github_labels(&self, owner: &str, repo: &str, number: u64) -> Vec<String> {
        let state = self.state();
        let issue = state
            .github
            .get(&(owner.into(), repo.into(), number))
            .expect("no such GitHub issue");
        issue.labels.clone()
    }
}

pub(super) fn github(state: &mut Trackers, request: &Request<'_>) -> Response {
    let (method, segments) = (request.method.as_str(), request.segments);
    let (owner, repo, number, tail) = match segments {
        ["repos", owner, repo, "issues"] => return repository_issues(state, owner, repo, request),
        ["repos", owner, repo, "issues", number] => (owner, repo, number, ""),
        ["repos", owner, repo, "issues", number, tail] => (owner, repo, number, *tail),
        _ => return github_error(StatusCode::NOT_FOUND, "Not Found"),
    };
    let Ok(number) = number.parse::<u64>() else {
        return github_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let id = state.next_id();
    let key = (owner.to_string(), repo.to_string(), number);
    let Some(issue) = state.github.get_mut(&key) else {
        return github_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let as_json = |issue: &GitHubIssue| issue_json(request.base, owner, repo, number, issue);
    match (method, tail) {
        ("GET", "") => (StatusCode::OK, axum::Json(as_json(issue))).into_response(),
        ("PATCH", "") => {
            let body = request.body;
            if let Some(title) = body.get("title").and_then(Value::as_str) {
                issue.title = title.to_string();
            }
            if let Some(text) = body.get("body").and_then(Value::as_str) {
                issue.body = text.to_string();
            }
            if let Some(wanted) = body.get("state").and_then(Value::as_str) {
                if !matches!(wanted, "open" | "closed") {
                    return github_validation_failed("Issue", "state");
                }
                issue.state = wanted.to_string();
            }
            if let Some(labels) = body.get("labels") {
                issue.labels = names(labels);
            }
            if let Some(assignees) = body.get("assignees") {
                issue.assignees = names(assignees);
            }
            (StatusCode::OK, axum::Json(as_json(issue))).into_response()
        }
        ("POST", "assignees") => {
            for login in names(&request.body["assignees"]) {
                if !issue.assignees.contains(&login) {
                    issue.assignees.push(login);
                }
            }
            (StatusCode::CREATED, axum::Json(as_json(issue))).into_response()
        }
        ("GET", "comments") => {
            let per_page: usize = request
                .param("per_page")
                .and_then(|v| v.parse().ok())
                .unwrap_or(30)
                .clamp(1, 100);
            let page: usize = request
                .param("page")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1)
                .max(1);
            let since = request.param("since");
            let listed: Vec<Value> = issue
                .comments
                .iter()
                .filter(|c| since.is_none_or(|s| c["updated_at"].as_str().unwrap_or("") >= s))
                .skip((page - 1) * per_page)
                .take(per_page)
                .cloned()
                .collect();
            (StatusCode::OK, axum::Json(Value::Array(listed))).into_response()
        }
        ("POST", "comments") => {
            let body = request
                .body
                .get("body")
                .and_then(Value::as_str)
                .unwrap_or("");
            if body.is_empty() {
                return github_validation_failed("IssueComment", "body");
            }
            let comment = github_comment(request.base, owner, repo, number, id, body);
            issue.comments.push(comment.clone());
            (StatusCode::CREATED, axum::Json(comment)).into_response()
        }
        ("POST", "labels") => {
            // The API takes `{"labels": [...]}` or a bare array, of names or `{"name"}`s.
            let given = request.body.get("labels").unwrap_or(request.body);
            let names: Vec<String> = given
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_str().or_else(|| l.get("name")?.as_str()))
                .map(String::from)
                .collect();
            if names.is_empty() {
                return github_validation_failed("Label", "labels");
            }
            for name in names {
                if !issue.labels.contains(&name) {
                    issue.labels.push(name);
                }
            }
            let labels: Vec<Value> = issue
                .labels
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    json!({
                        "id": 208_045_946 + i as u64,
                        "node_id": format!("MDU6TGFiZWwyMDgwNDU5N{i}"),
                        "url": format!("{}/repos/{owner}/{repo}/labels/{name}", request.base),
                        "name": name,
                        "description": null,
                        "color": "ededed",
                        "default": false,
                    })
                })
                .collect();
            (StatusCode::OK, axum::Json(Value::Array(labels))).into_response()
        }
        _ => github_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// `GET /repos/{owner}/{repo}/issues` (`state` open, closed or all; `sort=created`;
/// `direction`; `per_page`; `page`) and `POST` (create). A repository exists once an issue
/// of it does.
fn repository_issues(
    state: &mut Trackers,
    owner: &str,
    repo: &str,
    request: &Request<'_>,
) -> Response {
    let of_repo = |key: &(String, String, u64)| key.0 == owner && key.1 == repo;
    if !state.github.keys().any(of_repo) {
        return github_error(StatusCode::NOT_FOUND, "Not Found");
    }
    match request.method.as_str() {
        "GET" => {
            let wanted = request.param("state").unwrap_or("open");
            let per_page: usize = request
                .param("per_page")
                .and_then(|v| v.parse().ok())
                .unwrap_or(30)
                .clamp(1, 100);
            let page: usize = request
                .param("page")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1)
                .max(1);
            let mut numbers: Vec<u64> = state
                .github
                .iter()
                .filter(|(key, issue)| of_repo(key) && (wanted == "all" || issue.state == wanted))
                .map(|(key, _)| key.2)
                .collect();
            // Numbers grow with creation, so they order by `created`.
            numbers.sort_unstable();
            if request.param("direction") != Some("asc") {
                numbers.reverse();
            }
            let listed: Vec<Value> = numbers
                .into_iter()
                .skip((page - 1) * per_page)
                .take(per_page)
                .map(|number| {
                    let issue = &state.github[&(owner.to_string(), repo.to_string(), number)];
                    issue_json(request.base, owner, repo, number, issue)
                })
                .collect();
            (StatusCode::OK, axum::Json(Value::Array(listed))).into_response()
        }
        "POST" => {
            let body = request.body;
            let title = body.get("title").and_then(Value::as_str).unwrap_or("");
            if title.trim().is_empty() {
                return github_validation_failed("Issue", "title");
            }
            let number = state
                .github
                .keys()
                .filter(|key| of_repo(key))
                .map(|key| key.2)
                .max()
                .unwrap_or(0)
                + 1;
            let issue = GitHubIssue {
                title: title.to_string(),
                body: body
                    .get("body")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                labels: names(&body["labels"]),
                assignees: names(&body["assignees"]),
                ..GitHubIssue::default()
            };
            let created = issue_json(request.base, owner, repo, number, &issue);
            state
                .github
                .insert((owner.to_string(), repo.to_string(), number), issue);
            (StatusCode::CREATED, axum::Json(created)).into_response()
        }
        _ => github_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// Names given as strings or as `{"name": ...}`/`{"login": ...}` objects.
fn names(given: &Value) -> Vec<String> {
    given
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            v.as_str()
                .or_else(|| v.get("name")?.as_str())
                .or_else(|| v.get("login")?.as_str())
        })
        .map(String::from)
        .collect()
}

/// An issue as GitHub returns it (a subset of the docs' fields).
fn issue_json(base: &str, owner: &str, repo: &str, number: u64, issue: &GitHubIssue) -> Value {
    json!({
        "id": 2_000_000 + number,
        "number": number,
        "url": format!("{base}/repos/{owner}/{repo}/issues/{number}"),
        "html_url": format!("https://github.com/{owner}/{repo}/issues/{number}"),
        "title": issue.title,
        "body": issue.body,
        "state": issue.state,
        "labels": issue.labels.iter().map(|name| json!({"name": name})).collect::<Vec<_>>(),
        "assignees": issue.assignees.iter().map(|login| json!({"login": login})).collect::<Vec<_>>(),
        "comments": issue.comments.len(),
        "created_at": issue.created_at,
        "user": {"login": "chatgptd[bot]", "id": 41_898_282, "type": "Bot"},
    })
}

/// An issue comment as GitHub returns it.
fn github_comment(base: &str, owner: &str, repo: &str, number: u64, id: u64, body: &str) -> Value {
    let now = github_time(now_ms());
    json!({
        "id": 1_000_000 + id,
        "node_id": format!("IC_kwDOFake{id}"),
        "url": format!("{base}/repos/{owner}/{repo}/issues/comments/{}", 1_000_000 + id),
        "html_url": format!("https://github.com/{owner}/{repo}/issues/{number}#issuecomment-{}", 1_000_000 + id),
        "issue_url": format!("{base}/repos/{owner}/{repo}/issues/{number}"),
        "body": body,
        "user": {"login": "chatgptd[bot]", "id": 41_898_282, "type": "Bot"},
        "created_at": now,
        "updated_at": now,
        "author_association": "NONE",
    })
}

pub(super) fn github_error(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "message": message,
        "documentation_url": "https://docs.github.com/rest",
        "status": status.as_u16().to_string(),
    });
    (status, axum::Json(body)).into_response()
}

fn github_validation_failed(resource: &str, field: &str) -> Response {
    let body = json!({
        "message": "Validation Failed",
        "errors": [{"resource": resource, "code": "missing_field", "field": field}],
        "documentation_url": "https://docs.github.com/rest",
        "status": "422",
    });
    (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response()
}

/// `2011-04-14T16:00:49Z`.
pub(super) fn github_time(epoch_ms: i64) -> String {
    let (y, mo, d, h, mi, s, _) = utc(epoch_ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}
