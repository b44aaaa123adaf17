//! GitHub Issues: an issue comment (Markdown, see `render.rs`) and labels.
//!
//! - Look before posting: `GET /repos/{owner}/{repo}/issues/{number}/comments` with
//!   `per_page=100`, page after page (up to 1,000 comments), searching each body for the
//!   marker's HTML comment. No `since`: the marker is per ticket and prompt version, so the
//!   comment may come from an earlier record of the ticket, weeks before this one; limiting
//!   the listing to recent comments posted a second one whenever memory had forgotten the
//!   first.
//! - Post: `POST .../comments` with `{"body": "..."}` (201).
//! - Labels: `POST .../labels` with `{"labels": [...]}` (200; missing labels are created).
//!
//! The issue comes from the record's `ticket_key` (`owner/repo#number`), else from its
//! `url` (`https://github.com/owner/repo/issues/number`). An issue number is only unique
//! within its repository, so the marker and memory key name the issue as
//! `owner/repo#number`, not by `ticket_id`.
//!
//! Agents' ticket actions (comment, create, update) are in `actions.rs`.

mod actions;
mod render;

use std::time::Duration;

use chatgptd_runtime::ProcessError;
use chatgptd_types::records::EnrichedTicket;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{Value, json};

use crate::Error;
use crate::allow::AllowList;
use crate::http::{TrackerHttp, bearer};
use crate::note::{Marker, TriageNote, normalise_labels};
use crate::options::GitHubOptions;
use crate::secret::Secret;
use crate::source::Source;
use crate::tracker::{Tracker, invalid_ticket, malformed};

/// Comments per listing page (GitHub's maximum).
const PAGE_SIZE: usize = 100;
/// Pages read before giving up the search.
const MAX_PAGES: usize = 10;
/// GitHub's longest label name.
const MAX_LABEL_CHARS: usize = 50;
/// The REST API version this client is written against.
const API_VERSION: &str = "2022-11-28";

/// The GitHub API.
#[derive(Debug)]
pub(crate) struct GitHub {
    http: TrackerHttp,
    post_replies: bool,
    add_labels: bool,
    repositories: AllowList,
}

/// An issue (or pull request) of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GitHubIssue {
    owner: String,
    repo: String,
    number: u64,
}

impl GitHub {
    pub fn new(options: &GitHubOptions, token: &Secret, timeout: Duration) -> Result<Self, Error> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, bearer(token)?);
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            HeaderName::from_static("x-github-api-version"),
            HeaderValue::from_static(API_VERSION),
        );
        Ok(GitHub {
            http: TrackerHttp::new(
                Source::GitHub,
                &options.api_url,
                headers,
                timeout,
                options.requests_per_second,
            )?,
            post_replies: options.post_replies,
            add_labels: options.add_labels,
            repositories: AllowList::new("writeback.github.repositories", &options.repositories),
        })
    }

    /// `.../repos/{owner}/{repo}/issues/{number}`, then `/{tail}` unless it is empty.
    fn issue_url(&self, issue: &GitHubIssue, tail: &str) -> Url {
        let number = issue.number.to_string();
        let mut segments = vec!["repos", &issue.owner, &issue.repo, "issues", &number];
        if !tail.is_empty() {
            segments.push(tail);
        }
        self.http.url(&segments)
    }
}

impl Tracker for GitHub {
    type Target = GitHubIssue;
    const SOURCE: Source = Source::GitHub;

    fn target(&self, ticket: &EnrichedTicket) -> Result<GitHubIssue, ProcessError> {
        let issue = parse_key(&ticket.ticket_key)
            .or_else(|| ticket.url.as_deref().and_then(parse_url))
            .ok_or_else(|| {
                invalid_ticket(
                    Source::GitHub,
                    format!(
                        "ticket_key {:?} is not owner/repo#number and url {:?} is no issue URL",
                        ticket.ticket_key, ticket.url
                    ),
                )
            })?;
        let repository = format!("{}/{}", issue.owner, issue.repo);
        self.repositories.check(Source::GitHub, Some(&repository))?;
        Ok(issue)
    }

    fn ticket_ref(issue: &GitHubIssue) -> String {
        format!("{}/{}#{}", issue.owner, issue.repo, issue.number)
    }

    fn post_replies(&self) -> bool {
        self.post_replies
    }

    async fn find_marker(
        &self,
        issue: &GitHubIssue,
        marker: &Marker,
    ) -> Result<bool, ProcessError> {
        let wanted = render::marker_comment(marker.as_str());
        for page in 1..=MAX_PAGES {
            let mut url = self.issue_url(issue, "comments");
            url.query_pairs_mut()
                .append_pair("per_page", &PAGE_SIZE.to_string())
                .append_pair("page", &page.to_string());
            let what = format!("listing the comments of {}", Self::ticket_ref(issue));
            let reply = self.http.send(Method::GET, url, None, &what).await?;
            let comments = reply
                .body
                .as_array()
                .ok_or_else(|| malformed(Source::GitHub, &what))?;
            let found = comments.iter().any(|comment| {
                comment
                    .get("body")
                    .and_then(Value::as_str)
                    .is_some_and(|body| body.contains(&wanted))
            });
            if found {
                return Ok(true);
            }
            if comments.len() < PAGE_SIZE {
                return Ok(false);
            }
        }
        Ok(false)
    }

    async fn post(&self, issue: &GitHubIssue, note: &TriageNote<'_>) -> Result<(), ProcessError> {
        let body = json!({"body": render::comment(note)});
        let url = self.issue_url(issue, "comments");
        let what = format!("commenting on {}", Self::ticket_ref(issue));
        self.http
            .send(Method::POST, url, Some(&body), &what)
            .await?;
        Ok(())
    }

    async fn add_labels(&self, issue: &GitHubIssue, labels: &[String]) -> Result<(), ProcessError> {
        let labels = normalise_labels(labels, false, MAX_LABEL_CHARS);
        if !self.add_labels || labels.is_empty() {
            return Ok(());
        }
        let body = json!({"labels": labels});
        let url = self.issue_url(issue, "labels");
        let what = format!("adding labels to {}", Self::ticket_ref(issue));
        self.http
            .send(Method::POST, url, Some(&body), &what)
            .await?;
        Ok(())
    }
}

/// `owner/repo#number`.
fn parse_key(key: &str) -> Option<GitHubIssue> {
    let (path, number) = key.trim().rsplit_once('#')?;
    let (owner, repo) = path.split_once('/')?;
    issue(owner, repo, number)
}

/// `https://github.com/owner/repo/issues/N` (or `/pull/N`), or the API's
/// `.../repos/owner/repo/issues/N`.
fn parse_url(url: &str) -> Option<GitHubIssue> {
    let url = Url::parse(url).ok()?;
    let segments: Vec<&str> = url.path_segments()?.collect();
    segments.windows(4).find_map(|w| match w {
        [owner, repo, "issues" | "pull" | "pulls", number] => issue(owner, repo, number),
        _ => None,
    })
}

fn issue(owner: &str, repo: &str, number: &str) -> Option<GitHubIssue> {
    let name_ok = |name: &str, extra: &str| {
        !name.is_empty()
            && name != "."
            && name != ".."
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || extra.contains(c))
    };
    let number: u64 = number.parse().ok().filter(|n| *n > 0)?;
    (name_ok(owner, "") && name_ok(repo, "_.")).then(|| GitHubIssue {
        owner: owner.to_string(),
        repo: repo.to_string(),
        number,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_come_from_the_key_or_the_url() {
        let expected = Some(GitHubIssue {
            owner: "octo-org".into(),
            repo: "hello.world_2".into(),
            number: 42,
        });
        assert_eq!(parse_key("octo-org/hello.world_2#42"), expected);
        assert_eq!(
            parse_url("https://github.com/octo-org/hello.world_2/issues/42"),
            expected
        );
        assert_eq!(
            parse_url("https://api.github.com/repos/octo-org/hello.world_2/issues/42"),
            expected
        );
        assert_eq!(parse_key("42"), None);
        assert_eq!(parse_key("o/../x#1"), None);
        assert_eq!(parse_key("o/r#0"), None);
        assert_eq!(parse_key("o w/r#1"), None);
        assert_eq!(parse_url("https://github.com/o/r"), None);
    }
}
