//! Plugins for what agents can do (issue 14 §3, §4): declared HTTP actions and GitHub's
//! REST API, executed through the same policy, approvals, ledger and audit as every action.
//! The real node on the mock cluster, the fake model proposing the calls, a loopback
//! receiver for the HTTP actions and the testkit's fake GitHub.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use chatgptd_node::Role;
use chatgptd_testkit::fake_openai::{FakeOpenAi, Scripted, ScriptedCall};
use chatgptd_testkit::fake_trackers::{Api, FakeTrackers, GITHUB_TOKEN};
use chatgptd_testkit::wait_until;
use chatgptd_types::records::{ActionAudit, AgentMessage, ApprovalRequest};
use chatgptd_types::topics::names;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::fleet::{Fleet, WAIT, get, post};
use crate::support::node::Node;

const ROLES: [Role; 1] = [Role::Agents];

/// The signing key the receiver shares with the deployment.
const SIGNING_KEY: &str = "whsec-test-signing-key";
const ACTIONS_TOKEN: &str = "actions-token-test";

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
    answered: u16,
}

/// A loopback HTTP receiver that answers with the statuses it is given, in turn (then
/// 201), and records every request.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(statuses: Vec<u16>) -> Receiver {
        let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script = Arc::new(Mutex::new(statuses.into_iter()));
        let recorded = seen.clone();
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let (recorded, script) = (recorded.clone(), script.clone());
                async move {
                    let status = script.lock().unwrap().next().unwrap_or(201);
                    recorded.lock().unwrap().push(Received {
                        path: uri.path().to_string(),
                        headers,
                        body,
                        answered: status,
                    });
                    let mut response = axum::response::IntoResponse::into_response((
                        StatusCode::from_u16(status).unwrap(),
                        axum::Json(json!({"accepted": status < 300})),
                    ));
                    if status == 503 {
                        response
                            .headers_mut()
                            .insert("retry-after", "1".parse().unwrap());
                    }
                    response
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, seen }
    }

    fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }
}

/// The fleet with `fake` as the model, the declared actions' endpoint at `receiver` and
/// GitHub at `github`, their secrets as a deployment's environment would hold them.
fn fleet(
    tag: &str,
    fake: &FakeOpenAi,
    receiver: Option<&Receiver>,
    github: Option<&FakeTrackers>,
) -> Fleet {
    let mut fleet = Fleet::with_fake(tag, fake);
    if let Some(receiver) = receiver {
        fleet.secret("ACTIONS_BASE_URL", &receiver.url);
        fleet.secret("ACTIONS_TOKEN", ACTIONS_TOKEN);
        fleet.secret("ACTIONS_SIGNING_KEY", SIGNING_KEY);
    }
    if let Some(github) = github {
        fleet.secret("GITHUB_API_URL", &github.github_url());
        fleet.secret("GITHUB_TOKEN", GITHUB_TOKEN);
    }
    fleet
}

/// Sends `body` to `agent` without waiting; the message id.
async fn send(node: &Node, agent: &str, body: &str) -> String {
    let request = json!({"body": body, "from": "user:test", "wait": false});
    let (status, sent) = post(node, &format!("/agents/{agent}/messages"), request).await;
    assert_eq!(status, 202, "{sent}");
    sent["message"]["message_id"].as_str().unwrap().to_string()
}

/// The answer to message `id`, once there is one.
async fn answer_to(node: &Node, id: &str) -> Value {
    wait_until(WAIT, "the answer", || async move {
        let (_, body) = get(node, &format!("/messages/{id}")).await;
        body["answers"].as_array().and_then(|a| a.first()).cloned()
    })
    .await
}

/// The one pending approval, once there is one.
async fn pending(node: &Node) -> ApprovalRequest {
    wait_until(WAIT, "an approval request", || async move {
        let (_, body) = get(node, "/approvals?state=pending").await;
        let list: Vec<ApprovalRequest> = serde_json::from_value(body["approvals"].clone()).ok()?;
        list.into_iter().next()
    })
    .await
}

async fn approve(node: &Node, approval: &ApprovalRequest) {
    let path = format!("/approvals/{}/approve", approval.id);
    let (status, body) = post(node, &path, json!({"reason": "reviewed"})).await;
    assert_eq!(status, 200, "{body}");
}

/// The audit events of `action`, in the order they happened.
fn events(audit: &[ActionAudit], action: &str) -> Vec<String> {
    let mut mine: Vec<&ActionAudit> = audit.iter().filter(|a| a.action == action).collect();
    mine.sort_by_key(|a| a.at_ms);
    mine.iter().map(|a| a.event.clone()).collect()
}

/// What the model read as the result of its call, in its second turn.
fn second_turn_result(fake: &FakeOpenAi) -> String {
    let requests = fake.requests();
    assert!(
        requests.len() >= 2,
        "the model was asked {} times",
        requests.len()
    );
    let results = requests[1].tool_results();
    results
        .iter()
        .map(|(_, r)| r.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `publish_content` is a declared HTTP action: approved, it reaches the receiver with the
/// action's id as its idempotency key and a body signed with the deployment's key (checked
/// here with the `hmac` crate, not chatgptd's code). The receiver's first answer is a 503:
/// the call waits, then goes again with the same key and succeeds, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approved_http_action_is_signed_keyed_and_waits_out_a_503() {
    let fake = FakeOpenAi::start().await;
    let post_body = "Steam rises over Shilin at dusk.";
    fake.script([
        Scripted::tool_call(
            "publish_content",
            json!({"channel": "blog", "title": "Taipei after dark", "body": post_body}),
        ),
        Scripted::text("Published."),
    ]);
    let receiver = Receiver::start(vec![503]).await;
    let fleet = fleet("plugins-http", &fake, Some(&receiver), None);
    let node = fleet.start(&ROLES).await;
    let id = send(&node, "showbuilder", "publish the Taipei piece").await;
    let approval = pending(&node).await;
    assert_eq!(approval.action, "publish_content");
    assert!(
        receiver.seen().is_empty(),
        "nothing is sent before approval"
    );
    approve(&node, &approval).await;

    let answer = answer_to(&node, &id).await;
    assert_eq!(answer["body"], "Published.", "{answer}");
    let seen = receiver.seen();
    let answered: Vec<u16> = seen.iter().map(|r| r.answered).collect();
    assert_eq!(answered, [503, 201], "{seen:?}");
    for request in &seen {
        assert_eq!(request.path, "/publish");
        let header = |name: &str| request.headers.get(name).unwrap().to_str().unwrap();
        // The same key on the retry: the receiver can apply the call once.
        assert_eq!(header("idempotency-key"), approval.action_id);
        assert_eq!(header("x-chatgptd-token"), ACTIONS_TOKEN);
        assert_eq!(header("content-type"), "application/json");
        let mut mac = Hmac::<Sha256>::new_from_slice(SIGNING_KEY.as_bytes()).unwrap();
        mac.update(&request.body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(header("x-chatgptd-signature"), expected);
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            body,
            json!({
                "channel": "blog",
                "title": "Taipei after dark",
                "body": post_body,
                "requested_by": "showbuilder",
                "action_id": approval.action_id,
            })
        );
    }
    assert!(second_turn_result(&fake).contains("HTTP 201"));
    let audit: Vec<ActionAudit> = fleet.records(names::AGENT_AUDIT, 4).await;
    assert_eq!(
        events(&audit, "publish_content"),
        ["decided", "approval_requested", "approved", "executed"]
    );
    node.stop().await.unwrap();
}

/// A declared action whose secrets are not set does nothing and says which is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_http_action_without_its_endpoint_is_refused_naming_the_secret() {
    let fake = FakeOpenAi::start().await;
    fake.script([
        Scripted::tool_call(
            "publish_content",
            json!({"channel": "blog", "title": "t", "body": "b"}),
        ),
        Scripted::text("Not published."),
    ]);
    let fleet = fleet("plugins-http-unset", &fake, None, None);
    let node = fleet.start(&ROLES).await;
    let id = send(&node, "showbuilder", "publish it").await;
    approve(&node, &pending(&node).await).await;
    answer_to(&node, &id).await;
    let result = second_turn_result(&fake);
    assert!(result.contains("no executor"), "{result}");
    assert!(result.contains("ACTIONS_BASE_URL is not set"), "{result}");
    node.stop().await.unwrap();
}

/// A file, an issue with its comments and a code search read from GitHub reach the model in
/// its next turn; GitHub's rate limit on the first try makes the call wait for the reset,
/// not fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_read_from_github_reaches_the_model_after_a_rate_limit() {
    let github = FakeTrackers::start().await;
    github.add_github_repo("acme", "site", "main");
    let policy = "TLS 1.0 and 1.1 are disabled on every public endpoint.";
    github.add_github_file("acme", "site", "main", "docs/tls.md", policy);
    github.add_github_issue("acme", "site", 7);
    github.add_github_comment("acme", "site", 7, "Scanner still sees TLS 1.0 on api.");
    github.rate_limit_github(1, Duration::from_secs(1));
    let fake = FakeOpenAi::start().await;
    fake.script([
        Scripted::tool_calls([
            ScriptedCall::new(
                "github_read_file",
                json!({"repository": "acme/site", "path": "docs/tls.md"}),
            ),
            ScriptedCall::new(
                "github_read_issue",
                json!({"repository": "acme/site", "number": 7}),
            ),
            ScriptedCall::new(
                "github_search_code",
                json!({"query": "tls disabled", "repository": "acme/site"}),
            ),
        ]),
        Scripted::text("Read it."),
    ]);
    let fleet = fleet("plugins-gh-read", &fake, None, Some(&github));
    let node = fleet.start(&ROLES).await;
    let id = send(&node, "shield-core", "check our TLS policy").await;
    let answer = answer_to(&node, &id).await;
    assert_eq!(answer["body"], "Read it.", "{answer}");
    let result = second_turn_result(&fake);
    assert!(result.contains(policy), "{result}");
    assert!(result.contains("Scanner still sees TLS 1.0"), "{result}");
    assert!(result.contains("acme/site:docs/tls.md"), "{result}");
    assert_eq!(fake.request_count(), 2, "the model was not asked again");

    let calls = github.calls_to(Api::GitHub);
    let statuses: Vec<u16> = calls.iter().map(|c| c.status).collect();
    let lines = chatgptd_testkit::fake_trackers::lines(&calls);
    assert_eq!(statuses, [403, 200, 200, 200, 200], "{lines:?}");
    assert_eq!(
        calls[4].query_param("q"),
        Some("tls disabled repo:acme/site")
    );
    assert_eq!(calls[1].path, "/repos/acme/site/contents/docs/tls.md");
    assert_eq!(
        calls[1].header("authorization"),
        Some(format!("Bearer {GITHUB_TOKEN}").as_str())
    );
    let audit: Vec<ActionAudit> = fleet.records(names::AGENT_AUDIT, 6).await;
    for action in [
        "github_read_file",
        "github_read_issue",
        "github_search_code",
    ] {
        assert_eq!(events(&audit, action), ["decided", "executed"], "{action}");
    }
    node.stop().await.unwrap();
}

/// Opening a pull request waits for approval; approved, it commits the files to a branch
/// named after the action and opens one pull request. The answer to its creation is lost
/// (the effect happened, the worker saw a 502), so the record is tried again: the retry
/// finds the branch, the file and the pull request, and opens no second one. Delivered again
/// afterwards, the message and its decision replay what the ledger recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approved_pull_request_opens_once_across_a_lost_answer() {
    let github = FakeTrackers::start().await;
    github.add_github_repo("acme", "site", "main");
    github.add_github_file(
        "acme",
        "site",
        "main",
        "config/tls.yaml",
        "min_version: 1.0\n",
    );
    github.lose_next_answer(Api::GitHub, "POST", "/repos/acme/site/pulls", 502);
    let fake = FakeOpenAi::start().await;
    let fixed = "min_version: 1.2\n";
    fake.script([
        Scripted::tool_call(
            "github_open_pull_request",
            json!({
                "repository": "acme/site",
                "title": "Require TLS 1.2",
                "body": "Audit finding A-3: TLS 1.0 still accepted.",
                "files": [{"path": "config/tls.yaml", "content": fixed}],
            }),
        ),
        Scripted::text("Proposed the fix."),
    ]);
    let fleet = fleet("plugins-gh-pr", &fake, None, Some(&github));
    let node = fleet.start(&ROLES).await;
    let id = send(&node, "shield-core", "fix the TLS finding").await;
    let approval = pending(&node).await;
    assert_eq!(approval.action, "github_open_pull_request");
    assert!(
        github.calls_to(Api::GitHub).is_empty(),
        "nothing before approval"
    );
    approve(&node, &approval).await;

    let answer = answer_to(&node, &id).await;
    assert_eq!(answer["body"], "Proposed the fix.", "{answer}");
    let branch = format!("chatgptd-{}", approval.action_id);
    let pulls = github.github_pulls("acme", "site");
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    assert_eq!(pulls[0]["head"]["ref"], branch.as_str());
    assert_eq!(pulls[0]["base"]["ref"], "main");
    assert_eq!(pulls[0]["title"], "Require TLS 1.2");
    assert_eq!(
        github
            .github_file("acme", "site", &branch, "config/tls.yaml")
            .as_deref(),
        Some(fixed)
    );
    assert_eq!(
        github
            .github_file("acme", "site", "main", "config/tls.yaml")
            .as_deref(),
        Some("min_version: 1.0\n"),
        "the base is untouched"
    );
    let calls = github.calls_to(Api::GitHub);
    let lines = chatgptd_testkit::fake_trackers::lines(&calls);
    let count = |line: &str| lines.iter().filter(|l| *l == line).count();
    assert_eq!(count("POST /repos/acme/site/pulls"), 1, "{lines:?}");
    assert_eq!(count("POST /repos/acme/site/git/refs"), 1, "{lines:?}");
    assert_eq!(
        count("PUT /repos/acme/site/contents/config/tls.yaml"),
        1,
        "{lines:?}"
    );
    let result = second_turn_result(&fake);
    assert!(result.contains("pull request #1"), "{result}");

    let messages: Vec<AgentMessage> = fleet.records(names::AGENT_MESSAGES, 3).await;
    let again = messages
        .iter()
        .filter(|m| m.id == id || m.kind == "approval");
    for message in again.cloned().collect::<Vec<_>>() {
        fleet
            .produce(names::AGENT_MESSAGES, &message.to, &message)
            .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(github.github_pulls("acme", "site").len(), 1);
    let after = chatgptd_testkit::fake_trackers::lines(&github.calls_to(Api::GitHub));
    assert_eq!(after, lines, "nothing was called again");
    let audit: Vec<ActionAudit> = fleet.records(names::AGENT_AUDIT, 4).await;
    assert_eq!(
        events(&audit, "github_open_pull_request"),
        ["decided", "approval_requested", "approved", "executed"]
    );
    node.stop().await.unwrap();
}

/// An answer the declaration classes as `fail` (spend_budget: any 4xx) ends the call once:
/// the receiver is reached once, the model reads why, and nothing is tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rejected_http_action_fails_once_and_the_model_is_told() {
    let fake = FakeOpenAi::start().await;
    fake.script([
        Scripted::tool_call(
            "spend_budget",
            json!({"amount": 240, "currency": "EUR", "purpose": "two nights in Porto"}),
        ),
        Scripted::text("The booking was refused."),
    ]);
    let receiver = Receiver::start(vec![422]).await;
    let fleet = fleet("plugins-http-fail", &fake, Some(&receiver), None);
    let node = fleet.start(&ROLES).await;
    let id = send(&node, "hotel-optimizer-x", "book the Porto hotel").await;
    let approval = pending(&node).await;
    approve(&node, &approval).await;
    let answer = answer_to(&node, &id).await;
    assert_eq!(answer["body"], "The booking was refused.", "{answer}");
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/spend");
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body["amount"], 240, "a number stays a number: {body}");
    let result = second_turn_result(&fake);
    assert!(result.starts_with("failed: HTTP 422"), "{result}");
    let audit: Vec<ActionAudit> = fleet.records(names::AGENT_AUDIT, 4).await;
    assert_eq!(
        events(&audit, "spend_budget"),
        ["decided", "approval_requested", "approved", "failed"]
    );
    node.stop().await.unwrap();
}
