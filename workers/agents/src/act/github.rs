//! GitHub actions (`executor: {kind: github}`): reading a repository as context, and
//! proposing a change as a pull request, through GitHub's REST API.
//!
//! Opening a pull request is a sequence of calls any of which may be the last before a
//! crash, so every step looks before it writes: the branch is named after the action's id
//! (`chatgptd-<action id>`) and created only if it does not exist, a file is written only
//! if the branch does not already hold that content, and the pull request is looked up by
//! its head before one is opened. A retry or a redelivery finds what the first try made.
//!
//! GitHub's limits make the action wait, not fail: a 429, or a 403 (or 503) with
//! `Retry-After` or `x-ratelimit-remaining: 0` is unavailable until `Retry-After` or
//! `x-ratelimit-reset`. A 401 waits too (the token is wrong for every call, not this one);
//! a 5xx is retried. Other answers (404, 422, a 403 without a limit) fail the call, and the
//! model is told why.

use std::time::{Duration, SystemTime};

use base64::Engine;
use chatgptd_actions::{ActionId, Outcome};
use chatgptd_registry::executor::{GITHUB_API, GithubCall, GithubOperation};
use chatgptd_runtime::ProcessError;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{Value, json};

use super::execute::Started;
use super::http::{excerpt, not_configured};
use crate::telemetry::PluginRequest;
use crate::worker::AgentWorker;

/// The most directory entries, comments or search results given to the model.
const MAX_LISTED: usize = 50;

/// One GitHub API root, with its token.
struct GitHub<'a> {
    client: &'a reqwest::Client,
    base: Url,
    token: HeaderValue,
    timeout: Duration,
    action: &'a str,
}

/// An answer the caller decides about: 2xx, or a 4xx that is the resource's.
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// GitHub's `message` for an error answer.
    fn message(&self) -> String {
        let message = self.body.get("message").and_then(Value::as_str);
        format!("HTTP {}: {}", self.status, message.unwrap_or("no message"))
    }
}

impl GitHub<'_> {
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// One request; a rate limit, an outage or a bad token is the record's error.
    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Answer, ProcessError> {
        let action = self.action;
        let mut request = self
            .client
            .request(method, self.url(segments, query))
            .timeout(self.timeout)
            .header(AUTHORIZATION, self.token.clone())
            .header(ACCEPT, "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28");
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|err| {
            let status = PluginRequest::failure_of(&err);
            PluginRequest {
                kind: "github",
                action,
                status,
            }
            .emit();
            ProcessError::unavailable(
                "github_unavailable",
                format!("`{action}`: GitHub did not answer: {}", err.without_url()),
            )
        })?;
        let status = response.status().as_u16();
        PluginRequest {
            kind: "github",
            action,
            status: PluginRequest::status_of(status),
        }
        .emit();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|err| {
            ProcessError::retryable(
                "github_unavailable",
                format!("`{action}`: reading GitHub's answer: {}", err.without_url()),
            )
        })?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let message = || {
            format!(
                "`{action}`: GitHub answered HTTP {status}: {}",
                excerpt(&String::from_utf8_lossy(&bytes))
            )
        };
        if let Some(wait) = rate_limited(status, &headers, SystemTime::now()) {
            let error = ProcessError::unavailable("github_rate_limited", message());
            return Err(match wait {
                Some(wait) => error.with_retry_after(wait),
                None => error,
            });
        }
        match status {
            401 => Err(ProcessError::unavailable("github_auth", message())),
            408 | 500..=599 => Err(ProcessError::retryable("github_unavailable", message())),
            _ => Ok(Answer { status, body }),
        }
    }
}

/// Whether an answer is one of GitHub's rate limits, and how long it asks to wait.
fn rate_limited(status: u16, headers: &HeaderMap, now: SystemTime) -> Option<Option<Duration>> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let retry_after =
        header("retry-after").and_then(|v| chatgptd_types::backoff::parse_retry_after(v, now));
    let spent = header("x-ratelimit-remaining").map(str::trim) == Some("0");
    let limited =
        status == 429 || (matches!(status, 403 | 503) && (retry_after.is_some() || spent));
    if !limited {
        return None;
    }
    let reset = || chatgptd_types::backoff::parse_epoch_reset(header("x-ratelimit-reset")?, now);
    Some(retry_after.or_else(reset))
}

fn text<'a>(arguments: &'a Value, name: &str) -> &'a str {
    arguments.get(name).and_then(Value::as_str).unwrap_or("")
}

fn failed(error: impl Into<String>) -> Result<Started, ProcessError> {
    Ok(Started::Now(Outcome::Failed {
        error: error.into(),
    }))
}

fn done(result: String) -> Result<Started, ProcessError> {
    Ok(Started::Now(Outcome::done(result)))
}

impl AgentWorker {
    /// Executes a GitHub action.
    pub(super) async fn execute_github(
        &self,
        id: &ActionId,
        action: &str,
        call: &GithubCall,
        arguments: &Value,
    ) -> Result<Started, ProcessError> {
        let outbound = &self.act.outbound;
        let Some(token) = outbound.secret(&call.token_env) else {
            return Ok(not_configured(action, &call.token_env));
        };
        let Ok(mut token) = HeaderValue::from_str(&format!("Bearer {token}")) else {
            return Ok(not_configured(action, &call.token_env));
        };
        token.set_sensitive(true);
        let root = outbound
            .secret(&call.api_url_env)
            .unwrap_or_else(|| GITHUB_API.to_string());
        let Some(base) = Url::parse(&root).ok().filter(|url| !url.cannot_be_a_base()) else {
            return Ok(Started::Now(Outcome::refused(format!(
                "`{action}` has no executor in this deployment: {} is not a URL; nothing was done",
                call.api_url_env
            ))));
        };
        let github = GitHub {
            client: &outbound.client,
            base,
            token,
            timeout: call.timeout,
            action,
        };
        let repository = text(arguments, "repository");
        let (owner, repo) = match repository.split_once('/') {
            Some((owner, repo)) if !owner.is_empty() && !repo.is_empty() => (owner, repo),
            _ if call.operation == GithubOperation::SearchCode => ("", ""),
            _ => return failed(format!("`{repository}` is not a repository as owner/name")),
        };
        if !repository.is_empty() && !call.allows(repository) {
            return Ok(Started::Now(Outcome::refused(format!(
                "`{action}` may not touch {repository}; it may: {}",
                call.repositories.join(", ")
            ))));
        }
        match call.operation {
            GithubOperation::ReadFile => read_file(&github, owner, repo, arguments).await,
            GithubOperation::ReadIssue => read_issue(&github, owner, repo, arguments).await,
            GithubOperation::SearchCode => search_code(&github, repository, arguments).await,
            GithubOperation::OpenPullRequest => {
                open_pull_request(&github, id, call, owner, repo, arguments).await
            }
        }
    }
}

/// The path's segments, without empty ones (a leading `/`, `a//b`).
fn path_segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

async fn read_file(
    github: &GitHub<'_>,
    owner: &str,
    repo: &str,
    arguments: &Value,
) -> Result<Started, ProcessError> {
    let path = text(arguments, "path");
    let reference = text(arguments, "ref");
    let mut segments = vec!["repos", owner, repo, "contents"];
    segments.extend(path_segments(path));
    let query: Vec<(&str, &str)> = if reference.is_empty() {
        Vec::new()
    } else {
        vec![("ref", reference)]
    };
    let answer = github.send(Method::GET, &segments, &query, None).await?;
    let at = if reference.is_empty() {
        "the default branch".to_string()
    } else {
        format!("`{reference}`")
    };
    if !answer.ok() {
        return failed(format!(
            "reading `{path}` at {at} of {owner}/{repo}: {}",
            answer.message()
        ));
    }
    if let Some(entries) = answer.body.as_array() {
        let mut lines = vec![format!(
            "{owner}/{repo}:{} at {at}, {} entries:",
            if path.is_empty() { "/" } else { path },
            entries.len()
        )];
        for entry in entries.iter().take(MAX_LISTED) {
            lines.push(format!(
                "- {} {}",
                entry["type"].as_str().unwrap_or("?"),
                entry["path"].as_str().unwrap_or("?")
            ));
        }
        return done(lines.join("\n"));
    }
    let encoded = answer.body["content"].as_str().unwrap_or("");
    let cleaned: String = encoded.split_whitespace().collect();
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(cleaned) else {
        return failed(format!(
            "`{path}` is not a file with content GitHub returns"
        ));
    };
    let content = String::from_utf8_lossy(&bytes);
    done(format!("{owner}/{repo}:{path} at {at}:\n{content}"))
}

async fn read_issue(
    github: &GitHub<'_>,
    owner: &str,
    repo: &str,
    arguments: &Value,
) -> Result<Started, ProcessError> {
    let number = arguments
        .get("number")
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .to_string();
    let issue_path = ["repos", owner, repo, "issues", number.as_str()];
    let issue = github.send(Method::GET, &issue_path, &[], None).await?;
    if !issue.ok() {
        return failed(format!(
            "reading #{number} of {owner}/{repo}: {}",
            issue.message()
        ));
    }
    let issue = issue.body;
    let is_pull = issue.get("pull_request").is_some_and(|p| !p.is_null());
    let mut lines = vec![format!(
        "{} #{number} of {owner}/{repo} [{}] {} (by {})",
        if is_pull { "pull request" } else { "issue" },
        issue["state"].as_str().unwrap_or("?"),
        issue["title"].as_str().unwrap_or(""),
        issue["user"]["login"].as_str().unwrap_or("?"),
    )];
    if is_pull {
        let pull_path = ["repos", owner, repo, "pulls", number.as_str()];
        let pull = github.send(Method::GET, &pull_path, &[], None).await?;
        if pull.ok() {
            lines.push(format!(
                "from {} into {}, merged: {}",
                pull.body["head"]["ref"].as_str().unwrap_or("?"),
                pull.body["base"]["ref"].as_str().unwrap_or("?"),
                pull.body["merged"].as_bool().unwrap_or(false)
            ));
        }
    }
    lines.push(String::new());
    lines.push(issue["body"].as_str().unwrap_or("").to_string());
    let comments_path = ["repos", owner, repo, "issues", number.as_str(), "comments"];
    let comments = github
        .send(Method::GET, &comments_path, &[("per_page", "100")], None)
        .await?;
    let comments = comments.body.as_array().cloned().unwrap_or_default();
    lines.push(String::new());
    lines.push(format!("{} comments:", comments.len()));
    for comment in comments.iter().take(MAX_LISTED) {
        lines.push(format!(
            "- {} at {}: {}",
            comment["user"]["login"].as_str().unwrap_or("?"),
            comment["created_at"].as_str().unwrap_or("?"),
            comment["body"].as_str().unwrap_or("")
        ));
    }
    done(lines.join("\n"))
}

async fn search_code(
    github: &GitHub<'_>,
    repository: &str,
    arguments: &Value,
) -> Result<Started, ProcessError> {
    let mut query = text(arguments, "query").to_string();
    if !repository.is_empty() {
        query.push_str(&format!(" repo:{repository}"));
    }
    let answer = github
        .send(
            Method::GET,
            &["search", "code"],
            &[("q", query.as_str()), ("per_page", "20")],
            None,
        )
        .await?;
    if !answer.ok() {
        return failed(format!("searching `{query}`: {}", answer.message()));
    }
    let items = answer.body["items"].as_array().cloned().unwrap_or_default();
    let mut lines = vec![format!(
        "{} files match `{query}`:",
        answer.body["total_count"]
            .as_u64()
            .unwrap_or(items.len() as u64)
    )];
    for item in items.iter().take(MAX_LISTED) {
        lines.push(format!(
            "- {}:{}",
            item["repository"]["full_name"].as_str().unwrap_or("?"),
            item["path"].as_str().unwrap_or("?")
        ));
    }
    done(lines.join("\n"))
}

/// The branch a pull request of action `id` comes from: the same on every try.
fn branch_of(id: &ActionId) -> String {
    format!("chatgptd-{id}")
}

async fn open_pull_request(
    github: &GitHub<'_>,
    id: &ActionId,
    call: &GithubCall,
    owner: &str,
    repo: &str,
    arguments: &Value,
) -> Result<Started, ProcessError> {
    let branch = branch_of(id);
    let base = match text(arguments, "base") {
        "" => call.base_branch.as_str(),
        named => named,
    };
    let title = text(arguments, "title");

    // 1. The branch, from the base's head unless an earlier try made it.
    let ref_path = ["repos", owner, repo, "git", "ref", "heads", branch.as_str()];
    let existing = github.send(Method::GET, &ref_path, &[], None).await?;
    if existing.status == 404 {
        let base_path = ["repos", owner, repo, "git", "ref", "heads", base];
        let base_ref = github.send(Method::GET, &base_path, &[], None).await?;
        if !base_ref.ok() {
            return failed(format!(
                "no branch `{base}` in {owner}/{repo}: {}",
                base_ref.message()
            ));
        }
        let sha = base_ref.body["object"]["sha"].as_str().unwrap_or("");
        let create = json!({"ref": format!("refs/heads/{branch}"), "sha": sha});
        let created = github
            .send(
                Method::POST,
                &["repos", owner, repo, "git", "refs"],
                &[],
                Some(&create),
            )
            .await?;
        // 422 is "Reference already exists": a concurrent try made it.
        if !created.ok() && created.status != 422 {
            return failed(format!("creating branch `{branch}`: {}", created.message()));
        }
    } else if !existing.ok() {
        return failed(format!(
            "looking up branch `{branch}`: {}",
            existing.message()
        ));
    }

    // 2. The files, each written unless the branch already holds that content.
    let files = arguments["files"].as_array().cloned().unwrap_or_default();
    let mut written = 0;
    for file in &files {
        let path = file["path"].as_str().unwrap_or("");
        let content = file["content"].as_str().unwrap_or("");
        let mut segments = vec!["repos", owner, repo, "contents"];
        segments.extend(path_segments(path));
        let current = github
            .send(Method::GET, &segments, &[("ref", branch.as_str())], None)
            .await?;
        let mut put = json!({
            "message": format!("{title} ({path})"),
            "content": base64::engine::general_purpose::STANDARD.encode(content),
            "branch": branch,
        });
        if current.ok() {
            let held: String = current.body["content"]
                .as_str()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            let held = base64::engine::general_purpose::STANDARD
                .decode(held)
                .unwrap_or_default();
            if held == content.as_bytes() {
                continue;
            }
            put["sha"] = current.body["sha"].clone();
        } else if current.status != 404 {
            return failed(format!(
                "reading `{path}` on `{branch}`: {}",
                current.message()
            ));
        }
        let wrote = github.send(Method::PUT, &segments, &[], Some(&put)).await?;
        match wrote.status {
            200 | 201 => written += 1,
            // The file changed between reading and writing: read it again on the retry.
            409 => {
                return Err(ProcessError::retryable(
                    "github_conflict",
                    format!(
                        "`{}`: writing `{path}` conflicted; trying again",
                        github.action
                    ),
                ));
            }
            _ => return failed(format!("writing `{path}`: {}", wrote.message())),
        }
    }

    // 3. The pull request, found by its head before one is opened.
    let head = format!("{owner}:{branch}");
    let pulls_path = ["repos", owner, repo, "pulls"];
    let find = || async {
        let found = github
            .send(
                Method::GET,
                &pulls_path,
                &[("head", head.as_str()), ("state", "all")],
                None,
            )
            .await?;
        Ok::<_, ProcessError>(
            found
                .body
                .as_array()
                .and_then(|pulls| pulls.first().cloned()),
        )
    };
    let (pull, opened) = match find().await? {
        Some(pull) => (pull, false),
        None => {
            let request = json!({
                "title": title,
                "body": text(arguments, "body"),
                "head": branch,
                "base": base,
            });
            let created = github
                .send(Method::POST, &pulls_path, &[], Some(&request))
                .await?;
            if created.ok() {
                (created.body, true)
            } else if let Some(pull) = find().await? {
                // 422 "A pull request already exists": a concurrent try opened it.
                (pull, false)
            } else {
                return failed(format!("opening the pull request: {}", created.message()));
            }
        }
    };
    let number = pull["number"].as_u64().unwrap_or(0);
    let link = pull["html_url"].as_str().unwrap_or("");
    let verb = if opened {
        "opened"
    } else {
        "found (already open)"
    };
    done(format!(
        "{verb} pull request #{number} {link} in {owner}/{repo} from `{branch}` into `{base}`: {} file(s) written, {} already there",
        written,
        files.len() - written
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn githubs_limits_are_waits_with_their_reset() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let limited =
            |status, pairs: &[(&'static str, &str)]| rate_limited(status, &headers(pairs), now);
        assert_eq!(limited(429, &[]), Some(None));
        assert_eq!(
            limited(403, &[("retry-after", "30")]),
            Some(Some(Duration::from_secs(30)))
        );
        assert_eq!(
            limited(
                403,
                &[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1700000042")
                ]
            ),
            Some(Some(Duration::from_secs(42)))
        );
        assert_eq!(limited(403, &[]), None, "a plain 403 is about the resource");
        assert_eq!(limited(503, &[]), None, "a plain 503 is an outage, retried");
        assert_eq!(limited(404, &[("x-ratelimit-remaining", "0")]), None);
    }

    #[test]
    fn the_branch_derives_from_the_action() {
        let id = ActionId::new("m1", "shield-core", 0, 0);
        assert_eq!(branch_of(&id), branch_of(&id.clone()));
        assert!(branch_of(&id).starts_with("chatgptd-act-"));
    }
}
