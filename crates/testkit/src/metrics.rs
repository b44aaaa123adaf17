//! What code under test recorded as metrics, read by name and labels.
//!
//! [`record`] runs a test body on its own current-thread runtime with a local recorder, so
//! tests running in parallel never see each other's counts.

use std::future::Future;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// The metrics one [`record`] captured.
#[derive(Debug)]
pub struct Recorded {
    samples: Vec<(metrics_util::CompositeKey, DebugValue)>,
}

/// Runs `body` to completion on a current-thread runtime with a recorder of its own; what
/// it returned, and what it recorded.
pub fn record<F: Future>(body: impl FnOnce() -> F) -> (F::Output, Recorded) {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let output = metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
            .block_on(body())
    });
    let samples = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key, value))
        .collect();
    (output, Recorded { samples })
}

/// How labels select a sample.
#[derive(Debug, Clone, Copy)]
pub enum Labels<'a> {
    /// The sample's labels include all of these.
    Including(&'a [(&'a str, &'a str)]),
    /// The sample's labels are exactly these.
    Exactly(&'a [(&'a str, &'a str)]),
}

impl Labels<'_> {
    fn select(&self, key: &metrics::Key) -> bool {
        let has = |(name, value): &(&str, &str)| {
            key.labels()
                .any(|label| label.key() == *name && label.value() == *value)
        };
        match self {
            Labels::Including(labels) => labels.iter().all(has),
            Labels::Exactly(labels) => {
                labels.iter().all(has) && key.labels().count() == labels.len()
            }
        }
    }
}

impl Recorded {
    /// The sample of `name` whose labels `labels` select, if any.
    pub fn find(&self, name: &str, labels: Labels<'_>) -> Option<&DebugValue> {
        self.samples.iter().find_map(|(key, value)| {
            let key = key.key();
            (key.name() == name && labels.select(key)).then_some(value)
        })
    }

    /// The counter `name` with `labels`; panics, listing what was recorded, if there is none.
    pub fn counter(&self, name: &str, labels: Labels<'_>) -> u64 {
        match self.find(name, labels) {
            Some(DebugValue::Counter(value)) => *value,
            other => panic!("counter {name} {labels:?}: {other:?} in {self:#?}"),
        }
    }

    /// Every sample of `name`, as its labels (`key`, `value`): to check that no label holds
    /// what must not be one (an id, error text).
    pub fn labels_of(&self, name: &str) -> Vec<Vec<(String, String)>> {
        self.samples
            .iter()
            .filter(|(key, _)| key.key().name() == name)
            .map(|(key, _)| {
                key.key()
                    .labels()
                    .map(|label| (label.key().to_string(), label.value().to_string()))
                    .collect()
            })
            .collect()
    }

    /// The values the histogram `name` with `labels` recorded; panics if there is none.
    pub fn histogram(&self, name: &str, labels: Labels<'_>) -> Vec<f64> {
        match self.find(name, labels) {
            Some(DebugValue::Histogram(values)) => values.iter().map(|v| v.into_inner()).collect(),
            other => panic!("histogram {name} {labels:?}: {other:?} in {self:#?}"),
        }
    }
}
