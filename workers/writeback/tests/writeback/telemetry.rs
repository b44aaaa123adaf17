//! Telemetry: writes by source and outcome, tracker calls by status class, and the waits
//! trackers asked for, with bounded labels.

use std::time::Duration;

use chatgptd_testkit::fake_trackers::Api;
use chatgptd_testkit::metrics::{Labels, record};
use chatgptd_worker_writeback::metric;

use crate::support::{Harness, github_ticket, ticket};

#[test]
fn writes_calls_and_waits_are_counted() {
    let ((), recorded) = record(|| async {
        let harness = Harness::start().await;
        harness
            .fake
            .fail_next(Api::GitHub, 1, 429, Some(Duration::from_secs(3)));
        harness.process(&github_ticket(42)).await.unwrap_err();
        harness.process(&github_ticket(42)).await.unwrap();
        harness.process(&github_ticket(42)).await.unwrap();
        harness
            .process(&ticket("email", "m-1", "m-1"))
            .await
            .unwrap();
    });
    let counter =
        |name: &str, labels: &[(&str, &str)]| recorded.counter(name, Labels::Exactly(labels));
    let write = |source, outcome, reason| {
        counter(
            metric::WRITES,
            &[("source", source), ("outcome", outcome), ("reason", reason)],
        )
    };
    assert_eq!(write("github", "failed", "tracker_rate_limited"), 1);
    assert_eq!(write("github", "posted", "new"), 1);
    assert_eq!(write("github", "already_posted", "memory"), 1);
    assert_eq!(write("unknown", "skipped", "unknown_source"), 1);
    let requests = |status| {
        counter(
            metric::TRACKER_REQUESTS,
            &[("source", "github"), ("status", status)],
        )
    };
    assert_eq!(requests("429"), 1);
    assert_eq!(requests("2xx"), 3, "list, comment, labels");
    let waits = recorded.histogram(
        metric::RETRY_AFTER_SECONDS,
        Labels::Exactly(&[("source", "github")]),
    );
    assert_eq!(waits, vec![3.0]);
}
