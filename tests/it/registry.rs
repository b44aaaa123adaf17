//! Agents registered, changed and disabled at run time (`POST /agents`, `PATCH` and `DELETE
//! /agents/{id}`), kept in the compacted `agents.registry` topic, and the heartbeats an
//! externally hosted GPT reports (`POST /agents/{id}/heartbeat`), on the real node.

use std::time::Duration;

use chatgptd_node::Role;
use chatgptd_runtime::http::Scope;
use chatgptd_testkit::wait_until;
use chatgptd_types::records::AgentRegistration;
use chatgptd_types::topics::names;
use serde_json::{Value, json};

use crate::support::fleet::{Fleet, WAIT, get, post, post_as};
use crate::support::node::Node;

const ROLES: [Role; 1] = [Role::Agents];
const OPS: &str = "ops-secret";
const GPT: &str = "gpt-secret";

/// An agent as `POST /agents` takes it.
fn scout() -> Value {
    json!({
        "id": "scout",
        "name": "Scout",
        "fleet": "creative",
        "description": "Finds places worth a story.",
        "tier": "standard",
        "system_prompt": "You find places worth a story. Answer in one sentence.",
        "actions": ["reply"],
        "model": {"temperature": 0.3},
    })
}

/// A fleet whose admin token is `ops` (the node's client uses it) and a `send` token `gpt`.
fn fleet(tag: &str) -> Fleet {
    let mut fleet = Fleet::new(tag);
    fleet.token("ops", &[Scope::Admin], OPS);
    fleet.token("gpt", &[Scope::Send, Scope::Read], GPT);
    fleet
}

async fn call(
    node: &Node,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = node.client().request(method, node.url(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn say(node: &Node, agent: &str) -> (u16, Value) {
    post(
        node,
        &format!("/agents/{agent}/messages"),
        json!({"body": "Somewhere quiet by the sea?", "timeout_ms": 30_000}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registered_agent_answers_changes_and_is_disabled() {
    let fleet = fleet("registry-lifecycle");
    let node = fleet.start(&ROLES).await;

    let (status, body) = post(&node, "/agents", scout()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["agent"]["fleet"], "Creative",
        "the fleet's display name: {body}"
    );
    assert_eq!(body["registration"]["registered_by"], "ops", "{body}");
    let (status, body) = post(&node, "/agents", scout()).await;
    assert_eq!(status, 409, "registered once: {body}");

    // Served like an agent of the files: the worker answers it.
    let (status, body) = say(&node, "scout").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["answers"][0]["from"], "scout", "{body}");
    assert!(fleet_members(&node).await.contains(&"scout".to_string()));

    // PATCH changes the given fields only, and records who.
    let (status, body) = call(
        &node,
        reqwest::Method::PATCH,
        "/agents/scout",
        Some(json!({"name": "Scout II", "model": {"temperature": 0.9}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, agent) = get(&node, "/agents/scout").await;
    assert_eq!(agent["name"], "Scout II", "{agent}");
    assert_eq!(agent["model"]["temperature"], 0.9, "{agent}");
    assert_eq!(agent["system_prompt"], scout()["system_prompt"], "{agent}");
    assert_eq!(agent["registration"]["change"], "patch", "{agent}");
    assert_eq!(agent["registration"]["changed_by"], "ops", "{agent}");

    // DELETE disables: listed, but messages are refused with the reason.
    let (status, body) = call(&node, reqwest::Method::DELETE, "/agents/scout", None).await;
    assert_eq!(status, 200, "{body}");
    let (_, agent) = get(&node, "/agents/scout").await;
    assert_eq!(agent["enabled"], false, "{agent}");
    let (status, body) = say(&node, "scout").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "agent disabled", "{body}");

    // A file's agent can be disabled and enabled at run time too.
    let (status, _) = call(&node, reqwest::Method::DELETE, "/agents/wanderweave", None).await;
    assert_eq!(status, 200);
    assert_eq!(say(&node, "wanderweave").await.0, 409);
    let (status, body) = call(
        &node,
        reqwest::Method::PATCH,
        "/agents/wanderweave",
        Some(json!({"status": "enabled"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["registration"]["change"], "enable", "{body}");
    let (status, body) = say(&node, "wanderweave").await;
    assert_eq!(status, 200, "{body}");

    // Every change is on the topic, keyed by the agent, whole.
    let records: Vec<AgentRegistration> = fleet.records(names::AGENT_REGISTRY, 5).await;
    let changes: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r.agent_id.as_str(), r.change.as_str()))
        .collect();
    assert_eq!(
        changes,
        [
            ("scout", "register"),
            ("scout", "patch"),
            ("scout", "disable"),
            ("wanderweave", "disable"),
            ("wanderweave", "enable"),
        ]
    );
    node.stop().await.unwrap();
}

async fn fleet_members(node: &Node) -> Vec<String> {
    let (_, body) = get(node, "/fleets").await;
    body["fleets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|fleet| fleet["id"] == "creative")
        .flat_map(|fleet| fleet["agents"].as_array().cloned().unwrap_or_default())
        .filter_map(|agent| agent.as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registration_survives_a_restart_and_reaches_another_process() {
    let fleet = fleet("registry-durable");
    let first = fleet.start(&ROLES).await;
    // A second process of the same deployment: its own data directory, the same broker.
    let other_data = tempfile::tempdir().unwrap();
    let mut other = fleet.config.clone();
    other.data_dir = other_data.path().to_path_buf();
    let second = Node::start(
        other.clone(),
        [("TOKEN_OPS", OPS), ("TOKEN_GPT", GPT)],
        &ROLES,
    )
    .await;

    let (status, body) = post(&first, "/agents", scout()).await;
    assert_eq!(status, 201, "{body}");
    wait_until(WAIT, "the second process sees the registration", || async {
        (get(&second, "/agents/scout").await.0 == 200).then_some(())
    })
    .await;
    second.stop().await.unwrap();
    first.stop().await.unwrap();

    // A restart reads the topic to its end before serving.
    let again = fleet.start(&ROLES).await;
    let (status, agent) = get(&again, "/agents/scout").await;
    assert_eq!(status, 200, "{agent}");
    assert_eq!(agent["registration"]["registered_by"], "ops", "{agent}");
    let (status, body) = say(&again, "scout").await;
    assert_eq!(status, 200, "{body}");
    again.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invalid_registration_is_refused_naming_the_field() {
    let fleet = fleet("registry-invalid");
    let node = fleet.start(&ROLES).await;

    let mut bad = scout();
    bad["fleet"] = json!("nowhere");
    bad["actions"] = json!(["reply", "launch_rockets"]);
    bad["model"] = json!({"temperature": 7.0});
    let (status, body) = post(&node, "/agents", bad).await;
    assert_eq!(status, 400, "{body}");
    let fields: Vec<&str> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["field"].as_str())
        .collect();
    for field in ["fleet", "actions", "model.temperature"] {
        assert!(fields.contains(&field), "{field} not named: {body}");
    }

    let mut missing = scout();
    missing.as_object_mut().unwrap().remove("tier");
    let (status, body) = post(&node, "/agents", missing).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["problems"][0]["field"], "tier", "{body}");

    let mut unknown = scout();
    unknown["colour"] = json!("red");
    let (status, body) = post(&node, "/agents", unknown).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["problems"][0]["field"], "colour", "{body}");

    // A change is checked as a registration is.
    let (status, body) = call(
        &node,
        reqwest::Method::PATCH,
        "/agents/wanderweave",
        Some(json!({"model": {"temperature": -1}})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(get(&node, "/agents/nobody").await.0, 404);
    assert_eq!(
        get(&node, "/agents/scout").await.0,
        404,
        "nothing registered"
    );
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reported_heartbeat_shows_then_goes_stale() {
    let fleet = fleet("registry-heartbeat");
    let node = fleet.start(&ROLES).await;

    let path = "/agents/wanderweave/heartbeat";
    let (status, body) = post_as(&node, GPT, path, json!({"status": "deployed", "ttl_s": 0})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post_as(&node, GPT, path, json!({"status": "asleep", "ttl_s": 5})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post_as(
        &node,
        GPT,
        "/agents/nobody/heartbeat",
        json!({"status": "active", "ttl_s": 5}),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    let (status, body) = post_as(&node, GPT, path, json!({"status": "deployed", "ttl_s": 2})).await;
    assert_eq!(status, 200, "{body}");
    let (_, agent) = get(&node, "/agents/wanderweave").await;
    assert_eq!(agent["reported"]["status"], "deployed", "{agent}");
    assert_eq!(agent["reported"]["by"], "gpt", "{agent}");
    // Beside the worker's own heartbeat.
    assert_eq!(agent["status"], "active", "{agent}");

    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (_, agent) = get(&node, "/agents/wanderweave").await;
    assert_eq!(agent["reported"]["status"], "stale", "{agent}");
    assert_eq!(agent["reported"]["reported"], "deployed", "{agent}");
    node.stop().await.unwrap();
}
