//! Telemetry: writes by source and outcome, tracker calls by status class, and the waits
//! trackers asked for, with bounded labels.

use std::time::Duration;

use chatgptd_testkit::fake_trackers::Api;
use chatgptd_worker_writeback::metric;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

use crate::support::{Harness, github_ticket, ticket};

type Snapshot = Vec<(
    metrics_util::CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
)>;

/// The value of the metric `name` whose labels are exactly `labels`.
fn find<'s>(snapshot: &'s Snapshot, name: &str, labels: &[(&str, &str)]) -> Option<&'s DebugValue> {
    snapshot.iter().find_map(|(key, _, _, value)| {
        let key = key.key();
        let mut have: Vec<(&str, &str)> = key.labels().map(|l| (l.key(), l.value())).collect();
        let mut want = labels.to_vec();
        have.sort();
        want.sort();
        (key.name() == name && have == want).then_some(value)
    })
}

#[test]
fn writes_calls_and_waits_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
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
    });
    let snapshot: Snapshot = snapshotter.snapshot().into_vec();
    let counter = |name: &str, labels: &[(&str, &str)]| match find(&snapshot, name, labels) {
        Some(DebugValue::Counter(value)) => *value,
        other => panic!("{name} {labels:?}: {other:?} in {snapshot:#?}"),
    };
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
    match find(
        &snapshot,
        metric::RETRY_AFTER_SECONDS,
        &[("source", "github")],
    ) {
        Some(DebugValue::Histogram(values)) => {
            let values: Vec<f64> = values.iter().map(|v| v.into_inner()).collect();
            assert_eq!(values, vec![3.0]);
        }
        other => panic!("retry-after histogram: {other:?}"),
    }
}
