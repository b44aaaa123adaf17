//! The OpenAPI document at `/openapi.json`: it describes exactly the routes the node serves,
//! each with the scope its route declares, and schemathesis (an implementation no one here
//! wrote) finds no server error and no answer that contradicts it.

use std::path::{Path, PathBuf};
use std::process::Command;

use chatgptd_node::Role;
use chatgptd_runtime::http::{Access, Scope};
use chatgptd_testkit::http_client_with_token;
use serde_json::{Value, json};

use crate::support::fleet::Fleet;
use crate::support::node::Node;

const READER: &str = "openapi-reader";
const ADMIN: &str = "openapi-admin";

async fn node(tag: &str) -> (Fleet, Node) {
    let mut fleet = Fleet::new(tag);
    fleet.token("reader", &[Scope::Read], READER);
    fleet.token("admin", &[Scope::Admin], ADMIN);
    let node = fleet.start(&Role::ALL).await;
    (fleet, node)
}

async fn document(node: &Node) -> Value {
    let response = http_client_with_token(READER)
        .get(node.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_document_describes_every_route_with_the_scope_it_declares() {
    let (_fleet, node) = node("openapi-doc").await;
    let doc = document(&node).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["token"]["scheme"],
        "bearer"
    );

    let mut described = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            described.push((method.to_uppercase(), path.clone()));
        }
    }
    let mut declared: Vec<(String, String)> = node
        .routes
        .iter()
        .map(|route| (route.method.to_string(), route.path.clone()))
        .collect();
    described.sort();
    declared.sort();
    assert_eq!(described, declared, "every route described, nothing else");

    for route in &node.routes {
        let operation = &doc["paths"][&route.path][route.method.as_str().to_lowercase()];
        let expected = match route.access {
            Access::Public => json!([{}]),
            Access::Scope(scope) => json!([{"token": [scope.as_str()]}]),
        };
        assert_eq!(
            operation["security"], expected,
            "{} {}",
            route.method, route.path
        );
        assert!(
            operation["responses"]
                .as_object()
                .is_some_and(|r| !r.is_empty()),
            "{} {} says what it answers",
            route.method,
            route.path
        );
        if let Access::Scope(_) = route.access {
            assert!(
                operation["responses"]["401"].is_object()
                    && operation["responses"]["403"].is_object()
            );
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// `schemathesis` next to `INTEROP_PYTHON`, else in `.ci/venv` (`.ci/run` installs it).
fn schemathesis() -> PathBuf {
    let bin = std::env::var_os("INTEROP_PYTHON")
        .map(PathBuf::from)
        .and_then(|python| python.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| workspace_root().join(".ci/venv/bin"));
    let schemathesis = bin.join("schemathesis");
    assert!(
        schemathesis.exists(),
        "{} is missing: run .ci/run (it installs schemathesis into .ci/venv)",
        schemathesis.display()
    );
    schemathesis
}

/// Schemathesis against the running node, with an admin token so that every operation is
/// reached: no 5xx, and every answer matches the document (status documented, content type,
/// body schema). The event streams are left out: they never end by design.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let (_fleet, node) = node("openapi-schemathesis").await;
    let schemathesis = schemathesis();
    let reports = tempfile::tempdir().unwrap();
    let mut command = Command::new(schemathesis);
    command
        .current_dir(reports.path())
        .arg("run")
        .arg(node.url("/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {ADMIN}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--exclude-path-regex",
            "/events$",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "15",
            "--seed",
            "1",
            "--request-timeout",
            "20",
            "--workers",
            "4",
            "--no-color",
            "--suppress-health-check",
            "all",
        ]);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Its summary (operations, cases, warnings) in the test's output, for whoever reads it.
    eprintln!("{stdout}");
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
