//! The tools chatgptd offers MCP clients, each on the same clients the HTTP API uses: a
//! message to an agent is the `AgentMessage` `POST /agents/{id}/messages` sends, its answer
//! awaited in the same inbox.

use std::sync::Arc;
use std::time::Duration;

use axum::http::request::Parts;
use chatgptd_fleet::{AgentsClient, LiveRegistry, new_request};
use chatgptd_runtime::http::{Caller, Scope};
use chatgptd_search::Retriever;
use chatgptd_search::retrieve::Retrieval;
use chatgptd_worker_workflows::WorkflowsClient;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

/// What the tools act through.
#[derive(Clone)]
pub struct Fleet {
    /// The agents and fleets, with run-time registrations.
    pub registry: Arc<LiveRegistry>,
    /// Sends messages and reads their answers.
    pub agents: AgentsClient,
    /// Memory search.
    pub retriever: Retriever,
    /// Starts and reads workflow runs.
    pub workflows: WorkflowsClient,
}

/// Each tool, the scope it needs, its description and its input schema.
pub const TOOLS: &[(&str, Scope, &str)] = &[
    (
        "list_agents",
        Scope::Read,
        "The agents of the fleet: id, name, fleet, description, whether enabled.",
    ),
    (
        "search_memory",
        Scope::Read,
        "Search what the fleet remembers (tickets, answers, notes) for `query`.",
    ),
    (
        "workflow_status",
        Scope::Read,
        "A workflow run and its steps, by run id.",
    ),
    (
        "ask_agent",
        Scope::Send,
        "Send `message` to agent `agent` and wait (up to `timeout_ms`, default 30 s) for its answer.",
    ),
    (
        "message_fleet",
        Scope::Send,
        "Send `message` to every enabled agent of `fleet` and wait for their answers.",
    ),
    (
        "start_workflow",
        Scope::Send,
        "Start a run of workflow `workflow` with `input`; returns the run id.",
    ),
];

/// How long `ask_agent` and `message_fleet` wait unless told, and at most.
const DEFAULT_WAIT: Duration = Duration::from_secs(30);
const MAX_WAIT: Duration = Duration::from_secs(300);

fn schema(name: &str) -> Value {
    let wait = json!({"type": "integer", "minimum": 1, "maximum": 300_000, "description": "how long to wait for answers, in ms"});
    match name {
        "list_agents" => {
            json!({"type": "object", "properties": {"fleet": {"type": "string", "description": "only this fleet's agents"}}})
        }
        "search_memory" => json!({"type": "object", "properties": {
            "query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 50}},
            "required": ["query"]}),
        "workflow_status" => {
            json!({"type": "object", "properties": {"run_id": {"type": "string"}}, "required": ["run_id"]})
        }
        "ask_agent" => json!({"type": "object", "properties": {
            "agent": {"type": "string"}, "message": {"type": "string"},
            "conversation_id": {"type": "string"}, "timeout_ms": wait},
            "required": ["agent", "message"]}),
        "message_fleet" => json!({"type": "object", "properties": {
            "fleet": {"type": "string"}, "message": {"type": "string"}, "timeout_ms": wait},
            "required": ["fleet", "message"]}),
        _ => json!({"type": "object", "properties": {
            "workflow": {"type": "string"}, "input": {"type": "object"}},
            "required": ["workflow"]}),
    }
}

/// One MCP request's handler (the server is stateless: one per request).
pub(crate) struct FleetServer {
    fleet: Arc<Fleet>,
}

impl FleetServer {
    pub(crate) fn new(fleet: Arc<Fleet>) -> Self {
        FleetServer { fleet }
    }
}

/// The caller the API's token check let through, from the HTTP request's parts.
fn caller(context: &RequestContext<RoleServer>) -> Option<Caller> {
    context
        .extensions
        .get::<Parts>()
        .and_then(|parts| parts.extensions.get::<Caller>())
        .cloned()
}

impl ServerHandler for FleetServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("chatgptd", env!("CARGO_PKG_VERSION")))
            .with_instructions("The chatgptd agent fleet: ask agents, message fleets, search memory, run workflows.")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = caller(&context);
        let tools = TOOLS
            .iter()
            .filter(|(_, scope, _)| caller.as_ref().is_some_and(|c| c.allows(*scope)))
            .map(|(name, _, description)| {
                let Value::Object(schema) = schema(name) else {
                    unreachable!("every schema is an object")
                };
                Tool::new(*name, *description, Arc::new(schema))
            })
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        let Some((_, scope, _)) = TOOLS.iter().find(|(tool, _, _)| *tool == name) else {
            return Err(ErrorData::invalid_params(format!("no tool `{name}`"), None));
        };
        let Some(caller) = caller(&context).filter(|c| c.allows(*scope)) else {
            return Ok(failed(format!("`{name}` needs a token with the `{scope}` scope")).into());
        };
        let arguments = request.arguments.unwrap_or_default();
        let result = match name.as_str() {
            "list_agents" => self.list_agents(&arguments),
            "search_memory" => self.search_memory(&arguments).await,
            "workflow_status" => self.workflow_status(&arguments).await,
            "ask_agent" => self.ask_agent(&arguments, &caller).await,
            "message_fleet" => self.message_fleet(&arguments, &caller).await,
            _ => self.start_workflow(&arguments, &caller).await,
        };
        Ok(result.unwrap_or_else(failed).into())
    }
}

type Answer = Result<CallToolResult, String>;

fn failed(text: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

/// A result whose text is `value` as JSON, and its structured content too.
fn answered(value: Value) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(value.to_string())]);
    result.structured_content = Some(value);
    result
}

fn text<'a>(arguments: &'a JsonObject, name: &str) -> Result<&'a str, String> {
    arguments
        .get(name)
        .and_then(Value::as_str)
        .filter(|value| !value.trim().is_empty())
        .ok_or_else(|| format!("`{name}` is required: a non-empty string"))
}

fn wait_of(arguments: &JsonObject) -> Duration {
    arguments
        .get("timeout_ms")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_WAIT, Duration::from_millis)
        .min(MAX_WAIT)
}

impl FleetServer {
    fn list_agents(&self, arguments: &JsonObject) -> Answer {
        let registry = self.fleet.registry.current();
        let fleet = arguments.get("fleet").and_then(Value::as_str);
        let agents: Vec<Value> = registry
            .agents()
            .iter()
            .filter(|agent| {
                fleet.is_none_or(|f| {
                    registry
                        .find_fleet(f)
                        .is_some_and(|s| s.is_named(&agent.fleet))
                })
            })
            .map(|agent| {
                json!({"id": agent.id, "name": agent.name, "fleet": agent.fleet,
                       "description": agent.description, "enabled": agent.is_enabled()})
            })
            .collect();
        Ok(answered(json!({"agents": agents})))
    }

    async fn search_memory(&self, arguments: &JsonObject) -> Answer {
        let query = text(arguments, "query")?;
        let limit = arguments
            .get("limit")
            .and_then(Value::as_u64)
            .unwrap_or(5)
            .clamp(1, 50);
        let retrieval = Retrieval {
            max_hits: usize::try_from(limit).unwrap_or(5),
            max_tokens: 4_000,
            ..Retrieval::default()
        };
        let hits = self.fleet.retriever.find(query, &retrieval).await;
        let hits: Vec<Value> = hits
            .iter()
            .map(
                |hit| json!({"id": hit.id, "owner": hit.owner, "kind": hit.kind, "text": hit.text}),
            )
            .collect();
        Ok(answered(json!({"query": query, "hits": hits})))
    }

    async fn workflow_status(&self, arguments: &JsonObject) -> Answer {
        let run = text(arguments, "run_id")?;
        let view = self
            .fleet
            .workflows
            .view(run)
            .await
            .map_err(|err| err.to_string())?;
        let value = serde_json::to_value(&view).map_err(|err| err.to_string())?;
        Ok(answered(value))
    }

    async fn ask_agent(&self, arguments: &JsonObject, caller: &Caller) -> Answer {
        let agent = text(arguments, "agent")?;
        let body = text(arguments, "message")?;
        let registry = self.fleet.registry.current();
        match registry.get(agent) {
            Some(spec) if spec.is_enabled() => {}
            Some(_) => return Err(format!("agent `{agent}` is disabled")),
            None => return Err(format!("there is no agent `{agent}`")),
        }
        let conversation = arguments.get("conversation_id").and_then(Value::as_str);
        let from = format!("mcp:{}", caller.name());
        let message = new_request(&from, agent, body, conversation, 0);
        self.send_and_wait(&message, 1, wait_of(arguments)).await
    }

    async fn message_fleet(&self, arguments: &JsonObject, caller: &Caller) -> Answer {
        let fleet = text(arguments, "fleet")?;
        let body = text(arguments, "message")?;
        let members = self.fleet.registry.current().fleet(fleet).len();
        if members == 0 {
            return Err(format!("there is no fleet `{fleet}` with enabled agents"));
        }
        let from = format!("mcp:{}", caller.name());
        let message = new_request(&from, &format!("fleet:{fleet}"), body, None, 0);
        self.send_and_wait(&message, members, wait_of(arguments))
            .await
    }

    async fn send_and_wait(
        &self,
        message: &chatgptd_types::records::AgentMessage,
        expected: usize,
        wait: Duration,
    ) -> Answer {
        let agents = &self.fleet.agents;
        agents
            .send(message)
            .await
            .map_err(|err| format!("the message was not accepted: {err}"))?;
        let answers = agents
            .wait(&message.id, expected, wait)
            .await
            .map_err(|err| format!("memory unavailable: {err}"))?;
        let status = if answers.len() >= expected {
            "answered"
        } else {
            "pending"
        };
        let mut result = answered(json!({
            "status": status, "message_id": message.id,
            "conversation_id": message.conversation_id, "answers": answers,
        }));
        // A single answer reads as itself.
        if let [answer] = answers.as_slice()
            && let Some(body) = answer.get("body").and_then(Value::as_str)
        {
            result.content = vec![ContentBlock::text(body.to_string())];
        }
        Ok(result)
    }

    async fn start_workflow(&self, arguments: &JsonObject, caller: &Caller) -> Answer {
        let workflow = text(arguments, "workflow")?;
        let input = arguments.get("input").cloned().unwrap_or_else(|| json!({}));
        let by = format!("mcp:{}", caller.name());
        let run = self
            .fleet
            .workflows
            .start(workflow, &input, &by)
            .await
            .map_err(|err| err.to_string())?;
        Ok(answered(json!({"run_id": run, "workflow": workflow})))
    }
}
