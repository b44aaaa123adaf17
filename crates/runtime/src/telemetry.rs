//! Metrics: names, the Prometheus recorder, and what librdkafka's statistics tell us.
//!
//! Labels are bounded: worker kind, topic, partition, error class. Never ids or error text.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use std::collections::HashMap;

/// Metric names, one place.
pub mod metric {
    /// Records polled, by `worker` and `topic`.
    pub const RECORDS_IN: &str = "chatgptd_records_in_total";
    /// Records produced and acknowledged, by `worker` and `topic`.
    pub const RECORDS_OUT: &str = "chatgptd_records_out_total";
    /// Failed tries, by `worker`, `error_class` and `stage` (decode, process, produce, dead_letter).
    pub const ERRORS: &str = "chatgptd_errors_total";
    /// Records sent to the dead-letter topic, by `worker`, `topic` and `error_class`.
    pub const DEAD_LETTERS: &str = "chatgptd_dead_letters_total";
    /// Records admitted and not yet done, by `worker`.
    pub const IN_FLIGHT: &str = "chatgptd_records_in_flight";
    /// Partitions paused at their in-flight bound, by `worker`.
    pub const PAUSED_PARTITIONS: &str = "chatgptd_paused_partitions";
    /// Seconds from a record's start to done (all tries), by `worker`.
    pub const PROCESSING_SECONDS: &str = "chatgptd_processing_seconds";
    /// Records between the committed offset and the end of the partition, by `worker`,
    /// `topic` and `partition`.
    pub const CONSUMER_LAG: &str = "chatgptd_consumer_lag";
    /// Rebalance callbacks, by `worker` and `kind` (assign, revoke).
    pub const REBALANCES: &str = "chatgptd_rebalances_total";
}

/// Installs the process-wide Prometheus recorder once; later calls return the same handle.
pub fn install_prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".to_string()),
                    &[
                        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                        60.0,
                    ],
                )
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness); ours then only
            // renders what it sees, which is nothing. Tests install ours first.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

#[derive(Deserialize)]
struct Stats {
    #[serde(default)]
    brokers: HashMap<String, BrokerStats>,
    #[serde(default)]
    topics: HashMap<String, TopicStats>,
}

#[derive(Deserialize)]
struct BrokerStats {
    nodeid: i32,
    state: String,
}

#[derive(Deserialize)]
struct TopicStats {
    #[serde(default)]
    partitions: HashMap<String, PartitionStats>,
}

#[derive(Deserialize)]
struct PartitionStats {
    partition: i32,
    #[serde(default = "unknown_lag")]
    consumer_lag: i64,
}

fn unknown_lag() -> i64 {
    -1
}

/// Sets the lag gauges from a consumer's statistics JSON.
pub(crate) fn record_consumer_lag(worker: &str, statistics: &[u8]) {
    let Ok(stats) = serde_json::from_slice::<Stats>(statistics) else {
        return;
    };
    for (topic, topic_stats) in stats.topics {
        for partition in topic_stats.partitions.values() {
            // -1 is librdkafka's "unknown", and partition -1 its internal UA partition.
            if partition.partition < 0 || partition.consumer_lag < 0 {
                continue;
            }
            metrics::gauge!(
                metric::CONSUMER_LAG,
                "worker" => worker.to_string(),
                "topic" => topic.clone(),
                "partition" => partition.partition.to_string()
            )
            .set(partition.consumer_lag as f64);
        }
    }
}

/// Whether any real broker is up, from a client's statistics JSON.
pub(crate) fn any_broker_up(statistics: &[u8]) -> Option<bool> {
    let stats = serde_json::from_slice::<Stats>(statistics).ok()?;
    Some(
        stats
            .brokers
            .values()
            .any(|broker| broker.nodeid >= 0 && broker.state == "UP"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_broker_state_from_statistics() {
        let up = br#"{"brokers":{"b:1/1":{"nodeid":1,"state":"UP"},"b:1/bootstrap":{"nodeid":-1,"state":"INIT"}}}"#;
        let down = br#"{"brokers":{"b:1/1":{"nodeid":1,"state":"DOWN"}}}"#;
        assert_eq!(any_broker_up(up), Some(true));
        assert_eq!(any_broker_up(down), Some(false));
        assert_eq!(any_broker_up(b"not json"), None);
    }

    #[test]
    fn lag_gauges_come_from_statistics() {
        let handle = install_prometheus();
        let stats = br#"{"topics":{"tickets.events":{"partitions":{"0":{"partition":0,"consumer_lag":7},"-1":{"partition":-1,"consumer_lag":3}}}}}"#;
        record_consumer_lag("lag-test", stats);
        let rendered = handle.render();
        assert!(
            rendered.contains(
                r#"chatgptd_consumer_lag{worker="lag-test",topic="tickets.events",partition="0"} 7"#
            ),
            "{rendered}"
        );
        assert!(!rendered.contains(r#"partition="-1""#));
    }
}
