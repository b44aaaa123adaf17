//! MCP in and out (issue 14 §1, §2, §5), against independent implementations: the Python
//! `mcp` package's server (`mcp_tools_server.py`) whose declared tool an agent calls, and its
//! client (`mcp_client.py`) driving chatgptd's own `/mcp`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chatgptd_node::Role;
use chatgptd_runtime::http::Scope;
use chatgptd_testkit::fake_openai::{FakeOpenAi, Scripted};
use chatgptd_testkit::wait_until;
use chatgptd_types::records::ActionAudit;
use chatgptd_types::topics::names;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::support::fleet::{Fleet, WAIT, get, post};
use crate::support::node::Node;

const ROLES: [Role; 1] = [Role::Agents];

/// The Python next to `INTEROP_PYTHON`, else `.ci/venv`'s (`.ci/run` installs `mcp` there).
fn python() -> PathBuf {
    std::env::var_os("INTEROP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/venv/bin/python"))
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it")
        .join(name)
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The Python MCP server on `addr`, counting `lookup` calls in `calls`; once it answers.
async fn start_docs_server(addr: SocketAddr, calls: &Path) -> Child {
    let child = Command::new(python())
        .arg(script("mcp_tools_server.py"))
        .arg(addr.port().to_string())
        .arg(calls)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the Python MCP server starts (run .ci/run: it installs `mcp` into .ci/venv)");
    wait_until(WAIT, "the Python MCP server to listen", || async move {
        tokio::net::TcpStream::connect(addr).await.ok()
    })
    .await;
    child
}

/// How many times the Python server ran `lookup`.
fn lookups(calls: &Path) -> usize {
    std::fs::read_to_string(calls)
        .map(|text| text.lines().count())
        .unwrap_or(0)
}

/// The catalogue with server `docs` at `addr` and two actions on it (`docs_lookup`, its
/// schema from the server, and `docs_fail`), held by core-ticket-triage. The server's
/// `wipe` is declared by no action.
fn with_docs(fleet: &mut Fleet, addr: SocketAddr) {
    fleet.agents(move |file, text| match file {
        "actions.yaml" => format!(
            "mcp_servers:\n  - id: docs\n    url: http://{addr}/mcp\n    timeout: 5s\n{text}\
             \n  - id: docs_lookup\n    description: Look a topic up in the product docs.\n    risk: low\n    executor: {{kind: mcp, server: docs, tool: lookup}}\n\
             \n  - id: docs_fail\n    description: A docs tool that fails.\n    risk: low\n    executor: {{kind: mcp, server: docs, tool: fail}}\n    parameters: {{type: object, properties: {{topic: {{type: string}}}}, required: [topic], additionalProperties: false}}\n"
        ),
        "core.yaml" => {
            let held = "    actions: [reply, search_memory, write_ticket_comment, update_ticket, escalate_to_human]\n";
            assert!(text.contains(held));
            text.replacen(
                held,
                "    actions: [reply, search_memory, write_ticket_comment, update_ticket, escalate_to_human, docs_lookup, docs_fail]\n",
                1,
            )
        }
        _ => text,
    });
}

/// Sends `body` to core-ticket-triage without waiting; the message id.
async fn send(node: &Node, body: &str) -> String {
    let request = json!({"body": body, "from": "user:test", "wait": false});
    let (status, sent) = post(node, "/agents/core-ticket-triage/messages", request).await;
    assert_eq!(status, 202, "{sent}");
    sent["message"]["message_id"].as_str().unwrap().to_string()
}

async fn answer_to(node: &Node, id: &str) -> Value {
    wait_until(WAIT, "the answer", || async move {
        let (_, body) = get(node, &format!("/messages/{id}")).await;
        body["answers"].as_array().and_then(|a| a.first()).cloned()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_calls_a_declared_mcp_tool_once_waiting_while_its_server_is_down() {
    let fake = FakeOpenAi::start().await;
    fake.script([
        Scripted::when_user_contains("printer", Scripted::text("No docs tool yet.")),
        Scripted::when_user_contains(
            "broken",
            Scripted::tool_call("docs_fail", json!({"topic": "x"})),
        ),
        Scripted::when_user_contains("broken", Scripted::text("The docs tool failed.")),
    ]);
    let addr = free_addr();
    let data = tempfile::tempdir().unwrap();
    let calls = data.path().join("calls.txt");
    let mut fleet = Fleet::with_fake("mcp-client", &fake);
    with_docs(&mut fleet, addr);
    let node = fleet.start(&ROLES).await;

    // The server is down: the schema of `docs_lookup` is unknown, so it is not offered yet;
    // the model answers without it.
    let id = send(&node, "printer: how do I reset the printer?").await;
    let early = answer_to(&node, &id).await;
    assert_eq!(early["body"], "No docs tool yet.", "{early}");
    let first = fake.requests().into_iter().next().unwrap();
    assert!(
        !first.tool_names().contains(&"docs_lookup"),
        "{:?}",
        first.tool_names()
    );

    // Up: the tool is offered (never the undeclared `wipe`), the call goes through the
    // policy, the audit and the server, once.
    let mut server = start_docs_server(addr, &calls).await;
    fake.clear_log();
    fake.script([
        Scripted::when_user_contains(
            "toner",
            Scripted::tool_call("docs_lookup", json!({"topic": "toner"})),
        ),
        Scripted::when_user_contains("toner", Scripted::text("See chapter 7.")),
    ]);
    let id = send(&node, "toner: where is the toner guide?").await;
    let answer = answer_to(&node, &id).await;
    assert_eq!(answer["body"], "See chapter 7.", "{answer}");
    let offered = fake.requests()[0].tool_names().join(",");
    assert!(
        offered.contains("docs_lookup") && offered.contains("docs_fail"),
        "{offered}"
    );
    assert!(
        !offered.contains("wipe"),
        "an undeclared tool was offered: {offered}"
    );
    let results = fake.requests()[1].clone();
    let (_, result) = results.tool_results()[0];
    assert!(result.contains("docs on toner"), "{result}");
    assert_eq!(lookups(&calls), 1);

    // A tool answering isError is a failed outcome with its text.
    let id = send(&node, "broken: try the failing tool").await;
    answer_to(&node, &id).await;
    let audit: Vec<ActionAudit> = fleet.records(names::AGENT_AUDIT, 4).await;
    let failed = audit
        .iter()
        .find(|a| a.action == "docs_fail" && a.event == "failed")
        .unwrap_or_else(|| panic!("{audit:#?}"));
    // The Python server reports a raised exception as `isError` with its own text.
    let result = failed.result.as_deref().unwrap_or_default();
    assert!(result.contains("Error executing tool fail"), "{failed:?}");
    let executed: Vec<&ActionAudit> = audit
        .iter()
        .filter(|a| a.action == "docs_lookup" && a.event == "executed")
        .collect();
    assert_eq!(executed.len(), 1, "{audit:#?}");

    // Down again: a call waits as unavailable (no answer, no outcome), then runs once when
    // the server is back.
    server.kill().await.unwrap();
    server.wait().await.unwrap();
    fake.script([
        Scripted::when_user_contains(
            "paper",
            Scripted::tool_call("docs_lookup", json!({"topic": "paper"})),
        ),
        Scripted::when_user_contains("paper", Scripted::text("Paper jams: chapter 7.")),
    ]);
    let id = send(&node, "paper: paper jams?").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, pending) = get(&node, &format!("/messages/{id}")).await;
    assert_eq!(pending["answers"], json!([]), "{pending}");
    assert_eq!(lookups(&calls), 1);
    let _server = start_docs_server(addr, &calls).await;
    let answer = answer_to(&node, &id).await;
    assert_eq!(answer["body"], "Paper jams: chapter 7.", "{answer}");
    let topics = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(topics, "toner\npaper\n", "each call ran once");
    node.stop().await.unwrap();
}

/// Runs `mcp_client.py` against `url` with `token`; what it printed.
async fn python_client(url: &str, token: &str) -> Value {
    let output = Command::new(python())
        .arg(script("mcp_client.py"))
        .arg(url)
        .arg(token)
        .output()
        .await
        .expect("the Python MCP client runs (run .ci/run: it installs `mcp` into .ci/venv)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|err| panic!("{err}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_mcp_client_lists_the_fleets_tools_asks_an_agent_and_searches_memory() {
    let mut fleet = Fleet::new("mcp-server");
    fleet.token("ops", &[Scope::Admin], "ops-secret");
    fleet.token("reader", &[Scope::Read], "reader-secret");
    let node = fleet.start(&ROLES).await;
    let url = node.url("/mcp");

    let out = python_client(&url, "ops-secret").await;
    assert_eq!(
        out["tools"],
        json!([
            "ask_agent",
            "list_agents",
            "message_fleet",
            "search_memory",
            "start_workflow",
            "workflow_status"
        ]),
        "{out}"
    );
    assert_eq!(out["ask"]["is_error"], false, "{out}");
    assert!(
        !out["ask"]["text"].as_str().unwrap().is_empty(),
        "an answer from the offline model: {out}"
    );
    assert_eq!(out["search"]["is_error"], false, "{out}");
    assert!(
        out["search"]["text"].as_str().unwrap().contains("\"hits\""),
        "{out}"
    );
    assert!(
        out["without_token"]
            .as_str()
            .unwrap()
            .starts_with("refused"),
        "{out}"
    );
    assert_eq!(out["without_token_status"], 401, "{out}");

    // A read-only token is not offered what sends, and cannot call it.
    let out = python_client(&url, "reader-secret").await;
    assert_eq!(
        out["tools"],
        json!(["list_agents", "search_memory", "workflow_status"]),
        "{out}"
    );
    assert_eq!(out["ask"]["is_error"], true, "{out}");
    assert!(
        out["ask"]["text"]
            .as_str()
            .unwrap()
            .contains("`send` scope"),
        "{out}"
    );
    node.stop().await.unwrap();
}

/// `config check` with a registry directory declaring `docs` at `addr`: `docs_lookup`
/// (a tool the server has) and `docs_missing` (one it does not).
fn config_check(dir: &Path, addr: SocketAddr) -> std::process::Output {
    let agents = dir.join("agents");
    std::fs::create_dir_all(&agents).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("agents");
    for entry in std::fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        if path.ends_with("actions.yaml") {
            text = format!(
                "mcp_servers:\n  - id: docs\n    url: http://{addr}/mcp\n{text}\
                 \n  - id: docs_lookup\n    description: Look a topic up.\n    risk: low\n    executor: {{kind: mcp, server: docs, tool: lookup}}\n\
                 \n  - id: docs_missing\n    description: A tool the server lacks.\n    risk: low\n    executor: {{kind: mcp, server: docs, tool: nothing_here}}\n"
            );
        }
        std::fs::write(agents.join(path.file_name().unwrap()), text).unwrap();
    }
    let config = dir.join("chatgptd.toml");
    std::fs::write(
        &config,
        format!(
            "[agents]\nregistry_dir = {:?}\n",
            agents.display().to_string()
        ),
    )
    .unwrap();
    crate::support::chatgptd()
        .arg("--config")
        .arg(&config)
        .args(["config", "check"])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_confirms_declared_mcp_tools_with_their_server() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();

    // Down: nothing can be confirmed, which is said, and is no problem of the files.
    let output = config_check(dir.path(), addr);
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("docs_lookup: lookup not confirmed"),
        "{stdout}"
    );

    // Up: the tool it lacks is a problem; the one it has is listed.
    let _server = start_docs_server(addr, &dir.path().join("calls.txt")).await;
    let output = config_check(dir.path(), addr);
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("docs_lookup: lookup (listed by the server)"),
        "{stdout}"
    );
    assert!(
        stderr.contains("does not list the tool `nothing_here` of action `docs_missing`"),
        "{stderr}"
    );
}
