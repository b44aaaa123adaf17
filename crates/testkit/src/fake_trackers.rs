//! Fake Jira Cloud, ServiceNow and GitHub REST APIs, on one server on 127.0.0.1, for the
//! write-back worker's tests.
//!
//! Each API lives under its own prefix, so one server plays all three and every base URL
//! looks like a real one with a path: [`FakeTrackers::jira_url`] is `http://ADDR/jira`
//! (requests go to `/jira/rest/api/3/...`), [`FakeTrackers::servicenow_url`] is
//! `http://ADDR/servicenow` (`/servicenow/api/now/table/...`), [`FakeTrackers::github_url`]
//! is `http://ADDR/github` (`/github/repos/...`).
//!
//! What it serves, with the real APIs' shapes and status codes:
//!
//! - Jira: `GET`/`POST /rest/api/3/issue/{idOrKey}/comment` (list with `startAt`,
//!   `maxResults`, `orderBy=[-+]created`; add, 201, refusing bodies that are not ADF documents
//!   or that have empty text nodes) and `PUT /rest/api/3/issue/{idOrKey}` (`update.labels`
//!   `add`/`remove`/`set`, 204, refusing labels with spaces).
//! - ServiceNow: `GET`/`PATCH /api/now/table/incident/{sys_id}`. `work_notes` and `comments`
//!   are journal fields: a PATCH appends an entry, and a GET returns them as `""` unless
//!   `sysparm_display_value=true` (or `all`), when they read as every entry newest first, as
//!   the real Table API does. `sysparm_fields` selects fields.
//! - GitHub: `GET`/`POST /repos/{owner}/{repo}/issues/{number}/comments` (list with `since`,
//!   `per_page`, `page`; create, 201) and `POST .../labels` (200, every label of the issue).
//!
//! Tickets exist only once a test adds them ([`FakeTrackers::add_jira_issue`], ...); others
//! get each API's 404. Credentials are checked (401 with each API's body when wrong): the
//! constants below. Every call is recorded (method, path below the prefix, decoded query,
//! headers, JSON body, status) for exact assertions, and state (comments, journal, labels)
//! is kept so that listing after posting shows what was posted. Failures are scriptable per
//! API: [`FakeTrackers::fail_next`] answers the next calls with a status (and a
//! `Retry-After`), [`FakeTrackers::delay_next`] holds them before answering.
//!
//! Timestamps use the APIs' formats; GitHub's `since` compares them as text, which orders
//! correctly because they are all `YYYY-MM-DDTHH:MM:SSZ`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Map, Value, json};

/// The Jira account the fake accepts (basic auth `email:token`).
pub const JIRA_EMAIL: &str = "chatgptd-bot@example.com";
/// The Jira API token the fake accepts.
pub const JIRA_API_TOKEN: &str = "fake-jira-token";
/// The ServiceNow user the fake accepts (basic auth).
pub const SERVICENOW_USER: &str = "chatgptd.integration";
/// The ServiceNow password the fake accepts.
pub const SERVICENOW_PASSWORD: &str = "fake-servicenow-password";
/// The GitHub token the fake accepts (`Authorization: Bearer` or `token`).
pub const GITHUB_TOKEN: &str = "ghp_fake_token";

/// One of the faked APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    Jira,
    ServiceNow,
    GitHub,
}

impl Api {
    fn prefix(self) -> &'static str {
        match self {
            Api::Jira => "jira",
            Api::ServiceNow => "servicenow",
            Api::GitHub => "github",
        }
    }
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub api: Api,
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path below the API's prefix, as sent: `/rest/api/3/issue/10001/comment`.
    pub path: String,
    /// The query, decoded, in order.
    pub query: Vec<(String, String)>,
    /// Every header, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`Null` when there was none or it was not JSON).
    pub body: Value,
    /// The status it got.
    pub status: u16,
}

impl Call {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter's value.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `"METHOD /path"`, for compact assertions on call sequences.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// What a scripted call gets.
#[derive(Debug, Clone)]
enum FaultKind {
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    Delay(Duration),
}

#[derive(Debug, Clone)]
struct Fault {
    method: Option<Method>,
    remaining: usize,
    kind: FaultKind,
}

#[derive(Debug, Default)]
struct JiraIssue {
    id: String,
    key: String,
    comments: Vec<Value>,
    labels: Vec<String>,
}

#[derive(Debug)]
struct JournalEntry {
    field: String,
    text: String,
    at: String,
}

#[derive(Debug, Default)]
struct Incident {
    number: String,
    fields: Map<String, Value>,
    journal: Vec<JournalEntry>,
    updated_on: String,
}

#[derive(Debug, Default)]
struct GitHubIssue {
    comments: Vec<Value>,
    labels: Vec<String>,
}

#[derive(Debug, Default)]
struct Trackers {
    calls: Vec<Call>,
    faults: HashMap<Api, VecDeque<Fault>>,
    jira: Vec<JiraIssue>,
    servicenow: HashMap<String, Incident>,
    github: HashMap<(String, String, u64), GitHubIssue>,
    next_id: u64,
}

impl Trackers {
    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn jira_issue(&mut self, id_or_key: &str) -> Option<&mut JiraIssue> {
        self.jira
            .iter_mut()
            .find(|i| i.id == id_or_key || i.key == id_or_key)
    }

    /// Takes the next scripted fault for this call, if any.
    fn take_fault(&mut self, api: Api, method: &Method) -> Option<FaultKind> {
        let queue = self.faults.get_mut(&api)?;
        let index = queue
            .iter()
            .position(|f| f.method.as_ref().is_none_or(|m| m == method))?;
        let fault = &mut queue[index];
        fault.remaining -= 1;
        let kind = fault.kind.clone();
        if fault.remaining == 0 {
            queue.remove(index);
        }
        Some(kind)
    }
}

struct Shared {
    addr: SocketAddr,
    state: Mutex<Trackers>,
}

/// The running fake; stops when dropped.
pub struct FakeTrackers {
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeTrackers {
    /// Starts the fake with no tickets.
    pub async fn start() -> FakeTrackers {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            addr,
            state: Mutex::new(Trackers::default()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeTrackers { shared, server }
    }

    /// `http://ADDR/jira`: a Jira site's base URL.
    pub fn jira_url(&self) -> String {
        format!("http://{}/jira", self.shared.addr)
    }

    /// `http://ADDR/servicenow`: a ServiceNow instance URL.
    pub fn servicenow_url(&self) -> String {
        format!("http://{}/servicenow", self.shared.addr)
    }

    /// `http://ADDR/github`: a GitHub API root.
    pub fn github_url(&self) -> String {
        format!("http://{}/github", self.shared.addr)
    }

    fn state(&self) -> MutexGuard<'_, Trackers> {
        lock(&self.shared.state)
    }

    /// Adds a Jira issue, addressable by its numeric id and its key.
    pub fn add_jira_issue(&self, id: &str, key: &str) {
        self.state().jira.push(JiraIssue {
            id: id.into(),
            key: key.into(),
            ..Default::default()
        });
    }

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

    /// Adds a GitHub issue.
    pub fn add_github_issue(&self, owner: &str, repo: &str, number: u64) {
        self.state()
            .github
            .insert((owner.into(), repo.into(), number), GitHubIssue::default());
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

    /// Answers the next `times` calls to `api` with `status` (and `Retry-After` in whole
    /// seconds, rounded up, when given), with that API's error body.
    pub fn fail_next(&self, api: Api, times: usize, status: u16, retry_after: Option<Duration>) {
        self.script(
            api,
            None,
            times,
            FaultKind::Status {
                status,
                retry_after,
            },
        );
    }

    /// Like [`fail_next`](Self::fail_next), for calls with this method only.
    pub fn fail_next_on(
        &self,
        api: Api,
        method: &str,
        times: usize,
        status: u16,
        retry_after: Option<Duration>,
    ) {
        let method = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        self.script(
            api,
            Some(method),
            times,
            FaultKind::Status {
                status,
                retry_after,
            },
        );
    }

    /// Holds the next `times` calls to `api` for `delay` before answering them normally.
    pub fn delay_next(&self, api: Api, times: usize, delay: Duration) {
        self.script(api, None, times, FaultKind::Delay(delay));
    }

    fn script(&self, api: Api, method: Option<Method>, times: usize, kind: FaultKind) {
        if times == 0 {
            return;
        }
        self.state()
            .faults
            .entry(api)
            .or_default()
            .push_back(Fault {
                method,
                remaining: times,
                kind,
            });
    }

    /// Every call so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// The calls to one API, in arrival order.
    pub fn calls_to(&self, api: Api) -> Vec<Call> {
        self.state()
            .calls
            .iter()
            .filter(|c| c.api == api)
            .cloned()
            .collect()
    }

    /// Forgets the recorded calls (not the tickets).
    pub fn clear_calls(&self) {
        self.state().calls.clear();
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

impl Drop for FakeTrackers {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// Every request: find the API, apply a scripted fault, check credentials, serve, record.
async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let mut segments: Vec<String> = path.split('/').skip(1).map(percent_decode).collect();
    let api = match segments.first().map(String::as_str) {
        Some("jira") => Api::Jira,
        Some("servicenow") => Api::ServiceNow,
        Some("github") => Api::GitHub,
        _ => return (StatusCode::NOT_FOUND, "no such API").into_response(),
    };
    segments.remove(0);
    let query: Vec<(String, String)> = reqwest::Url::parse(&format!("http://fake{uri}"))
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default();
    let json_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);

    let fault = lock(&shared.state).take_fault(api, &method);
    let response = match fault {
        Some(FaultKind::Status {
            status,
            retry_after,
        }) => fault_response(api, status, retry_after),
        other => {
            if let Some(FaultKind::Delay(delay)) = other {
                tokio::time::sleep(delay).await;
            }
            if !authorized(api, &headers) {
                unauthorized(api)
            } else {
                let base = format!("http://{}/{}", shared.addr, api.prefix());
                let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
                let request = Request {
                    base: &base,
                    method: &method,
                    segments: &segments,
                    query: &query,
                    body: &json_body,
                };
                let mut state = lock(&shared.state);
                match api {
                    Api::Jira => jira(&mut state, &request),
                    Api::ServiceNow => servicenow(&mut state, &request),
                    Api::GitHub => github(&mut state, &request),
                }
            }
        }
    };

    let prefix_len = api.prefix().len() + 1;
    lock(&shared.state).calls.push(Call {
        api,
        method: method.to_string(),
        path: path[prefix_len..].to_string(),
        query,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: json_body,
        status: response.status().as_u16(),
    });
    response
}

/// One request, routed.
struct Request<'a> {
    base: &'a str,
    method: &'a Method,
    segments: &'a [&'a str],
    query: &'a [(String, String)],
    body: &'a Value,
}

impl Request<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn authorized(api: Api, headers: &HeaderMap) -> bool {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let basic = |user: &str, secret: &str| {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
        given == format!("Basic {encoded}")
    };
    match api {
        Api::Jira => basic(JIRA_EMAIL, JIRA_API_TOKEN),
        Api::ServiceNow => basic(SERVICENOW_USER, SERVICENOW_PASSWORD),
        Api::GitHub => {
            given == format!("Bearer {GITHUB_TOKEN}") || given == format!("token {GITHUB_TOKEN}")
        }
    }
}

fn unauthorized(api: Api) -> Response {
    match api {
        Api::Jira => jira_error(
            StatusCode::UNAUTHORIZED,
            "Client must be authenticated to access this resource.",
        ),
        Api::ServiceNow => servicenow_error(
            StatusCode::UNAUTHORIZED,
            "User Not Authenticated",
            "Required to provide Auth information",
        ),
        Api::GitHub => github_error(StatusCode::UNAUTHORIZED, "Bad credentials"),
    }
}

fn fault_response(api: Api, status: u16, retry_after: Option<Duration>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = match status {
        429 => "Rate limit exceeded.",
        _ => code.canonical_reason().unwrap_or("Scripted failure"),
    };
    let mut response = match api {
        Api::Jira => jira_error(code, message),
        Api::ServiceNow => servicenow_error(code, message, "Scripted by the test"),
        Api::GitHub => github_error(code, message),
    };
    if let Some(wait) = retry_after {
        let seconds = wait.as_secs_f64().ceil() as u64;
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert("retry-after", value);
        }
    }
    response
}

// ---- Jira ----

fn jira(state: &mut Trackers, request: &Request<'_>) -> Response {
    match (request.method.as_str(), request.segments) {
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

fn jira_issue_missing() -> Response {
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
fn check_adf(body: &Value) -> Result<(), String> {
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

fn jira_error(status: StatusCode, message: &str) -> Response {
    let body = json!({"errorMessages": [message], "errors": {}});
    (status, axum::Json(body)).into_response()
}

fn jira_field_error(field: &str, message: &str) -> Response {
    let body = json!({"errorMessages": [], "errors": {field: message}});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

// ---- ServiceNow ----

/// The journal fields of an incident.
const JOURNAL_FIELDS: [&str; 2] = ["work_notes", "comments"];

fn servicenow(state: &mut Trackers, request: &Request<'_>) -> Response {
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

fn servicenow_error(status: StatusCode, message: &str, detail: &str) -> Response {
    let body = json!({"error": {"message": message, "detail": detail}, "status": "failure"});
    (status, axum::Json(body)).into_response()
}

// ---- GitHub ----

fn github(state: &mut Trackers, request: &Request<'_>) -> Response {
    let (method, segments) = (request.method.as_str(), request.segments);
    let ["repos", owner, repo, "issues", number, tail] = segments else {
        return github_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let Ok(number) = number.parse::<u64>() else {
        return github_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let id = state.next_id();
    let key = (owner.to_string(), repo.to_string(), number);
    let Some(issue) = state.github.get_mut(&key) else {
        return github_error(StatusCode::NOT_FOUND, "Not Found");
    };
    match (method, *tail) {
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

fn github_error(status: StatusCode, message: &str) -> Response {
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

// ---- Small things ----

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(high), Some(low)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((high * 16 + low) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// UTC calendar fields of epoch milliseconds: (year, month, day, hour, minute, second, ms).
fn utc(epoch_ms: i64) -> (i64, i64, i64, i64, i64, i64, i64) {
    let seconds = epoch_ms.div_euclid(1000);
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
        epoch_ms.rem_euclid(1000),
    )
}

/// `2021-01-17T12:34:00.000+0000`.
fn jira_time(epoch_ms: i64) -> String {
    let (y, mo, d, h, mi, s, ms) = utc(epoch_ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}+0000")
}

/// `2015-11-01 22:37:27`.
fn servicenow_time(epoch_ms: i64) -> String {
    let (y, mo, d, h, mi, s, _) = utc(epoch_ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// `2011-04-14T16:00:49Z`.
fn github_time(epoch_ms: i64) -> String {
    let (y, mo, d, h, mi, s, _) = utc(epoch_ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_look_like_each_api() {
        let at = 1_700_000_000_123;
        assert_eq!(jira_time(at), "2023-11-14T22:13:20.123+0000");
        assert_eq!(servicenow_time(at), "2023-11-14 22:13:20");
        assert_eq!(github_time(at), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode("o%2Fr%23%41"), "o/r#A");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

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
