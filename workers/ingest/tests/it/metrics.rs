//! Telemetry is part of the behaviour: outcomes, events and ack latency are counted.

use chatgptd_worker_ingest::telemetry::metric;
use reqwest::StatusCode;

use crate::support::*;

#[tokio::test]
async fn outcomes_events_and_ack_latency_are_measured() {
    let prometheus = chatgptd_runtime::telemetry::install_prometheus();
    let setup = Setup::start().await;
    let gateway = setup.gateway(options()).await;
    let webhook = Webhook::github(fixture(GITHUB_OPENED), "issues", "metrics-1");
    assert_eq!(gateway.send(&webhook).await.status, StatusCode::ACCEPTED);
    assert_eq!(gateway.send(&webhook).await.status, StatusCode::OK);
    let unsigned = webhook.clone().with_header("X-Hub-Signature-256", None);
    assert_eq!(
        gateway.send(&unsigned).await.status,
        StatusCode::UNAUTHORIZED
    );

    let rendered = prometheus.render();
    for expected in [
        format!(
            r#"{}{{source="github",outcome="accepted"}} 1"#,
            metric::REQUESTS
        ),
        format!(
            r#"{}{{source="github",outcome="duplicate"}} 1"#,
            metric::REQUESTS
        ),
        format!(
            r#"{}{{source="github",outcome="unauthorized"}} 1"#,
            metric::REQUESTS
        ),
        format!(
            r#"{}{{source="github",event_type="issues.opened"}} 1"#,
            metric::EVENTS
        ),
        format!(r#"{}_count{{source="github"}} 1"#, metric::ACK_SECONDS),
    ] {
        assert!(
            rendered.contains(&expected),
            "{expected} not in\n{rendered}"
        );
    }
}
