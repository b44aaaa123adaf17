//! The broker does not acknowledge: 503 with `Retry-After`, never a 2xx, and the dedupe
//! claim released so the sender's retry is produced once the broker is back.

use std::time::Duration;

use chatgptd_testkit::kafka::MockKafka;
use chatgptd_testkit::wait_until;
use chatgptd_types::topics::names;
use chatgptd_worker_ingest::source::route;
use reqwest::StatusCode;

use crate::support::*;

#[tokio::test]
async fn broker_down_gets_503_and_the_retry_is_accepted_once_it_is_back() {
    let setup = Setup::start().await;
    let mut options = options();
    options.ack_timeout = Duration::from_secs(2);
    let down = MockKafka::start();
    down.create_topic(names::TICKET_EVENTS, 3);
    let gateway = Gateway::start(
        signed(options.clone()),
        &down.options(),
        setup.memory.clone(),
        secrets(),
    )
    .await;
    // Connected and acknowledged while the broker is up.
    let before = Webhook::github(fixture(GITHUB_OPENED), "issues", "before-the-outage");
    assert_eq!(gateway.send(&before).await.status, StatusCode::ACCEPTED);

    drop(down);
    let webhook = Webhook::github(fixture(GITHUB_OPENED), "issues", "during-the-outage");
    let first = {
        let webhook = webhook.clone();
        let base_url = gateway.base_url.clone();
        tokio::spawn(async move { send_to(&base_url, &webhook).await })
    };
    // The same delivery while the first is waiting for its ack: not a duplicate yet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let twin = gateway.send(&webhook).await;
    assert_eq!(
        twin.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        twin.body
    );
    assert_eq!(twin.body["error"], "in_flight");
    assert_eq!(twin.retry_after(), Some(2), "the ack timeout");

    let first = first.await.unwrap();
    assert_eq!(
        first.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        first.body
    );
    assert_eq!(first.body["error"], "unavailable");
    assert!(first.retry_after().is_some_and(|secs| secs >= 1));
    assert_eq!(
        setup
            .memory
            .get("dedupe:github:during-the-outage")
            .await
            .unwrap(),
        None,
        "the claim is released"
    );

    // The broker is back (the setup's cluster), behind a gateway sharing the memory.
    let back = setup.gateway(options).await;
    let retry = back.send(&webhook).await;
    assert_eq!(retry.status, StatusCode::ACCEPTED, "{}", retry.body);
    assert_eq!(back.send(&webhook).await.body["status"], "duplicate");
    assert_eq!(setup.record_count().await, 1);
}

/// A record answered 503 is not delivered once the broker comes back: the sender's retry
/// is the only copy, so the topic holds it once.
#[tokio::test]
async fn a_webhook_answered_503_does_not_land_later_beside_its_retry() {
    let setup = Setup::start().await;
    let mut options = options();
    options.ack_timeout = Duration::from_secs(2);
    let gateway = setup.gateway(options).await;
    let before = Webhook::github(fixture(GITHUB_OPENED), "issues", "before-the-blip");
    assert_eq!(gateway.send(&before).await.status, StatusCode::ACCEPTED);

    setup.kafka.cluster().set_brokers_up(false).unwrap();
    let webhook = Webhook::github(fixture(GITHUB_OPENED), "issues", "during-the-blip");
    let answer = gateway.send(&webhook).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    setup.kafka.cluster().set_brokers_up(true).unwrap();
    // The sender retries until accepted; every 503 on the way is a record that must not
    // land later either.
    wait_until(Duration::from_secs(30), "the retry to be accepted", || {
        let (gateway, webhook) = (&gateway, &webhook);
        async move { (gateway.send(webhook).await.status == StatusCode::ACCEPTED).then_some(()) }
    })
    .await;
    // Time for anything still queued in a producer to be delivered, if it were.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        setup.record_count().await,
        2,
        "the one before the blip, and the accepted retry once"
    );
}

async fn send_to(base_url: &str, webhook: &Webhook) -> Answer {
    let mut request = chatgptd_testkit::http_client()
        .post(format!("{base_url}{}", route(webhook.source)))
        .body(webhook.body.clone());
    for (name, value) in &webhook.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request.send().await.unwrap();
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.json().await.unwrap(),
    }
}
