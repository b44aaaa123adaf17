//! The API's tokens on the real node: every route without a token (401), with a token
//! lacking its scope (403) and with one holding it (what the route answers), from one table
//! that must list every route the node serves; who decides is the caller's token; an open
//! API beyond loopback refuses to start.

use std::process::Stdio;

use chatgptd_node::Role;
use chatgptd_runtime::http::{Access, AuthMode, Scope};
use chatgptd_testkit::{http_client, http_client_with_token};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::fleet::Fleet;
use crate::support::node::Node;

const READER: &str = "reader-secret";
const SENDER: &str = "sender-secret";
const APPROVER: &str = "approver-secret";
const ADMIN: &str = "admin-secret";

/// One route: its method and pattern as declared, a concrete path and body to call it with,
/// what it requires, and the status it answers a caller who may call it.
struct Case {
    method: Method,
    route: &'static str,
    path: &'static str,
    body: Option<Value>,
    access: Access,
    status: u16,
}

fn case(method: Method, route: &'static str, path: &'static str, access: Access) -> Case {
    let status = if method == Method::POST { 202 } else { 200 };
    Case {
        method,
        route,
        path,
        body: None,
        access,
        status,
    }
}

impl Case {
    fn body(mut self, body: Value) -> Case {
        self.body = Some(body);
        self
    }

    fn status(mut self, status: u16) -> Case {
        self.status = status;
        self
    }
}

/// Every route of a node running every role. A new route goes here.
fn routes() -> Vec<Case> {
    use Access::{Public, Scope as S};
    use Method as M;
    use Scope::{Admin, Approve, Read, Send};
    let message = json!({"body": "hello", "wait": false});
    let action =
        json!({"action": "search_memory", "arguments": {"query": "printer"}, "wait": false});
    vec![
        // Observability: needs `read` when taken out of `http.public`.
        case(M::GET, "/healthz", "/healthz", S(Read)),
        case(M::GET, "/readyz", "/readyz", S(Read)).status(0),
        case(M::GET, "/metrics", "/metrics", S(Read)),
        case(M::GET, "/openapi.json", "/openapi.json", S(Read)),
        // The dashboard: the page and its assets hold no data; the session is the token's.
        case(M::GET, "/", "/", Public),
        case(M::GET, "/assets/{file}", "/assets/app.js", Public),
        case(M::GET, "/session", "/session", S(Read)),
        case(M::POST, "/session", "/session", S(Read)).status(200),
        case(M::DELETE, "/session", "/session", Public).status(204),
        // A dry run: the table's node has no dead letters, so it answers at once.
        case(
            M::POST,
            "/dead-letters/replay",
            "/dead-letters/replay",
            S(Admin),
        )
        .body(json!({"dry_run": true}))
        .status(200),
        case(M::GET, "/dead-letters", "/dead-letters?limit=5", S(Read)),
        // Webhooks: their signature is their check (none configured here: 401 of their own).
        case(M::POST, "/webhooks/jira", "/webhooks/jira", Public).status(401),
        case(
            M::POST,
            "/webhooks/servicenow",
            "/webhooks/servicenow",
            Public,
        )
        .status(401),
        case(M::POST, "/webhooks/github", "/webhooks/github", Public).status(401),
        case(
            M::GET,
            "/events",
            "/events?topics=tickets.enriched",
            S(Read),
        ),
        case(M::GET, "/runs/{id}/events", "/runs/r-1/events", S(Read)),
        case(M::GET, "/search", "/search?q=printer", S(Read)),
        case(M::POST, "/knowledge", "/knowledge", S(Send))
            .body(json!({"source": "printers.md", "text": "# Printers\n\nOn floor 3."})),
        case(
            M::GET,
            "/agents/{id}/memory",
            "/agents/wanderweave/memory?q=printer",
            S(Read),
        ),
        case(
            M::POST,
            "/agents/{id}/memory",
            "/agents/wanderweave/memory",
            S(Send),
        )
        .body(json!({"text": "The printer is on floor 3."})),
        case(M::GET, "/agents", "/agents", S(Read)),
        case(M::GET, "/agents/{id}", "/agents/wanderweave", S(Read)),
        // Run-time registrations: an invalid one, and an unknown agent, so the table's
        // calls change nothing the other rows read.
        case(M::POST, "/agents", "/agents", S(Admin))
            .body(json!({"id": "scout"}))
            .status(400),
        case(M::PATCH, "/agents/{id}", "/agents/no-such-agent", S(Admin))
            .body(json!({}))
            .status(404),
        case(M::DELETE, "/agents/{id}", "/agents/no-such-agent", S(Admin)).status(404),
        case(
            M::POST,
            "/agents/{id}/heartbeat",
            "/agents/wanderweave/heartbeat",
            S(Send),
        )
        .body(json!({"status": "deployed", "ttl_s": 60}))
        .status(200),
        case(
            M::GET,
            "/agents/{id}/messages",
            "/agents/wanderweave/messages",
            S(Read),
        ),
        case(
            M::POST,
            "/agents/{id}/messages",
            "/agents/wanderweave/messages",
            S(Send),
        )
        .body(message.clone()),
        case(M::GET, "/fleets", "/fleets", S(Read)),
        case(M::GET, "/usage", "/usage", S(Read)),
        case(
            M::POST,
            "/fleets/{name}/messages",
            "/fleets/creative/messages",
            S(Send),
        )
        .body(message),
        case(M::GET, "/messages/{id}", "/messages/m-1", S(Read)),
        case(
            M::POST,
            "/agents/{id}/actions",
            "/agents/core-ticket-triage/actions",
            S(Send),
        )
        .body(action.clone()),
        case(
            M::POST,
            "/agents/{id}/actions/check",
            "/agents/core-ticket-triage/actions/check",
            S(Read),
        )
        .body(action)
        .status(200),
        // MCP (crates/mcp): the route needs `read`, each tool checks its own scope. Without
        // `Accept: application/json, text/event-stream` the protocol answers 406.
        case(M::POST, "/mcp", "/mcp", S(Read))
            .body(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            .status(406),
        case(M::GET, "/approvals", "/approvals", S(Read)),
        case(M::GET, "/approvals/{id}", "/approvals/act-1", S(Read)).status(404),
        case(
            M::POST,
            "/approvals/{id}/approve",
            "/approvals/act-1/approve",
            S(Approve),
        )
        .body(json!({}))
        .status(404),
        case(
            M::POST,
            "/approvals/{id}/deny",
            "/approvals/act-1/deny",
            S(Approve),
        )
        .body(json!({"reason": "no"}))
        .status(404),
        case(M::GET, "/workflows", "/workflows", S(Read)),
        case(M::GET, "/workflows/{name}", "/workflows/research", S(Read)),
        case(
            M::POST,
            "/workflows/{name}/runs",
            "/workflows/research/runs",
            S(Send),
        )
        .body(json!({"input": {"question": "Night trains?"}})),
        case(M::GET, "/runs", "/runs?limit=5", S(Read)),
        case(M::GET, "/runs/{id}", "/runs/r-1", S(Read)).status(404),
        case(M::POST, "/runs/{id}/resume", "/runs/r-1/resume", S(Approve)).status(404),
        case(
            M::POST,
            "/runs/{id}/steps/{step}/approve",
            "/runs/r-1/steps/plan/approve",
            S(Approve),
        )
        .status(404),
        case(M::POST, "/subscriptions", "/subscriptions", S(Admin))
            .body(json!({"topics": ["workflows.steps"], "url": "http://127.0.0.1:9/hook"}))
            .status(201),
        case(M::GET, "/subscriptions", "/subscriptions", S(Admin)),
        case(
            M::GET,
            "/subscriptions/{id}",
            "/subscriptions/sub_0",
            S(Admin),
        )
        .status(404),
        case(
            M::DELETE,
            "/subscriptions/{id}",
            "/subscriptions/sub_0",
            S(Admin),
        )
        .status(404),
    ]
}

/// A token that lacks `scope`.
fn without(scope: Scope) -> &'static str {
    match scope {
        Scope::Read => SENDER,
        Scope::Send | Scope::Approve => READER,
        Scope::Admin => APPROVER,
    }
}

fn with(scope: Scope) -> &'static str {
    match scope {
        Scope::Read => READER,
        Scope::Send => SENDER,
        Scope::Approve => APPROVER,
        Scope::Admin => ADMIN,
    }
}

/// A node with every role and a token per scope; nothing public but the webhooks. The fleet
/// holds the node's cluster and data directory.
async fn node(tag: &str) -> (Fleet, Node) {
    let mut fleet = Fleet::new(tag);
    fleet.token("reader", &[Scope::Read], READER);
    fleet.token("sender", &[Scope::Send], SENDER);
    fleet.token("approver", &[Scope::Approve], APPROVER);
    fleet.token("admin", &[Scope::Admin], ADMIN);
    fleet.config.http.public.clear();
    let node = fleet.start(&Role::ALL).await;
    (fleet, node)
}

/// Calls `case` with `token`: its status, its JSON body (null for a stream or text), and the
/// response of a stream, open until dropped.
async fn call(
    node: &Node,
    case: &Case,
    token: Option<&str>,
) -> (u16, Value, Option<reqwest::Response>) {
    let client = token.map_or_else(http_client, http_client_with_token);
    let mut request = client.request(case.method.clone(), node.url(case.path));
    if let Some(body) = &case.body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let is_json = response
        .headers()
        .get("content-type")
        .is_some_and(|value| value.to_str().unwrap_or("").starts_with("application/json"));
    if is_json {
        (status, response.json().await.unwrap_or(Value::Null), None)
    } else {
        (status, Value::Null, Some(response))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_needs_its_scope_and_the_table_lists_every_route() {
    let (_fleet, node) = node("auth-routes").await;

    // The table and the node agree: a route added without a row here fails this test.
    let mut declared: Vec<(String, String, Access)> = node
        .routes
        .iter()
        .map(|d| (d.method.to_string(), d.path.clone(), d.access))
        .collect();
    let mut table: Vec<(String, String, Access)> = routes()
        .iter()
        .map(|c| (c.method.to_string(), c.route.to_string(), c.access))
        .collect();
    declared.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    table.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(
        declared, table,
        "the routes the node declares, and this table"
    );

    for case in routes() {
        let what = format!("{} {}", case.method, case.path);
        let Access::Scope(scope) = case.access else {
            // Public: no token asked for; what answers is the route's own check.
            let (status, body, _) = call(&node, &case, None).await;
            assert_eq!(status, case.status, "{what}: {body}");
            assert_ne!(body["error"], "missing_token", "{what}: {body}");
            continue;
        };
        let (status, body, response) = call(&node, &case, None).await;
        assert_eq!(status, 401, "{what} without a token: {body}");
        assert_eq!(body["error"], "missing_token", "{what}: {body}");
        drop(response);

        let (status, body, _) = call(&node, &case, Some("not-a-token")).await;
        assert_eq!(status, 401, "{what} with an unknown token: {body}");
        assert_eq!(body["error"], "unknown_token", "{what}: {body}");

        let (status, body, _) = call(&node, &case, Some(without(scope))).await;
        assert_eq!(status, 403, "{what} without `{scope}`: {body}");
        assert_eq!(body["error"], "insufficient_scope", "{what}: {body}");
        assert_eq!(body["scope"], scope.as_str(), "{what}: {body}");

        for token in [with(scope), ADMIN] {
            let (status, body, response) = call(&node, &case, Some(token)).await;
            if case.status == 0 {
                assert!(![401, 403].contains(&status), "{what}: {status} {body}");
            } else {
                assert_eq!(status, case.status, "{what} with its scope: {body}");
            }
            // An event stream is open: closed here, so the next call has a subscriber free.
            drop(response);
        }
    }

    // Each request was counted by token name and status class, and no secret appears.
    let metrics = http_client_with_token(READER)
        .get(node.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|line| {
            line.starts_with("chatgptd_http_requests_total")
                && line.contains("token=\"sender\"")
                && line.contains("status=\"4xx\"")
        })
        .unwrap_or_else(|| panic!("no count of sender's refusals:\n{metrics}"));
    assert!(!line.ends_with(" 0"), "{line}");
    assert!(!metrics.contains(SENDER) && !metrics.contains(ADMIN));
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_challenge_and_the_public_paths() {
    let mut fleet = Fleet::new("auth-challenge");
    fleet.token("reader", &[Scope::Read], READER);
    let node = fleet.start(&[Role::Agents]).await;
    let response = http_client().get(node.url("/agents")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    // Public by default: the orchestrator's probes and the scraper need no token.
    for path in ["/healthz", "/metrics"] {
        let response = http_client().get(node.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    // A path no route serves: a token first, then the 404.
    let unknown = http_client().get(node.url("/nope")).send().await.unwrap();
    assert_eq!(unknown.status(), 401);
    let unknown = http_client_with_token(READER)
        .get(node.url("/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caller_cannot_give_an_agent_more_tokens_than_its_budget() {
    let fleet = Fleet::new("auth-budget");
    let node = fleet.start(&[Role::Agents]).await;
    let (_, agent) = crate::support::fleet::get(&node, "/agents/wanderweave").await;
    let budget = agent["token_budget"].as_i64().unwrap();
    let path = "/agents/wanderweave/messages";
    let over = json!({"body": "hello", "wait": false, "token_budget": budget + 1});
    let (status, body) = crate::support::fleet::post(&node, path, over).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["max"], budget, "{body}");
    let within = json!({"body": "hello", "wait": false, "token_budget": budget});
    let (status, body) = crate::support::fleet::post(&node, path, within).await;
    assert_eq!(status, 202, "{body}");
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_auth_none_the_api_is_open_and_says_so() {
    let mut fleet = Fleet::new("auth-none");
    fleet.config.http.auth = AuthMode::None;
    let node = fleet.start(&[Role::Agents]).await;
    assert!(node.token.is_none(), "no token file when the check is off");
    let response = http_client().get(node.url("/agents")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    node.stop().await.unwrap();
}

/// `chatgptd up` on every interface with no tokens stops before serving, saying what to do;
/// with `http.auth = "none"` (from its config file) it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_beyond_loopback_without_tokens_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chatgptd"))
        .args(["up", "--http-listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to serve the HTTP API") && stderr.contains("http.auth"),
        "{stderr}"
    );
    assert!(!dir.path().join("data/api-token").exists());
    assert!(!String::from_utf8_lossy(&output.stdout).contains("chatgptd is up"));
}
