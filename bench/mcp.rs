//! An MCP tool call's overhead (issue 14 §5). `cargo bench --bench mcp`.
//!
//! One server on loopback answers the same work two ways: `POST /mcp` (rmcp's streamable
//! HTTP server, stateless, JSON answers) with a tool `lookup`, and `POST /lookup`, a plain
//! JSON handler doing what the tool does. `BENCH_CALLS` calls (default 2,000) in turn each
//! way, in the same run: through the agent worker's MCP client (`McpClients::call`, its
//! session kept, as an MCP action calls), and a bare reqwest POST. Printed: p50/p99 of both
//! and the ratio MCP / direct.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use chatgptd_registry::McpServerSpec;
use chatgptd_worker_agents::McpClients;
use hdrhistogram::Histogram;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

fn env_or(name: &str, default: usize) -> usize {
    let value = std::env::var(name).ok().and_then(|v| v.parse().ok());
    value.unwrap_or(default)
}

/// The work both ways do: a short text from the topic.
fn lookup(topic: &str) -> String {
    format!("docs on {topic}: read the manual, chapter 7")
}

#[derive(Clone)]
struct Docs;

impl ServerHandler for Docs {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let Value::Object(schema) = json!({"type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]})
        else {
            unreachable!()
        };
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "lookup",
            "Look a topic up.",
            Arc::new(schema),
        )]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let topic = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("topic"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        Ok(CallToolResult::success(vec![ContentBlock::text(lookup(topic))]).into())
    }
}

async fn direct(Json(body): Json<Value>) -> Json<Value> {
    let topic = body["topic"].as_str().unwrap_or_default();
    Json(json!({"text": lookup(topic)}))
}

fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

fn line(label: &str, histogram: &Histogram<u64>) {
    let (p50, p99) = (ms(histogram, 0.5), ms(histogram, 0.99));
    println!("{label:<44} p50 {p50:>7.3} ms   p99 {p99:>7.3} ms");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let calls = env_or("BENCH_CALLS", 2_000);
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true);
    let service: StreamableHttpService<Docs, LocalSessionManager> =
        StreamableHttpService::new(|| Ok(Docs), Arc::default(), config);
    let router = axum::Router::new()
        .nest_service("/mcp", service)
        .route("/lookup", axum::routing::post(direct));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let server: McpServerSpec =
        serde_yaml::from_str(&format!("id: docs\nurl: http://{addr}/mcp\ntimeout: 10s\n")).unwrap();
    let mcp = McpClients::new(chatgptd_types::Secrets::from_map(
        Vec::<(String, String)>::new(),
    ));
    // reqwest has no TLS provider of its own; the worker's clients install it, this one
    // is built first.
    chatgptd_model::install_crypto_provider();
    let http = reqwest::Client::new();
    let arguments = json!({"topic": "printers"});
    let url = format!("http://{addr}/lookup");

    // Warm both: the MCP session, the connection pools.
    for _ in 0..50 {
        mcp.call(&server, "lookup", &arguments).await.unwrap();
        http.post(&url).json(&arguments).send().await.unwrap();
    }
    let mut through_mcp = Histogram::<u64>::new(3).unwrap();
    let mut direct_http = Histogram::<u64>::new(3).unwrap();
    let started = Instant::now();
    // Interleaved, so drift on a shared machine touches both alike.
    for _ in 0..calls {
        let at = Instant::now();
        let result = mcp.call(&server, "lookup", &arguments).await.unwrap();
        assert_ne!(result.is_error, Some(true));
        through_mcp.record(at.elapsed().as_micros() as u64).unwrap();

        let at = Instant::now();
        let response = http.post(&url).json(&arguments).send().await.unwrap();
        let _: Value = response.json().await.unwrap();
        direct_http.record(at.elapsed().as_micros() as u64).unwrap();
    }
    println!(
        "{calls} calls each way in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    line("MCP tool call (McpClients::call)", &through_mcp);
    line("direct HTTP call, same server", &direct_http);
    let ratio = ms(&through_mcp, 0.5) / ms(&direct_http, 0.5).max(f64::EPSILON);
    println!("ratio mcp / direct (p50): {ratio:.2}");
}
