//! Agents' ticket actions on GitHub Issues (see `actions/`).
//!
//! - Comment: `POST /repos/{owner}/{repo}/issues/{number}/comments`, ending with the
//!   signature and the marker as an HTML comment; looked for first with the write-back's
//!   comment listing. Issue comments are public: there is no internal note on GitHub.
//! - Create: `POST /repos/{owner}/{repo}/issues` (title, body ending with the marker,
//!   labels, assignee); priority is not a GitHub field. Looked for first in the
//!   repository's newest issues (`GET .../issues?state=all&sort=created&direction=desc`,
//!   up to 300), not with the search API: search lags writes by up to a minute, and the
//!   try that needs the look is the retry of one that just crashed.
//! - Update: `PATCH .../issues/{number}` for the state (`open` or `closed`), labels added
//!   with `POST .../labels`, the assignee added with `POST .../assignees`.

use chatgptd_runtime::ProcessError;
use reqwest::Method;
use serde_json::{Value, json};

use super::{GitHub, GitHubIssue, MAX_LABEL_CHARS, PAGE_SIZE, parse_key, render};
use crate::actions::action::{Changes, Create};
use crate::actions::tracker::{ActionTracker, Applied, Created, labels_text};
use crate::note::{Marker, normalise_labels};
use crate::source::Source;
use crate::tracker::{Tracker, invalid_ticket, malformed};

/// Pages of newest issues read when looking for an earlier try's.
const CREATED_PAGES: usize = 3;

/// Why a priority is skipped.
const NO_PRIORITY: &str = "priority (GitHub issues have none)";

/// A repository: `owner/repo`.
struct Repository<'a> {
    owner: &'a str,
    repo: &'a str,
}

impl ActionTracker for GitHub {
    async fn ticket(&self, ticket: &str) -> Result<GitHubIssue, ProcessError> {
        let issue = parse_key(ticket).ok_or_else(|| {
            invalid_ticket(
                Source::GitHub,
                format!("{ticket:?} is not owner/repo#number"),
            )
        })?;
        let repository = format!("{}/{}", issue.owner, issue.repo);
        self.repositories.check(Source::GitHub, Some(&repository))?;
        Ok(issue)
    }

    async fn comment(
        &self,
        issue: &GitHubIssue,
        text: &str,
        signature: &str,
        marker: &Marker,
    ) -> Result<String, ProcessError> {
        let body = json!({"body": markdown(Some(text), signature, marker)});
        let url = self.issue_url(issue, "comments");
        let what = format!("commenting on {}", Self::ticket_ref(issue));
        let reply = self
            .http
            .send(Method::POST, url, Some(&body), &what)
            .await?;
        let id = reply.body.get("id").and_then(Value::as_u64).unwrap_or(0);
        Ok(format!("comment {id}"))
    }

    fn check_project(&self, create: &Create<'_>) -> Result<(), ProcessError> {
        let repository = repository(create)?;
        let name = format!("{}/{}", repository.owner, repository.repo);
        self.repositories.check(Source::GitHub, Some(&name))
    }

    async fn find_created(
        &self,
        create: &Create<'_>,
        marker: &Marker,
    ) -> Result<Option<String>, ProcessError> {
        let Repository { owner, repo } = repository(create)?;
        let wanted = render::marker_comment(marker.as_str());
        for page in 1..=CREATED_PAGES {
            let mut url = self.http.url(&["repos", owner, repo, "issues"]);
            url.query_pairs_mut()
                .append_pair("state", "all")
                .append_pair("sort", "created")
                .append_pair("direction", "desc")
                .append_pair("per_page", &PAGE_SIZE.to_string())
                .append_pair("page", &page.to_string());
            let what = format!("listing the newest issues of {owner}/{repo}");
            let reply = self.http.send(Method::GET, url, None, &what).await?;
            let issues = reply
                .body
                .as_array()
                .ok_or_else(|| malformed(Source::GitHub, &what))?;
            let found = issues.iter().find(|issue| {
                issue
                    .get("body")
                    .and_then(Value::as_str)
                    .is_some_and(|body| body.contains(&wanted))
            });
            if let Some(number) = found.and_then(|issue| issue.get("number")?.as_u64()) {
                return Ok(Some(format!("{owner}/{repo}#{number}")));
            }
            if issues.len() < PAGE_SIZE {
                break;
            }
        }
        Ok(None)
    }

    async fn create(
        &self,
        create: &Create<'_>,
        signature: &str,
        marker: &Marker,
    ) -> Result<Created, ProcessError> {
        let Repository { owner, repo } = repository(create)?;
        let mut body = json!({
            "title": create.title,
            "body": markdown(create.body, signature, marker),
        });
        let mut applied = Applied::default();
        if create.priority.is_some() {
            applied.skipped.push(NO_PRIORITY.to_string());
        }
        let labels = normalise_labels(create.labels, false, MAX_LABEL_CHARS);
        if !labels.is_empty() {
            body["labels"] = json!(labels);
            applied.done.push(labels_text(&labels));
        }
        if let Some(assignee) = create.assignee {
            body["assignees"] = json!([assignee]);
            applied.done.push(format!("assignee {assignee}"));
        }
        let url = self.http.url(&["repos", owner, repo, "issues"]);
        let what = format!("creating an issue in {owner}/{repo}");
        let reply = self
            .http
            .send(Method::POST, url, Some(&body), &what)
            .await?;
        let number = reply
            .body
            .get("number")
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed(Source::GitHub, &what))?;
        Ok(Created {
            name: format!("{owner}/{repo}#{number}"),
            fields: applied,
        })
    }

    async fn update(
        &self,
        issue: &GitHubIssue,
        changes: &Changes<'_>,
    ) -> Result<Applied, ProcessError> {
        let name = Self::ticket_ref(issue);
        let mut applied = Applied::default();
        if changes.priority.is_some() {
            applied.skipped.push(NO_PRIORITY.to_string());
        }
        if let Some(status) = changes.status {
            let state = status.to_ascii_lowercase();
            if state == "open" || state == "closed" {
                let body = json!({"state": state});
                let what = format!("setting the state of {name}");
                self.http
                    .send(Method::PATCH, self.issue_url(issue, ""), Some(&body), &what)
                    .await?;
                applied.done.push(format!("status {state}"));
            } else {
                applied.skipped.push(format!(
                    "status {status:?} (GitHub issues are open or closed)"
                ));
            }
        }
        let labels = normalise_labels(changes.labels, false, MAX_LABEL_CHARS);
        if !labels.is_empty() {
            let body = json!({"labels": labels});
            let what = format!("adding labels to {name}");
            self.http
                .send(
                    Method::POST,
                    self.issue_url(issue, "labels"),
                    Some(&body),
                    &what,
                )
                .await?;
            applied.done.push(labels_text(&labels));
        }
        if let Some(assignee) = changes.assignee {
            let body = json!({"assignees": [assignee]});
            let what = format!("assigning {name}");
            self.http
                .send(
                    Method::POST,
                    self.issue_url(issue, "assignees"),
                    Some(&body),
                    &what,
                )
                .await?;
            applied.done.push(format!("assignee {assignee}"));
        }
        Ok(applied)
    }
}

/// The repository a create names.
fn repository<'a>(create: &Create<'a>) -> Result<Repository<'a>, ProcessError> {
    let invalid = || {
        ProcessError::permanent(
            "invalid_action",
            format!(
                "the action is invalid: a GitHub issue needs a repository (owner/repo), not {:?}",
                create.project
            ),
        )
    };
    let (owner, repo) = create
        .project
        .and_then(|project| project.split_once('/'))
        .ok_or_else(invalid)?;
    // The same rules as an issue's key, by parsing one.
    parse_key(&format!("{owner}/{repo}#1")).ok_or_else(invalid)?;
    Ok(Repository { owner, repo })
}

/// A comment or an issue body: the text, the signature in small print, the marker hidden.
fn markdown(text: Option<&str>, signature: &str, marker: &Marker) -> String {
    let mut blocks: Vec<String> = text.map(String::from).into_iter().collect();
    blocks.push(format!("<sub>{signature}</sub>"));
    blocks.push(render::marker_comment(marker.as_str()));
    blocks.join("\n\n")
}
