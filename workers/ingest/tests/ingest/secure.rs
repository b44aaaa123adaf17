//! Secure by default (issue 11): a source without a secret refuses webhooks unless it allows
//! unsigned ones; signatures are checked before the rate limit; only configured targets are
//! accepted; a record the broker would refuse is a 413, not a 503 retried forever.

use chatgptd_worker_ingest::Source;
use reqwest::StatusCode;

use crate::support::*;

#[tokio::test]
async fn a_source_without_a_secret_refuses_webhooks_and_says_how_to_fix_it() {
    let setup = Setup::start().await;
    let gateway = setup.unsigned_gateway(options()).await;
    let github = Webhook::github(fixture(GITHUB_OPENED), "issues", "no-secret-1");
    // Signed or not: with no secret there is nothing to check a signature against.
    for webhook in [
        github.clone().with_header("X-Hub-Signature-256", None),
        github,
    ] {
        let answer = gateway.send(&webhook).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
        assert_eq!(answer.body["error"], "signature_required");
        let detail = answer.body["detail"].as_str().unwrap();
        assert!(
            detail.contains("ingest.github.secret_env")
                && detail.contains("ingest.github.allow_unsigned = true"),
            "{detail}"
        );
    }
    let jira = Webhook::jira(fixture(JIRA_CREATED), "no-secret-2");
    let answer = gateway.send(&jira).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    assert!(answer.detail().contains("ingest.jira.secret_env"));
    assert_eq!(setup.record_count().await, 0);
}

#[tokio::test]
async fn allow_unsigned_accepts_unsigned_webhooks_of_that_source_only() {
    let setup = Setup::start().await;
    let mut options = options();
    options.github.allow_unsigned = true;
    let gateway = setup.unsigned_gateway(options).await;
    let unsigned = Webhook::github(fixture(GITHUB_OPENED), "issues", "unsigned-ok-1")
        .with_header("X-Hub-Signature-256", None);
    let answer = gateway.send(&unsigned).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);

    let jira = Webhook::jira(fixture(JIRA_CREATED), "unsigned-jira-1")
        .with_header("X-Hub-Signature", None);
    assert_eq!(gateway.send(&jira).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(setup.record_count().await, 1);
}

#[tokio::test]
async fn allow_unsigned_does_not_weaken_a_configured_secret() {
    let setup = Setup::start().await;
    let mut options = options();
    options.github.allow_unsigned = true;
    let gateway = setup.gateway(options).await;
    let unsigned = Webhook::github(fixture(GITHUB_OPENED), "issues", "unsigned-no-1")
        .with_header("X-Hub-Signature-256", None);
    assert_eq!(
        gateway.send(&unsigned).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(setup.record_count().await, 0);
}

#[tokio::test]
async fn an_unsigned_flood_does_not_spend_the_signed_senders_budget() {
    let setup = Setup::start().await;
    let mut options = options();
    options.github.requests_per_second = 1;
    options.github.burst = 2;
    let gateway = setup.gateway(options).await;
    for n in 0..10 {
        let unsigned = Webhook::github(fixture(GITHUB_OPENED), "issues", &format!("flood-{n}"))
            .with_header("X-Hub-Signature-256", None);
        assert_eq!(
            gateway.send(&unsigned).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    for delivery in ["signed-1", "signed-2"] {
        let signed = Webhook::github(fixture(GITHUB_OPENED), "issues", delivery);
        let answer = gateway.send(&signed).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    }
    assert_eq!(setup.record_count().await, 2);
}

#[tokio::test]
async fn a_signed_event_about_a_target_not_configured_gets_403() {
    let setup = Setup::start().await;
    let gateway = setup.gateway(options()).await;

    let mut elsewhere = fixture_json(GITHUB_OPENED);
    elsewhere["repository"]["full_name"] = "victim/private-repo".into();
    let webhook = Webhook::github(
        serde_json::to_vec(&elsewhere).unwrap(),
        "issues",
        "forbid-1",
    );
    let answer = gateway.send(&webhook).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    assert_eq!(answer.body["error"], "target_not_allowed");
    let detail = answer.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("victim/private-repo") && detail.contains("ingest.github.repositories"),
        "{detail}"
    );

    let mut other_project = fixture_json(JIRA_CREATED);
    other_project["issue"]["key"] = "SECRET-1".into();
    let webhook = Webhook::jira(serde_json::to_vec(&other_project).unwrap(), "forbid-2");
    let answer = gateway.send(&webhook).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    assert!(answer.detail().contains("ingest.jira.projects"));
    assert_eq!(setup.record_count().await, 0);
    // Refused before the dedupe claim: once configured, the same delivery goes through.
    assert_eq!(
        setup.memory.get("dedupe:github:forbid-1").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn no_targets_accepts_none_and_a_star_accepts_any() {
    let setup = Setup::start().await;
    let mut options = options();
    options.github.repositories = Vec::new();
    options.jira.projects = vec!["*".into()];
    let gateway = setup.gateway(options).await;
    let github = Webhook::github(fixture(GITHUB_OPENED), "issues", "targets-1");
    assert_eq!(gateway.send(&github).await.status, StatusCode::FORBIDDEN);
    let jira = Webhook::jira(fixture(JIRA_CREATED), "targets-2");
    assert_eq!(gateway.send(&jira).await.status, StatusCode::ACCEPTED);
    // ServiceNow names no target: its signature is its only check.
    let servicenow = Webhook::servicenow(fixture(SERVICENOW_RULE));
    assert_eq!(gateway.send(&servicenow).await.status, StatusCode::ACCEPTED);
    assert_eq!(setup.record_count().await, 2);
}

#[tokio::test]
async fn a_body_whose_record_exceeds_the_producer_limit_gets_413_not_503() {
    let setup = Setup::start().await;
    let gateway = setup.gateway(options()).await;
    // Under the 1 MiB body limit, but the record holds the description and the raw body:
    // about twice that, above librdkafka's default message.max.bytes (1,000,000).
    let mut payload = fixture_json(GITHUB_OPENED);
    payload["issue"]["body"] = "x".repeat(600_000).into();
    let webhook = Webhook::github(serde_json::to_vec(&payload).unwrap(), "issues", "huge-1");
    assert!(webhook.body.len() < options().max_body_bytes);
    let answer = gateway.send(&webhook).await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.body
    );
    assert_eq!(answer.body["error"], "record_too_large");
    assert!(answer.retry_after().is_none(), "retrying cannot help");
    assert!(answer.detail().contains("message.max.bytes"));
    assert_eq!(setup.record_count().await, 0);
    assert_eq!(
        setup
            .memory
            .get(&format!("dedupe:{}:huge-1", Source::GitHub.as_str()))
            .await
            .unwrap(),
        None,
        "nothing claimed"
    );
}
