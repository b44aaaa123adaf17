//! Refusals: a bad or missing signature (401), an oversize body (413), malformed or
//! incomplete payloads (400), too many webhooks (429); those of the secure defaults (no
//! secret, targets not listed, records too large) are in `secure.rs`. Each answer is JSON and nothing is
//! produced.

use reqwest::StatusCode;

use crate::support::*;

#[tokio::test]
async fn bad_and_missing_signatures_are_refused() {
    let setup = Setup::start().await;
    let gateway = setup.gateway(options()).await;
    let github = Webhook::github(fixture(GITHUB_OPENED), "issues", "sig-1");
    let jira = Webhook::jira(fixture(JIRA_CREATED), "sig-2");
    let servicenow = Webhook::servicenow(fixture(SERVICENOW_RULE));
    let other_secret = chatgptd_worker_ingest::signature::sign_hex(b"not the secret", &github.body);
    let jira_signature = chatgptd_worker_ingest::signature::sign_hex(SECRET.as_bytes(), &jira.body);
    let refused = [
        github
            .clone()
            .with_header("X-Hub-Signature-256", Some(other_secret.as_str())),
        github.clone().with_header("X-Hub-Signature-256", None),
        github
            .clone()
            .with_header("X-Hub-Signature-256", Some("sha256=zz")),
        // Jira's header is X-Hub-Signature: GitHub's name does not count.
        jira.clone()
            .with_header("X-Hub-Signature", None)
            .with_header("X-Hub-Signature-256", Some(jira_signature.as_str())),
        servicenow
            .clone()
            .with_header("X-Signature", Some("c2lnbmF0dXJl")),
        servicenow.clone().with_header("X-Signature", None),
    ];
    for webhook in &refused {
        let answer = gateway.send(webhook).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{webhook:?}: {}",
            answer.body
        );
        assert_eq!(answer.body["error"], "unauthorized");
    }
    // A body changed after signing.
    let mut tampered = github.clone();
    tampered.body = String::from_utf8(tampered.body)
        .unwrap()
        .replace("Spelling error", "Spelling errors")
        .into_bytes();
    assert_eq!(
        gateway.send(&tampered).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(setup.record_count().await, 0);

    // The real signatures pass.
    for webhook in [&github, &jira, &servicenow] {
        assert_eq!(gateway.send(webhook).await.status, StatusCode::ACCEPTED);
    }
    assert_eq!(setup.record_count().await, 3);
}

#[tokio::test]
async fn an_oversize_body_gets_413() {
    let setup = Setup::start().await;
    let mut options = options();
    options.max_body_bytes = 4096;
    let gateway = setup.gateway(options).await;
    let webhook = Webhook::github(fixture(GITHUB_OPENED), "issues", "big-1");
    assert!(webhook.body.len() > 4096);
    let answer = gateway.send(&webhook).await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.body
    );
    assert_eq!(answer.body["error"], "payload_too_large");
    // The size is checked before the signature.
    let unsigned = webhook.with_header("X-Hub-Signature-256", None);
    assert_eq!(
        gateway.send(&unsigned).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(setup.record_count().await, 0);
}

#[tokio::test]
async fn malformed_json_gets_400_and_nothing_is_produced() {
    let setup = Setup::start().await;
    let gateway = setup.gateway(options()).await;
    let truncated = fixture(GITHUB_OPENED)[..500].to_vec();
    for body in [truncated, b"[1, 2, 3]".to_vec(), vec![0xff, 0xfe, b'{']] {
        let webhook = Webhook::github(body, "issues", "malformed-1");
        let answer = gateway.send(&webhook).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
        let error = answer.body["error"].as_str().unwrap();
        assert!(
            error == "malformed_json" || error == "invalid_payload",
            "{}",
            answer.body
        );
        assert!(
            answer.body["detail"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
    }
    assert_eq!(setup.record_count().await, 0);
}

#[tokio::test]
async fn payloads_without_their_ticket_or_delivery_id_get_400() {
    let setup = Setup::start().await;
    let gateway = setup.gateway(options()).await;

    let mut no_issue = fixture_json(GITHUB_OPENED);
    no_issue.as_object_mut().unwrap().remove("issue");
    let answer = gateway
        .send(&Webhook::github(
            serde_json::to_vec(&no_issue).unwrap(),
            "issues",
            "d-1",
        ))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["error"], "missing_field");
    assert!(answer.detail().contains("issue"));

    let mut no_key = fixture_json(JIRA_CREATED);
    no_key["issue"].as_object_mut().unwrap().remove("key");
    let answer = gateway
        .send(&Webhook::jira(serde_json::to_vec(&no_key).unwrap(), "d-2"))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.detail().contains("issue.key"));

    let mut no_sys_id = fixture_json(SERVICENOW_RULE);
    no_sys_id.as_object_mut().unwrap().remove("sys_id");
    let answer = gateway
        .send(&Webhook::servicenow(
            serde_json::to_vec(&no_sys_id).unwrap(),
        ))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.detail().contains("sys_id"));

    let no_delivery = Webhook::github(fixture(GITHUB_OPENED), "issues", "d-3")
        .with_header("X-GitHub-Delivery", None);
    let answer = gateway.send(&no_delivery).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["error"], "missing_header");
    assert!(answer.detail().contains("X-GitHub-Delivery"));

    let no_identifier = Webhook::jira(fixture(JIRA_CREATED), "d-4")
        .with_header("X-Atlassian-Webhook-Identifier", None);
    let answer = gateway.send(&no_identifier).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.detail().contains("X-Atlassian-Webhook-Identifier"));

    assert_eq!(setup.record_count().await, 0);
}

#[tokio::test]
async fn over_the_rate_limit_gets_429_with_retry_after() {
    let setup = Setup::start().await;
    let mut options = options();
    options.github.requests_per_second = 1;
    options.github.burst = 2;
    let gateway = setup.gateway(options).await;
    for delivery in ["rate-1", "rate-2"] {
        let webhook = Webhook::github(fixture(GITHUB_OPENED), "issues", delivery);
        assert_eq!(gateway.send(&webhook).await.status, StatusCode::ACCEPTED);
    }
    let webhook = Webhook::github(fixture(GITHUB_OPENED), "issues", "rate-3");
    let answer = gateway.send(&webhook).await;
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        answer.body
    );
    assert_eq!(answer.body["error"], "rate_limited");
    assert!(
        answer.retry_after().is_some_and(|secs| secs >= 1),
        "{:?}",
        answer.headers
    );
    // The signature is checked before the rate limit: an unsigned request is refused as
    // such, whatever the budget (see `secure.rs` for why).
    let unsigned = Webhook::github(fixture(GITHUB_OPENED), "issues", "rate-4")
        .with_header("X-Hub-Signature-256", None);
    assert_eq!(
        gateway.send(&unsigned).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(setup.record_count().await, 2);

    // Other sources have their own limit.
    let jira = Webhook::jira(fixture(JIRA_CREATED), "rate-jira-1");
    assert_eq!(gateway.send(&jira).await.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn other_methods_get_a_json_405() {
    let setup = Setup::start().await;
    let gateway = setup.gateway(options()).await;
    let response = gateway
        .client()
        .get(format!("{}/webhooks/github", gateway.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed");
}
