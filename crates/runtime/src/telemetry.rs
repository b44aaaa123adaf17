//! Metrics: names, the Prometheus recorder, and what librdkafka's statistics tell us.
//!
//! Labels are bounded: worker kind, topic, partition, error class, a configured API token's
//! name. Never ids, error text or secrets.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;

use axum::http::{Method, StatusCode};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use tracing::info;

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
    /// Partitions stopped because their offset is out of range, by `worker` and `topic`:
    /// each stop counted once.
    pub const PARTITIONS_STOPPED: &str = "chatgptd_partitions_stopped_total";
    /// Partitions this member holds stopped (offset out of range), by `worker`.
    pub const STOPPED_PARTITIONS: &str = "chatgptd_stopped_partitions";
    /// Rebalance callbacks, by `worker` and `kind` (assign, revoke).
    pub const REBALANCES: &str = "chatgptd_rebalances_total";
    /// HTTP requests through the API's token check, by `token` (a configured token's name;
    /// `none` when missing or unknown, `anonymous` with `http.auth = "none"`) and `status`
    /// (`2xx`, `4xx`, ...). Public paths and webhooks are not counted here.
    pub const HTTP_REQUESTS: &str = "chatgptd_http_requests_total";
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

/// An API request through the token check (`http::auth`): logged and counted by token name and status class.
pub(crate) struct ApiRequest<'a> {
    /// The token's name; `none` when missing or unknown, `anonymous` without checks.
    pub(crate) token: &'a str,
    pub(crate) method: &'a Method,
    pub(crate) route: &'a str,
    pub(crate) status: StatusCode,
    pub(crate) started: Instant,
}

impl ApiRequest<'_> {
    pub(crate) fn emit(self) {
        let class = match self.status.as_u16() {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        info!(
            token = self.token,
            method = %self.method,
            route = self.route,
            status = self.status.as_u16(),
            took_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "http: request"
        );
        metrics::counter!(
            metric::HTTP_REQUESTS,
            "token" => self.token.to_string(),
            "status" => class,
        )
        .increment(1);
    }
}

/// One worker's counter of `name` per topic, each looked up once: `metrics::counter!` per
/// record costs label allocations and a registry search, a few percent of a record's time.
pub(crate) struct TopicCounters {
    name: &'static str,
    worker: String,
    by_topic: std::sync::Mutex<HashMap<String, metrics::Counter>>,
}

impl TopicCounters {
    pub(crate) fn new(name: &'static str, worker: &str) -> TopicCounters {
        TopicCounters {
            name,
            worker: worker.to_string(),
            by_topic: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Adds one to `topic`'s counter.
    pub(crate) fn increment(&self, topic: &str) {
        let mut by_topic = self.by_topic.lock().unwrap_or_else(|p| p.into_inner());
        match by_topic.get(topic) {
            Some(counter) => counter.increment(1),
            None => {
                let counter = metrics::counter!(self.name, "worker" => self.worker.clone(), "topic" => topic.to_string());
                counter.increment(1);
                by_topic.insert(topic.to_string(), counter);
            }
        }
    }
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
    #[serde(default = "unknown_offset")]
    consumer_lag: i64,
    #[serde(default)]
    fetch_state: String,
    #[serde(default = "unknown_offset")]
    lo_offset: i64,
    #[serde(default = "unknown_offset")]
    hi_offset: i64,
    #[serde(default = "unknown_offset")]
    ls_offset: i64,
}

fn unknown_offset() -> i64 {
    -1
}

impl PartitionStats {
    /// Records between the group's committed offset and the end of the partition, if known.
    ///
    /// librdkafka's `consumer_lag` is -1 ("unknown") while the group has committed nothing
    /// for the partition, which would hide exactly the partition that is stuck from its first
    /// record (paused, or holding a record that never finishes): no sample, so no alert. The
    /// group's position is then where a new owner would start, the first record (the
    /// runtime's choice, or `offset_reset = "earliest"`): everything from the low watermark on is unfinished, so the
    /// lag is the end minus the low watermark. Not the end minus where this consumer started
    /// fetching: records fetched are not records done, and a restart would read them all
    /// again. Only for a partition this consumer fetches (state `active`): librdkafka keeps
    /// the last watermarks of partitions it no longer owns, which would report a stale lag.
    fn lag(&self) -> Option<i64> {
        if self.partition < 0 {
            // librdkafka's internal UA partition.
            return None;
        }
        if self.consumer_lag >= 0 {
            return Some(self.consumer_lag);
        }
        // The end librdkafka measures `consumer_lag` from: the last stable offset under
        // read_committed (librdkafka's default isolation level), else the high watermark.
        let end = if self.ls_offset >= 0 {
            self.ls_offset
        } else {
            self.hi_offset
        };
        (self.fetch_state == "active" && self.lo_offset >= 0 && end >= self.lo_offset)
            .then(|| end - self.lo_offset)
    }
}

/// Sets the lag gauges from a consumer's statistics JSON.
pub(crate) fn record_consumer_lag(worker: &str, statistics: &[u8]) {
    let Ok(stats) = serde_json::from_slice::<Stats>(statistics) else {
        return;
    };
    for (topic, topic_stats) in stats.topics {
        for partition in topic_stats.partitions.values() {
            let Some(lag) = partition.lag() else {
                continue;
            };
            metrics::gauge!(
                metric::CONSUMER_LAG,
                "worker" => worker.to_string(),
                "topic" => topic.clone(),
                "partition" => partition.partition.to_string()
            )
            .set(lag as f64);
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

    /// A partition the group never committed has no `consumer_lag` from librdkafka; its lag
    /// is everything from the low watermark on, while this consumer fetches it.
    #[test]
    fn a_partition_never_committed_reports_its_whole_backlog() {
        let handle = install_prometheus();
        let stats = br#"{"topics":{"t":{"partitions":{
            "0":{"partition":0,"consumer_lag":-1,"committed_offset":-1001,"fetch_state":"active","lo_offset":3,"hi_offset":12,"ls_offset":10},
            "1":{"partition":1,"consumer_lag":-1,"committed_offset":-1001,"fetch_state":"active","lo_offset":0,"hi_offset":5,"ls_offset":-1},
            "2":{"partition":2,"consumer_lag":-1,"committed_offset":-1001,"fetch_state":"none","lo_offset":0,"hi_offset":9,"ls_offset":9},
            "3":{"partition":3,"consumer_lag":-1,"committed_offset":-1001,"fetch_state":"active","lo_offset":-1,"hi_offset":-1,"ls_offset":-1},
            "4":{"partition":4,"consumer_lag":2,"committed_offset":7,"fetch_state":"active","lo_offset":0,"hi_offset":9,"ls_offset":9}
        }}}}"#;
        record_consumer_lag("never-committed", stats);
        let rendered = handle.render();
        let lag = |partition: i32| {
            let sample = format!(
                r#"chatgptd_consumer_lag{{worker="never-committed",topic="t",partition="{partition}"}} "#
            );
            rendered
                .lines()
                .find_map(|line| line.strip_prefix(&sample)?.parse::<f64>().ok())
        };
        assert_eq!(lag(0), Some(7.0), "last stable offset minus low watermark");
        assert_eq!(
            lag(1),
            Some(5.0),
            "high watermark without a last stable offset"
        );
        assert_eq!(
            lag(2),
            None,
            "not fetched by this consumer: its watermarks are stale"
        );
        assert_eq!(lag(3), None, "watermarks unknown yet");
        assert_eq!(lag(4), Some(2.0), "librdkafka's own lag when committed");
    }
}
