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
//!   `add`/`remove`/`set`, and `fields` summary, description, priority, assignee; 204,
//!   refusing labels with spaces). For agents' actions (`jira_issues.rs`): `POST
//!   /rest/api/3/issue` (create, 201), `GET /rest/api/3/issue/{idOrKey}`, `GET`/`POST
//!   .../transitions`, and `GET /rest/api/3/search/jql` for the JQL a client sends.
//! - ServiceNow: `GET`/`PATCH /api/now/table/incident/{sys_id}`. `work_notes` and `comments`
//!   are journal fields: a PATCH appends an entry, and a GET returns them as `""` unless
//!   `sysparm_display_value=true` (or `all`), when they read as every entry newest first, as
//!   the real Table API does. `sysparm_fields` selects fields. `GET
//!   /api/now/table/incident?sysparm_query=...` (`field=value`, `fieldLIKEvalue`, `^`) and
//!   `POST` (create, 201, with a new `sys_id` and number); `priority` follows `impact` and
//!   `urgency`.
//! - GitHub: `GET`/`POST /repos/{owner}/{repo}/issues/{number}/comments` (list with `since`,
//!   `per_page`, `page`; create, 201) and `POST .../labels` (200, every label of the issue);
//!   `GET`/`POST /repos/{owner}/{repo}/issues` (list by `state`, newest first unless
//!   `direction=asc`; create, 201), `GET`/`PATCH .../issues/{number}` and `POST
//!   .../assignees`. For agents' GitHub actions (`github_repos.rs`): contents, git refs,
//!   pull requests (listed by `head`) and code search, over repositories a test adds
//!   ([`FakeTrackers::add_github_repo`]); [`FakeTrackers::rate_limit_github`] answers as
//!   GitHub's primary rate limit does (403, `x-ratelimit-remaining: 0`,
//!   `x-ratelimit-reset`).
//!
//! Tickets exist only once a test adds them ([`FakeTrackers::add_jira_issue`], ...) or a
//! client creates them; others get each API's 404. A Jira project or GitHub repository
//! exists once one of its issues does. Credentials are checked (401 with each API's body when wrong): the
//! constants re-exported here. Every call is recorded (method, path below the prefix,
//! decoded query, headers, JSON body, status) for exact assertions, and state (comments,
//! journal, labels) is kept so that listing after posting shows what was posted. Failures
//! are scriptable per API: [`FakeTrackers::fail_next`] answers the next calls with a status
//! (and a `Retry-After`), [`FakeTrackers::delay_next`] holds them before answering, and
//! [`FakeTrackers::lose_next_answer`] serves a call but answers it with an error, as a
//! connection lost after the effect looks to a client.
//!
//! Timestamps use the APIs' formats; GitHub's `since` compares them as text, which orders
//! correctly because they are all `YYYY-MM-DDTHH:MM:SSZ`.
//!
//! This module is what every API shares: the server, routing by prefix, scripted faults,
//! credentials and the call log. Each API's routes, handlers, ticket state and
//! `FakeTrackers` helpers live in its own file, so a change to one API touches one file.

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
use serde_json::Value;

mod github;
mod github_repos;
mod jira;
mod jira_issues;
mod servicenow;

// Re-exported so callers keep `fake_trackers::JIRA_EMAIL` and the like.
pub use github::GITHUB_TOKEN;
pub use jira::{JIRA_API_TOKEN, JIRA_EMAIL};
pub use servicenow::{SERVICENOW_PASSWORD, SERVICENOW_USER};

use github::{GitHubIssue, github, github_error};
use github_repos::{Repo, github_repos};
use jira::{JiraIssue, jira, jira_error};
use servicenow::{Incident, servicenow, servicenow_error};

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

    /// The query as `(name, value)` pairs, in order, for exact assertions.
    pub fn query_pairs(&self) -> Vec<(&str, &str)> {
        let pairs = self.query.iter();
        pairs.map(|(n, v)| (n.as_str(), v.as_str())).collect()
    }

    /// `"METHOD /path"`, for compact assertions on call sequences.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The `METHOD /path` line of each call, for assertions on a sequence.
pub fn lines(calls: &[Call]) -> Vec<String> {
    calls.iter().map(Call::line).collect()
}

/// What a scripted call gets.
#[derive(Debug, Clone)]
enum FaultKind {
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    Delay(Duration),
    /// GitHub's primary rate limit, resetting this long from now.
    RateLimited(Duration),
    /// Served, then answered with this status instead.
    AfterServing(u16),
}

#[derive(Debug, Clone)]
struct Fault {
    method: Option<Method>,
    /// Only calls whose path (below the API's prefix) ends so.
    path_suffix: Option<String>,
    remaining: usize,
    kind: FaultKind,
}

#[derive(Debug, Default)]
struct Trackers {
    calls: Vec<Call>,
    faults: HashMap<Api, VecDeque<Fault>>,
    jira: Vec<JiraIssue>,
    servicenow: HashMap<String, Incident>,
    github: HashMap<(String, String, u64), GitHubIssue>,
    repos: HashMap<(String, String), Repo>,
    next_id: u64,
}

impl Trackers {
    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Takes the next scripted fault for this call, if any.
    fn take_fault(&mut self, api: Api, method: &Method, path: &str) -> Option<FaultKind> {
        let queue = self.faults.get_mut(&api)?;
        let index = queue.iter().position(|f| {
            f.method.as_ref().is_none_or(|m| m == method)
                && f.path_suffix
                    .as_ref()
                    .is_none_or(|s| path.ends_with(s.as_str()))
        })?;
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

    /// The write-back's tracker sections pointing at this fake, spelled as in the
    /// configuration file (`jira`, `servicenow`, `github`): every tracker enabled, as the
    /// user the fake accepts, without a client-side rate limit, allowing `projects` and
    /// `repositories`. Deserialize it into `WritebackOptions` (whose unknown-field check
    /// catches a renamed setting) and set the rest there.
    pub fn writeback_sections(&self, projects: &[&str], repositories: &[&str]) -> Value {
        serde_json::json!({
            "jira": {
                "enabled": true,
                "base_url": self.jira_url(),
                "email": JIRA_EMAIL,
                "projects": projects,
                "requests_per_second": 0,
            },
            "servicenow": {
                "enabled": true,
                "instance_url": self.servicenow_url(),
                "username": SERVICENOW_USER,
                "requests_per_second": 0,
            },
            "github": {
                "enabled": true,
                "api_url": self.github_url(),
                "repositories": repositories,
                "requests_per_second": 0,
            },
        })
    }

    fn state(&self) -> MutexGuard<'_, Trackers> {
        lock(&self.shared.state)
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

    /// Answers the next `times` GitHub calls as GitHub's primary rate limit does: 403,
    /// `x-ratelimit-remaining: 0` and `x-ratelimit-reset` (epoch seconds) `reset_in` from now.
    pub fn rate_limit_github(&self, times: usize, reset_in: Duration) {
        self.script(Api::GitHub, None, times, FaultKind::RateLimited(reset_in));
    }

    /// Serves the next call to `api` with `method` whose path ends with `path_suffix`, then
    /// answers it with `status`: the effect happened, the client thinks it failed.
    pub fn lose_next_answer(&self, api: Api, method: &str, path_suffix: &str, status: u16) {
        let method = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        self.state()
            .faults
            .entry(api)
            .or_default()
            .push_back(Fault {
                method: Some(method),
                path_suffix: Some(path_suffix.to_string()),
                remaining: 1,
                kind: FaultKind::AfterServing(status),
            });
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
                path_suffix: None,
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

    let prefix_len = api.prefix().len() + 1;
    let fault = lock(&shared.state).take_fault(api, &method, &path[prefix_len..]);
    let mut response = match fault {
        Some(FaultKind::Status {
            status,
            retry_after,
        }) => fault_response(api, status, retry_after),
        Some(FaultKind::RateLimited(reset_in)) => rate_limited(reset_in),
        ref other => {
            if let Some(FaultKind::Delay(delay)) = other {
                tokio::time::sleep(*delay).await;
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
                    Api::GitHub => match github_repos(&mut state, &request) {
                        Some(response) => response,
                        None => github(&mut state, &request),
                    },
                }
            }
        }
    };
    if let Some(FaultKind::AfterServing(status)) = fault {
        response = fault_response(api, status, None);
    }
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

/// GitHub's primary rate limit, as its docs show it.
fn rate_limited(reset_in: Duration) -> Response {
    let reset = (now_ms() / 1000) as u64 + reset_in.as_secs_f64().ceil() as u64;
    let mut response = github_error(
        StatusCode::FORBIDDEN,
        "API rate limit exceeded for user ID 41898282.",
    );
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", "5000".to_string()),
        ("x-ratelimit-remaining", "0".to_string()),
        ("x-ratelimit-used", "5000".to_string()),
        ("x-ratelimit-resource", "core".to_string()),
        ("x-ratelimit-reset", reset.to_string()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
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

#[cfg(test)]
mod tests {
    use super::github::github_time;
    use super::jira::jira_time;
    use super::servicenow::servicenow_time;
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
}
