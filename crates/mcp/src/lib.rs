//! chatgptd as an MCP server: `POST /mcp` (streamable HTTP, the official SDK `rmcp`) on the
//! node's HTTP listener, so an MCP client (an IDE, a desktop assistant, another agent
//! platform) uses the fleet as tools ([`tools`]).
//!
//! It sits behind the API's token check like every route: the route needs `read`, and each
//! tool checks the caller's token for what it does (`read` to list agents, search memory
//! and follow a run; `send` to message agents and start workflows). A token without `send`
//! is not offered those tools. The server is stateless (no MCP session kept between
//! requests), so any replica can answer any request.

mod tools;

use std::sync::Arc;

use axum::http::{Method, header};
use axum::response::Response;
use chatgptd_runtime::http::error_response;
use chatgptd_runtime::http::openapi::ErrorBody;
use chatgptd_runtime::http::routes::Access;
use chatgptd_runtime::http::{Routes, Scope};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

pub use tools::{Fleet, TOOLS};

/// The path MCP clients connect to.
pub const PATH: &str = "/mcp";

/// `POST /mcp` serving `fleet`'s tools until `shutdown`.
pub fn routes(fleet: Fleet, shutdown: CancellationToken) -> Routes {
    let fleet = Arc::new(fleet);
    // No session: every request stands alone, answered as JSON. Host checks guard
    // unauthenticated local servers against DNS rebinding; this one needs a bearer token,
    // and is reached by whatever name the deployment gives it.
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_cancellation_token(shutdown)
        .disable_allowed_hosts();
    let service: StreamableHttpService<tools::FleetServer, LocalSessionManager> =
        StreamableHttpService::new(
            move || Ok(tools::FleetServer::new(fleet.clone())),
            Arc::default(),
            config,
        );
    Routes::new().documented(McpDoc::openapi()).route(
        PATH,
        Method::POST,
        Access::Scope(Scope::Read),
        axum::routing::post_service(service).layer(axum::middleware::map_response(json_errors)),
    )
}

/// The SDK answers some refusals (406, 415, a malformed body) in plain text: they become the
/// API's JSON error body, as every route answers. JSON-RPC error bodies are left as they are.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let detail = String::from_utf8_lossy(&bytes).trim().to_string();
    let message = status
        .canonical_reason()
        .unwrap_or("refused")
        .to_lowercase();
    error_response(status, &message, json!({"detail": detail}))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(mcp), tags((name = "mcp", description = "chatgptd as an MCP server")))]
struct McpDoc;

/// The Model Context Protocol endpoint (streamable HTTP, stateless): a JSON-RPC message in,
/// its answer out. Tools: `list_agents`, `search_memory`, `workflow_status` (token with
/// `read`), `ask_agent`, `message_fleet`, `start_workflow` (token with `send`).
#[utoipa::path(post, path = "/mcp", tag = "mcp",
    request_body(content = serde_json::Value, description = "a JSON-RPC 2.0 message of the Model Context Protocol", content_type = "application/json"),
    responses(
        (status = 200, description = "the JSON-RPC answer", body = serde_json::Value),
        (status = 202, description = "a notification or response, accepted"),
        (status = 400, description = "not a JSON-RPC message of the protocol: a JSON-RPC error, or the API's error body", body = serde_json::Value),
        (status = 401, description = "no token, or an unknown one", body = ErrorBody),
        (status = 403, description = "the token lacks `read`", body = ErrorBody),
        (status = 404, description = "an MCP session this stateless server does not keep", body = ErrorBody),
        (status = 406, description = "the client does not accept both JSON and event streams", body = ErrorBody),
        (status = 413, description = "the body is too large", body = ErrorBody),
        (status = 415, description = "the body is not JSON", body = ErrorBody),
        (status = 422, description = "a JSON-RPC message the server cannot take", body = serde_json::Value),
    ))]
#[allow(dead_code)]
async fn mcp() {}
