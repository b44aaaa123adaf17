//! Clients of the MCP servers the catalogue declares (`mcp_servers`), through the official
//! SDK (`rmcp`): a session per server, opened on first use and reopened after a transport
//! error, and the tools each server lists (`tools/list`), whose input schemas become the
//! `parameters` of MCP actions that leave theirs out.
//!
//! What a failed call means for the action is told apart here, because only this side knows
//! whether the request can have reached the server: see [`CallError`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatgptd_registry::McpServerSpec;
use chatgptd_registry::executor::expand_secrets;
use chatgptd_types::Secrets;
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, Tool};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::{Map, Value};

/// How long opening a session (connect and `initialize`) may take: no tool has been called
/// yet, so running out of it means the server is down, not that a call is in doubt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a server that was slow to fail is not asked again for its tools, so a
/// conversation does not wait on a hanging server at every turn.
const LIST_BACKOFF: Duration = Duration::from_secs(10);

/// A failure to list that took this long backs off for [`LIST_BACKOFF`].
const SLOW_FAILURE: Duration = Duration::from_millis(500);

type Session = RunningService<RoleClient, ()>;

/// What a server said about one of its tools.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolInfo {
    /// The input schema, as the server lists it.
    pub input_schema: Value,
    /// The server says calling it twice with the same arguments does no more than once
    /// (`idempotentHint`, or `readOnlyHint`): a call in doubt may then be made again.
    pub repeatable: bool,
}

/// Why a call did not give a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The request surely never reached the server: no session could be opened (connection
    /// refused, no answer to `initialize` in time), or the connection was refused. Safe to
    /// try again.
    NotReached(String),
    /// The request was sent and no answer came (the timeout, a connection lost mid-call):
    /// the tool may have run.
    InDoubt(String),
    /// The server answered with a protocol error (unknown tool, invalid arguments): the
    /// tool did not run.
    Rejected(String),
}

/// The sessions and tool lists of the declared servers. Cheap to clone.
#[derive(Clone, Default)]
pub struct McpClients {
    secrets: Secrets,
    sessions: Arc<tokio::sync::Mutex<HashMap<String, Arc<Session>>>>,
    tools: Arc<Mutex<HashMap<String, HashMap<String, ToolInfo>>>>,
    /// When a server last failed to list its tools.
    failed: Arc<Mutex<HashMap<String, Instant>>>,
}

impl std::fmt::Debug for McpClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClients").finish_non_exhaustive()
    }
}

impl McpClients {
    /// Clients whose header secrets (`${NAME}`) come from `secrets`.
    pub fn new(secrets: Secrets) -> Self {
        McpClients {
            secrets,
            ..McpClients::default()
        }
    }

    /// What `server` said of `tool`, if its tools were listed.
    pub fn tool(&self, server: &str, tool: &str) -> Option<ToolInfo> {
        let tools = self.tools.lock().unwrap_or_else(|e| e.into_inner());
        tools.get(server)?.get(tool).cloned()
    }

    /// Lists `server`'s tools unless they are known, or it failed to list them moments
    /// ago. Errors are the reason it could not (also kept for the backoff).
    pub async fn ensure_listed(&self, server: &McpServerSpec) -> Result<(), String> {
        if self.listed(&server.id) {
            return Ok(());
        }
        {
            let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
            if failed
                .get(&server.id)
                .is_some_and(|at| at.elapsed() < LIST_BACKOFF)
            {
                return Err(format!(
                    "mcp server `{}` was unreachable moments ago",
                    server.id
                ));
            }
        }
        let started = Instant::now();
        match self.list(server).await {
            Ok(_) => Ok(()),
            Err(err) => {
                // A refused connection costs nothing: asking again next turn finds a server
                // that just came back. Only a slow failure (a hanging server) backs off.
                if started.elapsed() >= SLOW_FAILURE {
                    let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
                    failed.insert(server.id.clone(), Instant::now());
                }
                Err(err)
            }
        }
    }

    /// Whether `server`'s tools have been listed.
    pub fn listed(&self, server: &str) -> bool {
        let tools = self.tools.lock().unwrap_or_else(|e| e.into_inner());
        tools.contains_key(server)
    }

    /// Asks `server` for its tools (`tools/list`) and keeps what it said.
    pub async fn list(&self, server: &McpServerSpec) -> Result<HashMap<String, ToolInfo>, String> {
        let session = self.session(server).await.map_err(|err| match err {
            CallError::NotReached(m) | CallError::InDoubt(m) | CallError::Rejected(m) => m,
        })?;
        let listed = tokio::time::timeout(server.timeout, session.list_all_tools()).await;
        let tools = match listed {
            Ok(Ok(tools)) => tools,
            Ok(Err(err)) => {
                self.forget(&server.id).await;
                return Err(format!("mcp server `{}`: tools/list: {err}", server.id));
            }
            Err(_) => {
                self.forget(&server.id).await;
                return Err(format!("mcp server `{}`: tools/list timed out", server.id));
            }
        };
        let tools: HashMap<String, ToolInfo> = tools.into_iter().map(info).collect();
        let mut known = self.tools.lock().unwrap_or_else(|e| e.into_inner());
        known.insert(server.id.clone(), tools.clone());
        Ok(tools)
    }

    /// Calls `tool` of `server` with `arguments`, within the server's timeout.
    pub async fn call(
        &self,
        server: &McpServerSpec,
        tool: &str,
        arguments: &Value,
    ) -> Result<CallToolResult, CallError> {
        let session = self.session(server).await?;
        let mut params = CallToolRequestParams::new(tool.to_string());
        params.arguments = Some(match arguments {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        });
        let called = tokio::time::timeout(server.timeout, session.call_tool(params)).await;
        match called {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(rmcp::ServiceError::McpError(err))) => Err(CallError::Rejected(format!(
                "mcp server `{}` refused the call of `{tool}`: {}",
                server.id, err.message
            ))),
            Ok(Err(err)) => {
                self.forget(&server.id).await;
                let message = format!("mcp server `{}`: calling `{tool}`: {err}", server.id);
                if refused(&err) {
                    Err(CallError::NotReached(message))
                } else {
                    Err(CallError::InDoubt(message))
                }
            }
            Err(_) => {
                self.forget(&server.id).await;
                Err(CallError::InDoubt(format!(
                    "mcp server `{}` did not answer the call of `{tool}` within {}",
                    server.id,
                    humantime::format_duration(server.timeout)
                )))
            }
        }
    }

    /// The open session with `server`, or a new one.
    async fn session(&self, server: &McpServerSpec) -> Result<Arc<Session>, CallError> {
        let mut sessions = self.sessions.lock().await;
        if let Some(session) = sessions.get(&server.id)
            && !session.is_closed()
        {
            return Ok(session.clone());
        }
        let opened = tokio::time::timeout(CONNECT_TIMEOUT, self.open(server)).await;
        let session = match opened {
            Ok(Ok(session)) => Arc::new(session),
            Ok(Err(err)) => return Err(CallError::NotReached(err)),
            Err(_) => {
                return Err(CallError::NotReached(format!(
                    "mcp server `{}` did not answer `initialize` within {}",
                    server.id,
                    humantime::format_duration(CONNECT_TIMEOUT)
                )));
            }
        };
        sessions.insert(server.id.clone(), session.clone());
        Ok(session)
    }

    async fn open(&self, server: &McpServerSpec) -> Result<Session, String> {
        let id = &server.id;
        if let Some(url) = &server.url {
            // reqwest is built without a default TLS provider: the process's one, installed
            // once (a command such as `config check` may not have a model client to do it).
            chatgptd_model::install_crypto_provider();
            let mut headers = HashMap::new();
            for (name, value) in &server.headers {
                let value = expand_secrets(value, |name| self.secrets.get(name)).map_err(|missing| {
                    format!("mcp server `{id}`: header `{name}` needs the secret `{missing}`, which is not set")
                })?;
                let name = HeaderName::try_from(name.as_str())
                    .map_err(|err| format!("mcp server `{id}`: header `{name}`: {err}"))?;
                // The value is a secret: the error says which header, never what it holds.
                let value = HeaderValue::try_from(value).map_err(|_| {
                    format!("mcp server `{id}`: header `{name}` is not a valid header value")
                })?;
                headers.insert(name, value);
            }
            let config =
                StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(headers);
            let transport = StreamableHttpClientTransport::from_config(config);
            ().serve(transport)
                .await
                .map_err(|err| format!("mcp server `{id}` ({url}): {err}"))
        } else {
            let command = server.command.as_deref().unwrap_or_default();
            let mut process = tokio::process::Command::new(command);
            process.args(&server.args);
            let transport = TokioChildProcess::new(process)
                .map_err(|err| format!("mcp server `{id}`: starting `{command}`: {err}"))?;
            ().serve(transport)
                .await
                .map_err(|err| format!("mcp server `{id}` (`{command}`): {err}"))
        }
    }

    /// Drops the session with `server`: the next call opens a new one.
    async fn forget(&self, server: &str) {
        self.sessions.lock().await.remove(server);
    }
}

fn info(tool: Tool) -> (String, ToolInfo) {
    let annotations = tool.annotations.as_ref();
    let hint = |get: fn(&rmcp::model::ToolAnnotations) -> Option<bool>| {
        annotations.and_then(get).unwrap_or(false)
    };
    let repeatable = hint(|a| a.idempotent_hint) || hint(|a| a.read_only_hint);
    let info = ToolInfo {
        input_schema: Value::Object((*tool.input_schema).clone()),
        repeatable,
    };
    (tool.name.to_string(), info)
}

/// Whether `err` is a connection refused (or not made) before anything was sent.
fn refused(err: &rmcp::ServiceError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(err) = source {
        if let Some(err) = err.downcast_ref::<reqwest::Error>()
            && err.is_connect()
        {
            return true;
        }
        // The SDK's HTTP error keeps reqwest's error as a field, not as its source.
        if let Some(StreamableHttpError::Client(err)) =
            err.downcast_ref::<StreamableHttpError<reqwest::Error>>()
            && err.is_connect()
        {
            return true;
        }
        if let Some(err) = err.downcast_ref::<std::io::Error>()
            && err.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = err.source();
    }
    false
}

/// A tool result as the model reads it: its text blocks, else its structured content.
pub fn result_text(result: &CallToolResult) -> String {
    let texts: Vec<&str> = result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|text| text.text.as_str()))
        .collect();
    if !texts.is_empty() {
        return texts.join("\n");
    }
    match &result.structured_content {
        Some(value) => value.to_string(),
        None => String::new(),
    }
}

/// A server's input schema as an action's `parameters`: closed to arguments it does not
/// declare (a model must not slip in arguments no rule looks at), with `properties` present.
pub fn closed_schema(schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Value::Object(map) = &mut schema {
        map.entry("type").or_insert_with(|| Value::from("object"));
        map.entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    schema
}
