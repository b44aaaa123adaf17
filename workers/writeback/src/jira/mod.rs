//! Jira Cloud, REST v3: the comment (an ADF document, see `adf.rs`) and labels.
//!
//! - Look before posting: `GET /rest/api/3/issue/{id}/comment?orderBy=-created` pages
//!   through the comments newest first (an earlier try's comment is among the newest) and
//!   searches the text of each for the bracketed marker.
//! - Post: `POST /rest/api/3/issue/{id}/comment` with `{"body": <ADF>}` (201). When the
//!   reply is a draft, the comment also carries the `sd.public.comment` property with
//!   `internal: true`: Jira Service Management shows REST comments to the customer unless
//!   they are flagged internal; other projects store the property and ignore it.
//! - Labels: `PUT /rest/api/3/issue/{id}` with `{"update": {"labels": [{"add": ...}]}}` (204).
//!
//! The issue is addressed by the record's `ticket_id` (Jira's numeric id, which survives
//! moving the issue to another project), or by its key when the id is empty.
//!
//! Agents' ticket actions (comment, create, update) are in `actions.rs`.

mod actions;
mod adf;

use std::time::Duration;

use chatgptd_runtime::ProcessError;
use chatgptd_types::records::EnrichedTicket;
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::Error;
use crate::allow::AllowList;
use crate::http::{TrackerHttp, basic_auth};
use crate::note::{Marker, ReplyMode, TriageNote, normalise_labels};
use crate::options::JiraOptions;
use crate::secret::Secret;
use crate::source::Source;
use crate::tracker::{Tracker, invalid_ticket, malformed};

/// Comments per listing page (Jira's maximum is 100 here).
const PAGE_SIZE: usize = 100;
/// Pages read before giving up the search: the 1000 newest comments.
const MAX_PAGES: usize = 10;
/// Jira's longest label.
const MAX_LABEL_CHARS: usize = 255;

/// A Jira site.
#[derive(Debug)]
pub(crate) struct Jira {
    http: TrackerHttp,
    post_replies: bool,
    add_labels: bool,
    projects: AllowList,
    /// The issue type of issues agents create.
    issue_type: String,
}

/// A Jira issue: its id (or key).
#[derive(Debug)]
pub(crate) struct JiraIssue(String);

impl Jira {
    pub fn new(options: &JiraOptions, token: &Secret, timeout: Duration) -> Result<Self, Error> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, basic_auth(&options.email, token)?);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        Ok(Jira {
            http: TrackerHttp::new(
                Source::Jira,
                &options.base_url,
                headers,
                timeout,
                options.requests_per_second,
            )?,
            post_replies: options.post_replies,
            add_labels: options.add_labels,
            projects: AllowList::new("writeback.jira.projects", &options.projects),
            issue_type: options.issue_type.clone(),
        })
    }
}

impl Tracker for Jira {
    type Target = JiraIssue;
    const SOURCE: Source = Source::Jira;

    fn target(&self, ticket: &EnrichedTicket) -> Result<JiraIssue, ProcessError> {
        let id = [&ticket.ticket_id, &ticket.ticket_key]
            .into_iter()
            .map(|id| id.trim())
            .find(|id| !id.is_empty())
            .ok_or_else(|| invalid_ticket(Source::Jira, "no ticket_id or ticket_key"))?;
        let valid = id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(invalid_ticket(Source::Jira, format!("issue {id:?}")));
        }
        // The project is in the key (`PROJ-12`); a record with only a numeric id has none.
        let project = ticket
            .ticket_key
            .trim()
            .rsplit_once('-')
            .map(|(project, _)| project);
        self.projects.check(Source::Jira, project)?;
        Ok(JiraIssue(id.to_string()))
    }

    fn ticket_ref(target: &JiraIssue) -> String {
        target.0.clone()
    }

    fn post_replies(&self) -> bool {
        self.post_replies
    }

    async fn find_marker(&self, issue: &JiraIssue, marker: &Marker) -> Result<bool, ProcessError> {
        let wanted = marker.bracketed();
        let mut start_at = 0;
        for _ in 0..MAX_PAGES {
            let mut url = self
                .http
                .url(&["rest", "api", "3", "issue", &issue.0, "comment"]);
            url.query_pairs_mut()
                .append_pair("orderBy", "-created")
                .append_pair("startAt", &start_at.to_string())
                .append_pair("maxResults", &PAGE_SIZE.to_string());
            let what = format!("listing the comments of issue {}", issue.0);
            let page = self.http.send(Method::GET, url, None, &what).await?.body;
            let comments = page
                .get("comments")
                .and_then(Value::as_array)
                .ok_or_else(|| malformed(Source::Jira, &what))?;
            let found = comments.iter().any(|comment| {
                comment
                    .get("body")
                    .is_some_and(|body| adf::plain_text(body).contains(&wanted))
            });
            if found {
                return Ok(true);
            }
            start_at += comments.len();
            let total = page.get("total").and_then(Value::as_u64).unwrap_or(0) as usize;
            if comments.is_empty() || start_at >= total {
                return Ok(false);
            }
        }
        Ok(false)
    }

    async fn post(&self, issue: &JiraIssue, note: &TriageNote<'_>) -> Result<(), ProcessError> {
        let mut body = json!({"body": adf::document(note)});
        if note.reply == ReplyMode::Draft {
            body["properties"] = json!([{"key": "sd.public.comment", "value": {"internal": true}}]);
        }
        let url = self
            .http
            .url(&["rest", "api", "3", "issue", &issue.0, "comment"]);
        let what = format!("posting a comment on issue {}", issue.0);
        self.http
            .send(Method::POST, url, Some(&body), &what)
            .await?;
        Ok(())
    }

    async fn add_labels(&self, issue: &JiraIssue, labels: &[String]) -> Result<(), ProcessError> {
        let labels = normalise_labels(labels, true, MAX_LABEL_CHARS);
        if !self.add_labels || labels.is_empty() {
            return Ok(());
        }
        let adds: Vec<Value> = labels.iter().map(|label| json!({"add": label})).collect();
        let body = json!({"update": {"labels": adds}});
        let url = self.http.url(&["rest", "api", "3", "issue", &issue.0]);
        let what = format!("adding labels to issue {}", issue.0);
        self.http.send(Method::PUT, url, Some(&body), &what).await?;
        Ok(())
    }
}
