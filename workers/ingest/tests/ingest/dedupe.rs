//! Redeliveries change nothing: the same delivery id gets 200 `duplicate`, and the topic
//! still holds one record, also when the redelivery reaches another gateway replica.

use std::sync::Arc;

use chatgptd_memory::{Memory, MemoryOptions};
use chatgptd_testkit::redis::RedisServer;
use chatgptd_types::Secrets;
use reqwest::StatusCode;

use crate::support::*;

#[tokio::test]
async fn a_redelivered_webhook_changes_nothing() {
    let setup = Setup::start().await;
    let gateway = setup.gateway(options()).await;
    let webhook = Webhook::github(fixture(GITHUB_OPENED), "issues", "delivery-1");

    let first = gateway.send(&webhook).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    for _ in 0..2 {
        let again = gateway.send(&webhook).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.body);
        assert_eq!(again.body["status"], "duplicate");
        assert_eq!(again.body["event_id"], first.body["event_id"]);
    }
    assert_eq!(setup.record_count().await, 1);

    // Another delivery of the same ticket is a new event.
    let next = Webhook::github(fixture(GITHUB_OPENED), "issues", "delivery-2");
    assert_eq!(gateway.send(&next).await.status, StatusCode::ACCEPTED);
    assert_eq!(setup.record_count().await, 2);
}

#[tokio::test]
async fn jira_retries_and_servicenow_updates_are_deduplicated_by_their_own_ids() {
    let setup = Setup::start().await;
    let gateway = setup.gateway(options()).await;

    // Jira's retry: the same identifier, a retry counter.
    let jira = Webhook::jira(fixture(JIRA_UPDATED), "jira-retry-1");
    assert_eq!(gateway.send(&jira).await.status, StatusCode::ACCEPTED);
    let retry = jira
        .clone()
        .with_header("X-Atlassian-Webhook-Retry", Some("1"));
    assert_eq!(gateway.send(&retry).await.body["status"], "duplicate");

    // ServiceNow: the same sys_id and sys_updated_on is the same update.
    let servicenow = Webhook::servicenow(fixture(SERVICENOW_RULE));
    assert_eq!(gateway.send(&servicenow).await.status, StatusCode::ACCEPTED);
    assert_eq!(gateway.send(&servicenow).await.body["status"], "duplicate");
    let mut later = fixture_json(SERVICENOW_RULE);
    later["sys_updated_on"] = "2015-11-01 22:40:00".into();
    let later = Webhook::servicenow(serde_json::to_vec(&later).unwrap());
    assert_eq!(gateway.send(&later).await.status, StatusCode::ACCEPTED);

    assert_eq!(setup.record_count().await, 3);
}

#[tokio::test]
async fn two_gateway_instances_share_dedupe_through_redis() {
    let setup = Setup::start().await;
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let memory_options = MemoryOptions {
        redis_url: redis.url(),
        ..MemoryOptions::default()
    };
    let open = || async {
        let memory: Arc<dyn Memory> =
            chatgptd_memory::open(&memory_options, dir.path(), &Secrets::env())
                .await
                .unwrap();
        assert_eq!(memory.backend(), "redis");
        memory
    };
    let kafka = setup.kafka.options();
    let first = Gateway::start(signed(options()), &kafka, open().await, secrets()).await;
    let second = Gateway::start(signed(options()), &kafka, open().await, secrets()).await;

    let webhook = Webhook::jira(fixture(JIRA_CREATED), "shared-delivery-1");
    let accepted = first.send(&webhook).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    let duplicate = second.send(&webhook).await;
    assert_eq!(duplicate.status, StatusCode::OK, "{}", duplicate.body);
    assert_eq!(duplicate.body["status"], "duplicate");
    assert_eq!(duplicate.body["event_id"], accepted.body["event_id"]);
    assert_eq!(setup.record_count().await, 1);
}
