//! What is accepted without producing: our own write-backs (integration accounts) and events
//! that are not about a ticket.

use reqwest::StatusCode;

use crate::support::*;

#[tokio::test]
async fn events_of_integration_accounts_are_ignored() {
    let setup = Setup::start().await;
    let mut options = options();
    // Case differs from the payload: GitHub logins are case-insensitive.
    options.github.integration_accounts = vec!["codertocat".into()];
    // The comment author of the Jira fixture: a comment we wrote back.
    options.jira.integration_accounts = vec!["5c5f880629be9642ba529340".into()];
    options.servicenow.integration_accounts = vec!["glide.maint".into()];
    let gateway = setup.gateway(options).await;

    for webhook in [
        Webhook::github(fixture(GITHUB_OPENED), "issues", "ours-1"),
        Webhook::jira(fixture(JIRA_COMMENT), "ours-2"),
        Webhook::servicenow(fixture(SERVICENOW_TABLE)),
    ] {
        let answer = gateway.send(&webhook).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.body["status"], "ignored");
    }
    assert_eq!(setup.record_count().await, 0);

    // Someone else's event still goes through.
    let theirs = Webhook::jira(fixture(JIRA_CREATED), "theirs-1");
    assert_eq!(gateway.send(&theirs).await.status, StatusCode::ACCEPTED);
    assert_eq!(setup.record_count().await, 1);
}

#[tokio::test]
async fn events_about_no_ticket_are_recorded_not_produced() {
    let setup = Setup::start().await;
    let gateway = setup.gateway(options()).await;

    let ping = br#"{"zen":"Design for failure.","hook_id":12345678,"hook":{"type":"Repository","events":["issues"]}}"#;
    let answer = gateway
        .send(&Webhook::github(ping.to_vec(), "ping", "ping-1"))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["status"], "recorded");
    assert_eq!(answer.body["event_type"], "ping");

    let version = br#"{"timestamp":1566935004475,"webhookEvent":"jira:version_released","version":{"id":"10000","name":"1.0"}}"#;
    let answer = gateway
        .send(&Webhook::jira(version.to_vec(), "version-1"))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["event_type"], "jira:version_released");

    assert_eq!(setup.record_count().await, 0);
}
