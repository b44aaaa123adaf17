//! The fake GitHub REST API's repository half, for agents' GitHub actions: contents
//! (`GET`/`PUT /repos/{owner}/{repo}/contents/{path}`), git refs (`GET
//! .../git/ref/heads/{branch}`, `POST .../git/refs`), pull requests (`GET .../pulls` with
//! `head` and `state`, `POST`, `GET .../pulls/{number}`) and `GET /search/code`.
//!
//! A repository has branches, each a head commit sha and the files at it; writing a file
//! makes a new head. Shapes and statuses follow GitHub's docs: a file's content is base64
//! wrapped at 60 characters, a `PUT` over an existing file without its `sha` is a 422 and
//! with a stale one a 409, a second pull request for the same head and base is a 422.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use super::github::github_error;
use super::{FakeTrackers, Request, Trackers};

#[derive(Debug, Clone, Default)]
struct Branch {
    sha: String,
    files: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct Pull {
    number: u64,
    title: String,
    body: String,
    head: String,
    base: String,
}

#[derive(Debug, Default)]
pub(super) struct Repo {
    default_branch: String,
    branches: BTreeMap<String, Branch>,
    pulls: Vec<Pull>,
}

type Key = (String, String);

fn key(owner: &str, repo: &str) -> Key {
    (owner.to_string(), repo.to_string())
}

fn sha(state: &mut Trackers) -> String {
    format!("{:040x}", 0x00c0_ffee_0000_u64 + state.next_id())
}

// The repository half of `FakeTrackers`' test API.
impl FakeTrackers {
    /// Adds a repository with one branch, `default_branch`, holding no files.
    pub fn add_github_repo(&self, owner: &str, repo: &str, default_branch: &str) {
        let mut state = self.state();
        let head = sha(&mut state);
        let branch = Branch {
            sha: head,
            files: BTreeMap::new(),
        };
        state.repos.insert(
            key(owner, repo),
            Repo {
                default_branch: default_branch.to_string(),
                branches: BTreeMap::from([(default_branch.to_string(), branch)]),
                pulls: Vec::new(),
            },
        );
    }

    /// Writes a file on a branch (made from the default branch if new), as a push would.
    pub fn add_github_file(
        &self,
        owner: &str,
        repo: &str,
        branch: &str,
        path: &str,
        content: &str,
    ) {
        let mut state = self.state();
        let head = sha(&mut state);
        let repo = state
            .repos
            .get_mut(&key(owner, repo))
            .expect("no such repository");
        let from = repo.branches[&repo.default_branch].clone();
        let branch = repo.branches.entry(branch.to_string()).or_insert(from);
        branch.files.insert(path.to_string(), content.to_string());
        branch.sha = head;
    }

    /// A file's content on a branch.
    pub fn github_file(&self, owner: &str, repo: &str, branch: &str, path: &str) -> Option<String> {
        let state = self.state();
        let repo = state.repos.get(&key(owner, repo))?;
        repo.branches.get(branch)?.files.get(path).cloned()
    }

    /// A repository's branch names, sorted.
    pub fn github_branches(&self, owner: &str, repo: &str) -> Vec<String> {
        let state = self.state();
        let repo = state
            .repos
            .get(&key(owner, repo))
            .expect("no such repository");
        repo.branches.keys().cloned().collect()
    }

    /// A repository's pull requests, as `GET .../pulls?state=all` lists them.
    pub fn github_pulls(&self, owner: &str, repo: &str) -> Vec<Value> {
        let base = self.github_url();
        let state = self.state();
        let repo_state = state
            .repos
            .get(&key(owner, repo))
            .expect("no such repository");
        let pulls = repo_state.pulls.iter();
        pulls
            .map(|pull| pull_json(&base, owner, repo, pull))
            .collect()
    }
}

/// Routes the repository endpoints; `None` for a path that is not one of them.
pub(super) fn github_repos(state: &mut Trackers, request: &Request<'_>) -> Option<Response> {
    let method = request.method.as_str();
    Some(match request.segments {
        ["search", "code"] if method == "GET" => search_code(state, request),
        ["repos", owner, repo, "contents", path @ ..] => {
            let path = path.join("/");
            match method {
                "GET" => get_contents(state, request, owner, repo, &path),
                "PUT" => put_contents(state, request, owner, repo, &path),
                _ => github_error(StatusCode::NOT_FOUND, "Not Found"),
            }
        }
        ["repos", owner, repo, "git", "ref", "heads", branch @ ..] if method == "GET" => {
            get_ref(state, request, owner, repo, &branch.join("/"))
        }
        ["repos", owner, repo, "git", "refs"] if method == "POST" => {
            create_ref(state, request, owner, repo)
        }
        ["repos", owner, repo, "pulls"] => match method {
            "GET" => list_pulls(state, request, owner, repo),
            "POST" => create_pull(state, request, owner, repo),
            _ => github_error(StatusCode::NOT_FOUND, "Not Found"),
        },
        ["repos", owner, repo, "pulls", number] if method == "GET" => {
            let found = state.repos.get(&key(owner, repo)).and_then(|r| {
                let number: u64 = number.parse().ok()?;
                r.pulls.iter().find(|p| p.number == number).cloned()
            });
            match found {
                Some(pull) => ok(pull_json(request.base, owner, repo, &pull)),
                None => github_error(StatusCode::NOT_FOUND, "Not Found"),
            }
        }
        _ => return None,
    })
}

fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn not_found() -> Response {
    github_error(StatusCode::NOT_FOUND, "Not Found")
}

fn unprocessable(message: &str) -> Response {
    github_error(StatusCode::UNPROCESSABLE_ENTITY, message)
}

/// Base64 wrapped at 60 characters with a trailing newline, as the contents API sends it.
fn wrapped_base64(content: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(content);
    let mut out = String::new();
    for chunk in encoded.as_bytes().chunks(60) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push('\n');
    }
    out
}

fn blob_sha(content: &str) -> String {
    // Stable per content, as a git blob sha is.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in content.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
    }
    format!("{hash:040x}")
}

fn file_json(base: &str, owner: &str, repo: &str, path: &str, content: &str) -> Value {
    let name = path.rsplit('/').next().unwrap_or(path);
    json!({
        "type": "file",
        "encoding": "base64",
        "size": content.len(),
        "name": name,
        "path": path,
        "content": wrapped_base64(content),
        "sha": blob_sha(content),
        "url": format!("{base}/repos/{owner}/{repo}/contents/{path}"),
        "html_url": format!("https://github.com/{owner}/{repo}/blob/main/{path}"),
    })
}

fn get_contents(
    state: &mut Trackers,
    request: &Request<'_>,
    owner: &str,
    repo: &str,
    path: &str,
) -> Response {
    let Some(repo_state) = state.repos.get(&key(owner, repo)) else {
        return not_found();
    };
    let reference = request.param("ref").unwrap_or(&repo_state.default_branch);
    let Some(branch) = repo_state.branches.get(reference) else {
        return github_error(
            StatusCode::NOT_FOUND,
            &format!("No commit found for the ref {reference}"),
        );
    };
    if let Some(content) = branch.files.get(path) {
        return ok(file_json(request.base, owner, repo, path, content));
    }
    // A directory: the entries right below it.
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    let mut entries: BTreeMap<String, &str> = BTreeMap::new();
    for file in branch.files.keys() {
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        match rest.split_once('/') {
            Some((dir, _)) => entries.insert(format!("{prefix}{dir}"), "dir"),
            None => entries.insert(file.clone(), "file"),
        };
    }
    if entries.is_empty() {
        return not_found();
    }
    let listed: Vec<Value> = entries
        .into_iter()
        .map(|(entry, kind)| {
            json!({
                "type": kind,
                "name": entry.rsplit('/').next().unwrap_or(&entry),
                "path": entry,
                "url": format!("{}/repos/{owner}/{repo}/contents/{entry}", request.base),
            })
        })
        .collect();
    ok(Value::Array(listed))
}

fn put_contents(
    state: &mut Trackers,
    request: &Request<'_>,
    owner: &str,
    repo: &str,
    path: &str,
) -> Response {
    let body = request.body;
    let (Some(message), Some(encoded)) = (
        body.get("message").and_then(Value::as_str),
        body.get("content").and_then(Value::as_str),
    ) else {
        return unprocessable("Invalid request.\n\n\"message\" and \"content\" are required.");
    };
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        return unprocessable("content is not valid Base64");
    };
    let content = String::from_utf8_lossy(&bytes).into_owned();
    let head = sha(state);
    let base = request.base;
    let Some(repo_state) = state.repos.get_mut(&key(owner, repo)) else {
        return not_found();
    };
    let branch_name = body
        .get("branch")
        .and_then(Value::as_str)
        .unwrap_or(&repo_state.default_branch)
        .to_string();
    let Some(branch) = repo_state.branches.get_mut(&branch_name) else {
        return github_error(
            StatusCode::NOT_FOUND,
            &format!("Branch {branch_name} not found"),
        );
    };
    let given_sha = body.get("sha").and_then(Value::as_str);
    let existed = match (branch.files.get(path), given_sha) {
        (Some(_), None) => {
            return unprocessable("Invalid request.\n\n\"sha\" wasn't supplied.");
        }
        (Some(current), Some(given)) if blob_sha(current) != given => {
            return github_error(
                StatusCode::CONFLICT,
                &format!("{path} does not match {given}"),
            );
        }
        (current, _) => current.is_some(),
    };
    branch.files.insert(path.to_string(), content.clone());
    branch.sha = head.clone();
    let answer = json!({
        "content": file_json(base, owner, repo, path, &content),
        "commit": {"sha": head, "message": message},
    });
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    (status, axum::Json(answer)).into_response()
}

fn ref_json(base: &str, owner: &str, repo: &str, branch: &str, sha: &str) -> Value {
    json!({
        "ref": format!("refs/heads/{branch}"),
        "node_id": format!("REF_{branch}"),
        "url": format!("{base}/repos/{owner}/{repo}/git/refs/heads/{branch}"),
        "object": {
            "type": "commit",
            "sha": sha,
            "url": format!("{base}/repos/{owner}/{repo}/git/commits/{sha}"),
        },
    })
}

fn get_ref(
    state: &mut Trackers,
    request: &Request<'_>,
    owner: &str,
    repo: &str,
    branch: &str,
) -> Response {
    let found = state
        .repos
        .get(&key(owner, repo))
        .and_then(|r| r.branches.get(branch));
    match found {
        Some(head) => ok(ref_json(request.base, owner, repo, branch, &head.sha)),
        None => not_found(),
    }
}

fn create_ref(state: &mut Trackers, request: &Request<'_>, owner: &str, repo: &str) -> Response {
    let Some(repo_state) = state.repos.get_mut(&key(owner, repo)) else {
        return not_found();
    };
    let name = request
        .body
        .get("ref")
        .and_then(Value::as_str)
        .unwrap_or("");
    let sha = request
        .body
        .get("sha")
        .and_then(Value::as_str)
        .unwrap_or("");
    let Some(branch) = name.strip_prefix("refs/heads/").filter(|b| !b.is_empty()) else {
        return unprocessable(
            "Reference name must start with 'refs/' and have at least two slashes.",
        );
    };
    if repo_state.branches.contains_key(branch) {
        return unprocessable("Reference already exists");
    }
    let Some(from) = repo_state.branches.values().find(|b| b.sha == sha).cloned() else {
        return unprocessable("Object does not exist");
    };
    repo_state.branches.insert(branch.to_string(), from);
    let created = ref_json(request.base, owner, repo, branch, sha);
    (StatusCode::CREATED, axum::Json(created)).into_response()
}

fn pull_json(base: &str, owner: &str, repo: &str, pull: &Pull) -> Value {
    let number = pull.number;
    json!({
        "id": 3_000_000 + number,
        "number": number,
        "state": "open",
        "title": pull.title,
        "body": pull.body,
        "url": format!("{base}/repos/{owner}/{repo}/pulls/{number}"),
        "html_url": format!("https://github.com/{owner}/{repo}/pull/{number}"),
        "head": {"ref": pull.head, "label": format!("{owner}:{}", pull.head)},
        "base": {"ref": pull.base, "label": format!("{owner}:{}", pull.base)},
        "merged": false,
        "draft": false,
        "user": {"login": "chatgptd[bot]", "id": 41_898_282, "type": "Bot"},
    })
}

fn list_pulls(state: &mut Trackers, request: &Request<'_>, owner: &str, repo: &str) -> Response {
    let Some(repo_state) = state.repos.get(&key(owner, repo)) else {
        return not_found();
    };
    // `head` is `user:ref`; pulls here are all open.
    let head = request.param("head");
    let wanted = request.param("state").unwrap_or("open");
    let listed: Vec<Value> = repo_state
        .pulls
        .iter()
        .filter(|pull| head.is_none_or(|h| h == format!("{owner}:{}", pull.head)))
        .filter(|_| matches!(wanted, "open" | "all"))
        .map(|pull| pull_json(request.base, owner, repo, pull))
        .collect();
    ok(Value::Array(listed))
}

fn create_pull(state: &mut Trackers, request: &Request<'_>, owner: &str, repo: &str) -> Response {
    let issue_numbers: Vec<u64> = state
        .github
        .keys()
        .filter(|k| k.0 == owner && k.1 == repo)
        .map(|k| k.2)
        .collect();
    let Some(repo_state) = state.repos.get_mut(&key(owner, repo)) else {
        return not_found();
    };
    let field = |name: &str| request.body.get(name).and_then(Value::as_str).unwrap_or("");
    let (title, head, base) = (field("title"), field("head"), field("base"));
    let head = head.split_once(':').map_or(head, |(_, branch)| branch);
    if title.trim().is_empty() {
        return unprocessable("Validation Failed: title");
    }
    if !repo_state.branches.contains_key(head) || !repo_state.branches.contains_key(base) {
        return unprocessable("Validation Failed: head or base is not a branch");
    }
    if repo_state
        .pulls
        .iter()
        .any(|p| p.head == head && p.base == base)
    {
        return unprocessable(&format!(
            "A pull request already exists for {owner}:{head}."
        ));
    }
    // Pull requests and issues share a repository's numbers.
    let number = issue_numbers
        .into_iter()
        .chain(repo_state.pulls.iter().map(|p| p.number))
        .max()
        .unwrap_or(0)
        + 1;
    let pull = Pull {
        number,
        title: title.to_string(),
        body: field("body").to_string(),
        head: head.to_string(),
        base: base.to_string(),
    };
    let created = pull_json(request.base, owner, repo, &pull);
    repo_state.pulls.push(pull);
    (StatusCode::CREATED, axum::Json(created)).into_response()
}

/// `q`: words every match holds (in its path or content), and `repo:owner/name`; other
/// qualifiers (`language:rust`) are ignored.
fn search_code(state: &mut Trackers, request: &Request<'_>) -> Response {
    let query = request.param("q").unwrap_or("");
    let mut only_repo = None;
    let mut words = Vec::new();
    for term in query.split_whitespace() {
        match term.split_once(':') {
            Some(("repo", name)) => only_repo = Some(name.to_string()),
            Some(_) => {}
            None => words.push(term.to_lowercase()),
        }
    }
    if words.is_empty() {
        return unprocessable("Validation Failed: the search is empty");
    }
    let mut items = Vec::new();
    for ((owner, repo), repo_state) in &state.repos {
        let full_name = format!("{owner}/{repo}");
        if only_repo.as_ref().is_some_and(|only| *only != full_name) {
            continue;
        }
        let Some(branch) = repo_state.branches.get(&repo_state.default_branch) else {
            continue;
        };
        for (path, content) in &branch.files {
            let haystack = format!("{path}\n{content}").to_lowercase();
            if words.iter().all(|word| haystack.contains(word)) {
                items.push(json!({
                    "name": path.rsplit('/').next().unwrap_or(path),
                    "path": path,
                    "sha": blob_sha(content),
                    "url": format!("{}/repos/{full_name}/contents/{path}", request.base),
                    "html_url": format!("https://github.com/{full_name}/blob/{}/{path}", repo_state.default_branch),
                    "repository": {"full_name": full_name, "name": repo, "owner": {"login": owner}},
                    "score": 1.0,
                }));
            }
        }
    }
    ok(json!({"total_count": items.len(), "incomplete_results": false, "items": items}))
}
