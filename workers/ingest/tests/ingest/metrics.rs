//! Telemetry is part of the behaviour: outcomes, events and ack latency are counted.

use chatgptd_testkit::prometheus_sample;
use chatgptd_worker_ingest::telemetry::metric;
use reqwest::StatusCode;

use crate::support::*;

/// The recorder is global to the test process: under `cargo test` the other tests of this
/// binary count too, concurrently, so each sample is checked to have grown, not to equal 1.
#[tokio::test]
async fn outcomes_events_and_ack_latency_are_measured() {
    let prometheus = chatgptd_runtime::telemetry::install_prometheus();
    let setup = Setup::start().await;
    let gateway = setup.gateway(options()).await;
    let samples = [
        format!(
            r#"{}{{source="github",outcome="accepted"}}"#,
            metric::REQUESTS
        ),
        format!(
            r#"{}{{source="github",outcome="duplicate"}}"#,
            metric::REQUESTS
        ),
        format!(
            r#"{}{{source="github",outcome="unauthorized"}}"#,
            metric::REQUESTS
        ),
        format!(
            r#"{}{{source="github",outcome="target_not_allowed"}}"#,
            metric::REQUESTS
        ),
        format!(
            r#"{}{{source="github",event_type="issues.opened"}}"#,
            metric::EVENTS
        ),
        format!(r#"{}_count{{source="github"}}"#, metric::ACK_SECONDS),
    ];
    let before = prometheus.render();

    let webhook = Webhook::github(fixture(GITHUB_OPENED), "issues", "metrics-1");
    assert_eq!(gateway.send(&webhook).await.status, StatusCode::ACCEPTED);
    assert_eq!(gateway.send(&webhook).await.status, StatusCode::OK);
    let unsigned = webhook.clone().with_header("X-Hub-Signature-256", None);
    assert_eq!(
        gateway.send(&unsigned).await.status,
        StatusCode::UNAUTHORIZED
    );

    let mut elsewhere = fixture_json(GITHUB_OPENED);
    elsewhere["repository"]["full_name"] = "someone/else".into();
    let elsewhere = Webhook::github(
        serde_json::to_vec(&elsewhere).unwrap(),
        "issues",
        "metrics-2",
    );
    assert_eq!(gateway.send(&elsewhere).await.status, StatusCode::FORBIDDEN);

    let after = prometheus.render();
    for name in &samples {
        assert!(
            prometheus_sample(&after, name) >= prometheus_sample(&before, name) + 1.0,
            "{name} did not grow:\n{after}"
        );
    }
}
