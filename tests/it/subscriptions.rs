//! Webhook subscriptions on the real node: a loopback receiver gets every matching record
//! once, signed as Standard Webhooks says (checked by the `standardwebhooks` package), gets
//! its backlog after an outage, and nothing after it unsubscribed; a receiver that never
//! answers ends in the dead-letter topic.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chatgptd_node::Role;
use chatgptd_testkit::wait_until;
use chatgptd_types::records::DeadLetter;
use chatgptd_types::topics::names;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::support::fleet::{Fleet, get, post};
use crate::support::node::Node;

/// What a receiver was sent: the three Standard Webhooks headers and the body.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

type Inbox = Arc<Mutex<Vec<Received>>>;

/// A receiver on `addr` that takes every delivery (200).
async fn receiver(addr: SocketAddr, inbox: Inbox) -> JoinHandle<()> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(addr).unwrap();
    let listener = socket.listen(64).unwrap();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(take))
        .with_state(inbox);
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    })
}

/// Takes a delivery and closes the connection: a receiver stopped later must be down, not
/// still answering on a kept-alive connection.
async fn take(
    State(inbox): State<Inbox>,
    headers: HeaderMap,
    body: Bytes,
) -> impl axum::response::IntoResponse {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    inbox.lock().unwrap().push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8(body.to_vec()).unwrap(),
    });
    ([(axum::http::header::CONNECTION, "close")], StatusCode::OK)
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The Python next to `INTEROP_PYTHON`, else `.ci/venv`'s (`.ci/run` installs
/// `standardwebhooks` there).
fn python() -> PathBuf {
    std::env::var_os("INTEROP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/venv/bin/python"))
}

/// Verifies every delivery with the `standardwebhooks` package; the verified types.
fn verify(secret: &str, received: &[Received]) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/verify_webhook.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python with standardwebhooks (run .ci/run)");
    let mut stdin = child.stdin.take().unwrap();
    for delivery in received {
        let line = json!({
            "secret": secret,
            "headers": {
                "webhook-id": delivery.id,
                "webhook-timestamp": delivery.timestamp,
                "webhook-signature": delivery.signature,
            },
            "body": delivery.body,
        });
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "standardwebhooks refused a delivery: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

async fn delete(node: &Node, path: &str) -> u16 {
    let response = node.client().delete(node.url(path)).send().await.unwrap();
    response.status().as_u16()
}

/// The runs of the deliveries in `inbox`, in arrival order.
fn runs(inbox: &Inbox) -> Vec<String> {
    inbox
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            r.json()["data"]["value"]["run_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

async fn received(inbox: &Inbox, count: usize) {
    wait_until(Duration::from_secs(30), "the deliveries", || async {
        (inbox.lock().unwrap().len() >= count).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_gets_matching_records_once_signed_and_its_backlog_after_an_outage() {
    let mut fleet = Fleet::new("subs-deliver");
    fleet.config.subscriptions.request_timeout = Duration::from_secs(2);
    fleet.config.subscriptions.backoff.initial = Duration::from_millis(100);
    fleet.config.subscriptions.backoff.max = Duration::from_millis(500);
    let node = fleet.start(&[Role::Subscriptions]).await;
    let addr = free_addr();
    let inbox = Inbox::default();
    let server = receiver(addr, Arc::clone(&inbox)).await;

    // Invalid subscriptions are refused with a JSON reason.
    for bad in [
        json!({"topics": ["workflows.steps"], "url": "ftp://127.0.0.1/hook"}),
        json!({"topics": ["chatgptd.deadletter"], "url": format!("http://{addr}/hook")}),
        json!({"url": format!("http://{addr}/hook")}),
        json!({"topics": ["workflows.steps"], "url": format!("http://{addr}/hook"), "secret": "nope"}),
    ] {
        let (status, body) = post(&node, "/subscriptions", bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }

    let (status, created) = post(
        &node,
        "/subscriptions",
        json!({"topics": ["workflows.steps"], "run": "r-sub", "url": format!("http://{addr}/hook")}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["subscription"]["id"].as_str().unwrap().to_string();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    // The secret is shown once, never listed.
    let (_, listed) = get(&node, "/subscriptions").await;
    assert_eq!(listed["subscriptions"][0]["id"], id.as_str(), "{listed}");
    assert!(!listed.to_string().contains(&secret), "{listed}");

    for step in ["a", "b", "c"] {
        fleet.send_step("r-sub", "research", step, "execute").await;
        fleet
            .send_step("r-other", "research", step, "execute")
            .await;
    }
    received(&inbox, 3).await;
    // Once: nothing more arrives (and nothing of the other run).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(runs(&inbox), ["r-sub", "r-sub", "r-sub"]);
    let first: Vec<Received> = inbox.lock().unwrap().clone();
    let mut ids: Vec<&str> = first.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "one webhook id per record");
    assert_eq!(verify(&secret, &first), ["chatgptd.WorkflowStep"; 3]);
    // A delivery signed with another secret does not verify: the check can fail.
    let forged = Received {
        signature: chatgptd_worker_subscriptions::sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            &first[0].id,
            first[0].timestamp.parse().unwrap(),
            &first[0].body,
        )
        .unwrap(),
        ..first[0].clone()
    };
    let refused = std::panic::catch_unwind(|| verify(&secret, &[forged]));
    assert!(refused.is_err(), "a forged signature verified");

    // The receiver goes down; records keep coming; they are retried, not lost.
    server.abort();
    let _ = server.await;
    fleet.send_step("r-sub", "research", "d", "execute").await;
    fleet.send_step("r-sub", "research", "e", "execute").await;
    wait_until(Duration::from_secs(30), "a delivery retried", || {
        let node = &node;
        let id = id.clone();
        async move {
            let (_, detail) = get(node, &format!("/subscriptions/{id}")).await;
            detail["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["status"] == "retrying" && d["attempts"].as_u64() > Some(1))
                .then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(inbox.lock().unwrap().len(), 3);

    // Back up: the backlog arrives.
    let server = receiver(addr, Arc::clone(&inbox)).await;
    received(&inbox, 5).await;
    let all: Vec<Received> = inbox.lock().unwrap().clone();
    let steps: Vec<String> = all
        .iter()
        .map(|r| {
            r.json()["data"]["value"]["step_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(steps.len(), 5, "{steps:?}");
    assert!(steps[3..].contains(&"d".to_string()) && steps[3..].contains(&"e".to_string()));
    assert_eq!(verify(&secret, &all[3..]).len(), 2);
    let (_, detail) = get(&node, &format!("/subscriptions/{id}")).await;
    let delivered = detail["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "delivered")
        .count();
    assert_eq!(delivered, 5, "{detail}");

    // Unsubscribed: nothing more.
    assert_eq!(delete(&node, &format!("/subscriptions/{id}")).await, 204);
    assert_eq!(delete(&node, &format!("/subscriptions/{id}")).await, 404);
    let (status, _) = get(&node, &format!("/subscriptions/{id}")).await;
    assert_eq!(status, 404);
    fleet.send_step("r-sub", "research", "f", "execute").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(inbox.lock().unwrap().len(), 5);
    server.abort();
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_that_never_answers_ends_in_the_dead_letter() {
    let mut fleet = Fleet::new("subs-dead");
    fleet.config.subscriptions.request_timeout = Duration::from_millis(500);
    fleet.config.subscriptions.dead_letter_after = Duration::from_secs(3);
    fleet.config.subscriptions.backoff.initial = Duration::from_millis(100);
    fleet.config.subscriptions.backoff.max = Duration::from_millis(500);
    let node = fleet.start(&[Role::Subscriptions]).await;

    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });

    let (status, created) = post(
        &node,
        "/subscriptions",
        json!({"kinds": ["WorkflowStep"], "url": format!("http://{addr}/hook")}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["subscription"]["id"].as_str().unwrap().to_string();
    fleet
        .send_step("r-dead", "research", "plan", "execute")
        .await;

    let letters: Vec<DeadLetter> = wait_until(Duration::from_secs(30), "the dead letter", || {
        let fleet = &fleet;
        async move {
            let letters: Vec<DeadLetter> = fleet
                .records::<DeadLetter>(names::DEAD_LETTER, 1)
                .await
                .into_iter()
                .filter(|l| l.worker == "subscriptions")
                .collect();
            (!letters.is_empty()).then_some(letters)
        }
    })
    .await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter.source_topic, names::WORKFLOW_STEPS);
    assert_eq!(letter.error_class, "webhook_undelivered");
    assert!(
        letter.error_message.contains(&id),
        "{}",
        letter.error_message
    );
    assert_eq!(
        letter.headers.get("subscription").map(|v| v.to_vec()),
        Some(id.clone().into_bytes())
    );
    assert!(letter.attempts > 1, "retried before giving up: {letter:?}");
    let (_, detail) = get(&node, &format!("/subscriptions/{id}")).await;
    assert_eq!(
        detail["deliveries"][0]["status"], "dead_lettered",
        "{detail}"
    );
    silent.abort();
    node.stop().await.unwrap();
}
