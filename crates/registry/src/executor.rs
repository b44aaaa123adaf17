//! How a catalogued action is carried out when it is not one chatgptd does itself: the
//! `executor` of an action in `agents/actions.yaml`. Adding a capability is a declaration,
//! not a fork: the agent worker dispatches on the kind, and every call still goes through
//! the policy, approvals, ledger and audit of the action system first.
//!
//! - `http` ([`HttpCall`]): one declared HTTP request, for systems with no richer plugin.
//! - `github` ([`GithubCall`]): reading a repository as context, or proposing a change as a
//!   pull request, through GitHub's REST API.
//! - `mcp`: a tool of an MCP server declared in the catalogue's `mcp_servers`
//!   ([`McpServerSpec`]); the server's declaration carries its transport and secrets.
//!
//! Secrets (tokens, signing keys, base URLs) are named by the environment variable that
//! holds them, never written here; [`Executor::secrets`] lists them for `config check`.

mod github;
mod http;
mod mcp;

use serde::{Deserialize, Serialize};

use crate::catalogue::ActionSpec;

pub use github::{GITHUB_API, GithubCall, GithubOperation};
pub use http::{HeaderSpec, HttpCall, Signature, StatusClass, StatusClasses, render_body};
pub(crate) use mcp::check_servers;
pub use mcp::{McpServerSpec, expand_secrets};

/// What executes an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Executor {
    /// A declared HTTP request.
    Http(HttpCall),
    /// GitHub's REST API.
    Github(GithubCall),
    /// A tool of an MCP server declared in the catalogue's `mcp_servers`.
    Mcp {
        /// The server's `id` in `mcp_servers`.
        server: String,
        /// The tool's name as the server lists it (`tools/list`).
        tool: String,
    },
}

/// A secret an executor reads, and whether the action can run without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretUse {
    /// The environment variable.
    pub env: String,
    /// What it is for, for the message when it is missing.
    pub purpose: &'static str,
    /// Whether the action cannot run without it (otherwise a default applies).
    pub required: bool,
}

impl Executor {
    /// The secrets this executor reads.
    pub fn secrets(&self) -> Vec<SecretUse> {
        match self {
            Executor::Http(call) => call.secrets(),
            Executor::Github(call) => call.secrets(),
            // Its secrets belong to the server's declaration (`McpServerSpec::secret_names`).
            Executor::Mcp { .. } => Vec::new(),
        }
    }

    /// Everything wrong with the declaration, given the action it executes.
    pub(crate) fn problems(&self, action: &ActionSpec) -> Vec<String> {
        match self {
            Executor::Http(call) => call.problems(action),
            Executor::Github(call) => call.problems(action),
            // Checked against the declared servers where the catalogue is built.
            Executor::Mcp { .. } => Vec::new(),
        }
    }
}

/// The required secrets of every declared executor that `is_set` says are missing, one line
/// each (`action `x`: secret ENV (purpose) is not set`), for `chatgptd config check`. Only
/// the names: a value is never read into the message.
pub fn missing_secrets(actions: &[ActionSpec], is_set: impl Fn(&str) -> bool) -> Vec<String> {
    let mut lines = Vec::new();
    for action in actions {
        let Some(executor) = &action.executor else {
            continue;
        };
        for secret in executor.secrets() {
            if secret.required && !is_set(&secret.env) {
                lines.push(format!(
                    "action `{}`: secret {} ({}) is not set; the action is refused until it is",
                    action.id, secret.env, secret.purpose
                ));
            }
        }
    }
    lines
}
