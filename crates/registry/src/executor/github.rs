//! `executor: {kind: github, operation: ...}`: GitHub's REST API as actions.
//!
//! Pull (read a repository as context): `read_file` (a file, or a directory's listing, at a
//! ref), `read_issue` (an issue or a pull request with its comments), `search_code`. Push:
//! `open_pull_request` commits files to a branch named after the action's id and opens a pull
//! request from it, so a retry finds its branch and pull request instead of opening a
//! second; its catalogue entry sets `approval: true`.
//!
//! ```yaml
//! executor:
//!   kind: github
//!   operation: open_pull_request
//!   repositories: [acme/site]    # optional allow-list; empty allows what the token can reach
//! ```
//!
//! The token comes from `token_env` (`GITHUB_TOKEN`); the API root from `api_url_env`
//! (`GITHUB_API_URL`, `https://api.github.com` when unset, e.g. a GitHub Enterprise
//! server's `https://ghe.example.com/api/v3`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::SecretUse;
use crate::catalogue::ActionSpec;

/// A GitHub action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubCall {
    /// What the action does.
    pub operation: GithubOperation,

    /// The environment variable holding the API root; unset means `https://api.github.com`.
    #[serde(default = "default_api_url_env")]
    pub api_url_env: String,

    /// The environment variable holding the token.
    #[serde(default = "default_token_env")]
    pub token_env: String,

    /// The repositories (`owner/name`) the action may touch; empty allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<String>,

    /// The branch a pull request targets when the call names none.
    #[serde(default = "default_base_branch")]
    pub base_branch: String,

    /// How long one request may take.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

/// What a GitHub action does, and the arguments it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GithubOperation {
    /// `repository`, `path`, optional `ref`: a file's text, or a directory's entries.
    ReadFile,
    /// `repository`, `number`: an issue or pull request, with its comments.
    ReadIssue,
    /// `query`, optional `repository`: matching files.
    SearchCode,
    /// `repository`, `title`, `body`, `files` (`[{path, content}]`), optional `base`.
    OpenPullRequest,
}

impl GithubOperation {
    /// The arguments the action's schema must declare.
    pub fn arguments(self) -> &'static [&'static str] {
        match self {
            GithubOperation::ReadFile => &["repository", "path"],
            GithubOperation::ReadIssue => &["repository", "number"],
            GithubOperation::SearchCode => &["query"],
            GithubOperation::OpenPullRequest => &["repository", "title", "body", "files"],
        }
    }
}

/// The API root when `api_url_env` is unset.
pub const GITHUB_API: &str = "https://api.github.com";

fn default_api_url_env() -> String {
    "GITHUB_API_URL".to_string()
}

fn default_token_env() -> String {
    "GITHUB_TOKEN".to_string()
}

fn default_base_branch() -> String {
    "main".to_string()
}

fn default_timeout() -> Duration {
    Duration::from_secs(15)
}

impl GithubCall {
    /// Whether the action may touch `repository` (`owner/name`).
    pub fn allows(&self, repository: &str) -> bool {
        self.repositories.is_empty()
            || self
                .repositories
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(repository))
    }

    pub(super) fn secrets(&self) -> Vec<SecretUse> {
        vec![
            SecretUse {
                env: self.token_env.clone(),
                purpose: "the GitHub token",
                required: true,
            },
            SecretUse {
                env: self.api_url_env.clone(),
                purpose: "the GitHub API root",
                required: false,
            },
        ]
    }

    pub(super) fn problems(&self, action: &ActionSpec) -> Vec<String> {
        let mut problems = Vec::new();
        let declared = action
            .parameters
            .get("properties")
            .and_then(Value::as_object);
        for name in self.operation.arguments() {
            if !declared.is_some_and(|properties| properties.contains_key(*name)) {
                problems.push(format!(
                    "a GitHub `{}` action declares the argument `{name}`",
                    serde_json::to_value(self.operation)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                ));
            }
        }
        for repository in &self.repositories {
            let valid = repository.split_once('/').is_some_and(|(owner, name)| {
                !owner.is_empty() && !name.is_empty() && !name.contains('/')
            });
            if !valid {
                problems.push(format!("repository `{repository}` is not owner/name"));
            }
        }
        if self.token_env.trim().is_empty() || self.api_url_env.trim().is_empty() {
            problems.push("token_env and api_url_env name environment variables".into());
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(300) {
            problems.push("timeout must be between 1ms and 5m".into());
        }
        problems
    }
}
