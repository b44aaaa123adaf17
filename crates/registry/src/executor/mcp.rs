//! MCP servers whose tools actions may call (`mcp_servers` in `agents/actions.yaml`), and the
//! `${NAME}` secrets their headers name.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Problem;
use crate::names::is_kebab_case;

/// One MCP server whose tools actions may call (`mcp_servers` in `agents/actions.yaml`).
/// Exactly one of `url` (streamable HTTP) and `command` (a local process over stdio).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerSpec {
    /// The server's id, kebab-case, as an action's `executor.server` names it.
    pub id: String,
    /// The streamable HTTP endpoint, e.g. `https://docs.example.com/mcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A command to start that speaks MCP on its stdin and stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The command's arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// HTTP headers sent with every request (`url` only). A value may name environment
    /// variables as `${NAME}`, replaced by the secret's value when the client connects, so
    /// no secret is written in the file: `Authorization: "Bearer ${DOCS_MCP_TOKEN}"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// How long one tool call may take before it is abandoned (and the action waits to try
    /// again, see the agent worker's MCP executor).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl McpServerSpec {
    /// The environment variables its headers name (`${NAME}`), in order.
    pub fn secret_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for value in self.headers.values() {
            let mut rest = value.as_str();
            while let Some(start) = rest.find("${") {
                let after = &rest[start + 2..];
                let Some(end) = after.find('}') else { break };
                names.push(after[..end].to_string());
                rest = &after[end + 1..];
            }
        }
        names
    }
}

/// Replaces every `${NAME}` of `value` with `lookup(NAME)`; the first name without a value
/// is the error.
pub fn expand_secrets(
    value: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("`${{` without its `}}` in `{value}`"));
        };
        let name = &after[..end];
        out.push_str(&lookup(name).ok_or_else(|| name.to_string())?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks the declared servers: ids, exactly one transport, a timeout.
pub(crate) fn check_servers(path: &str, servers: &[McpServerSpec], problems: &mut Vec<Problem>) {
    let mut seen = std::collections::BTreeSet::new();
    for server in servers {
        let item = format!("mcp server `{}`", server.id);
        let mut problem = |message: &str| problems.push(Problem::new(path, &item, message));
        if !is_kebab_case(&server.id) {
            problem("ids are kebab-case: lowercase letters, digits and `-`");
        }
        if !seen.insert(server.id.as_str()) {
            problem("declared twice");
        }
        match (&server.url, &server.command) {
            (Some(url), None) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    problem("url must be http:// or https://");
                }
            }
            (None, Some(command)) => {
                if command.trim().is_empty() {
                    problem("command is empty");
                }
                if !server.headers.is_empty() {
                    problem(
                        "headers go with `url`; a command reads its secrets from its environment",
                    );
                }
            }
            _ => problem("set exactly one of `url` (streamable HTTP) and `command` (stdio)"),
        }
        if server.timeout.is_zero() {
            problem("timeout must be more than 0");
        }
        if let Some(bad) = server
            .headers
            .values()
            .find(|v| expand_secrets(v, |_| Some(String::new())).is_err())
        {
            problem(&format!("header value `{bad}` has `${{` without its `}}`"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::Executor;

    #[test]
    fn secrets_are_named_and_expanded() {
        let mut server: McpServerSpec =
            serde_yaml::from_str("id: docs\nurl: http://127.0.0.1:1/mcp\n").unwrap();
        assert_eq!(server.timeout, Duration::from_secs(30));
        server
            .headers
            .insert("Authorization".into(), "Bearer ${TOKEN} ${OTHER}".into());
        assert_eq!(server.secret_names(), ["TOKEN", "OTHER"]);
        let lookup = |name: &str| (name == "TOKEN").then(|| "t0k".to_string());
        assert_eq!(
            expand_secrets("Bearer ${TOKEN}", lookup).unwrap(),
            "Bearer t0k"
        );
        assert_eq!(expand_secrets("${OTHER}", lookup).unwrap_err(), "OTHER");
        assert_eq!(expand_secrets("plain", lookup).unwrap(), "plain");
    }

    #[test]
    fn an_executor_is_tagged_by_kind() {
        let executor: Executor =
            serde_yaml::from_str("kind: mcp\nserver: docs\ntool: lookup\n").unwrap();
        assert_eq!(
            executor,
            Executor::Mcp {
                server: "docs".into(),
                tool: "lookup".into()
            }
        );
    }
}
