use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatgptd_runtime::dead_letter::header;
use chatgptd_runtime::{
    ConsumerOptions, ConsumerRuntime, Error, Incoming, OutputRecord, ProcessError, Processor,
    RecordMeta, WorkerContext,
};
use chatgptd_types::records::DeadLetter;
use chatgptd_types::topics::names;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::progress::{Progress, Tally};

/// Which dead letters to replay. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    /// Only letters from this source topic.
    pub source_topic: Option<String>,
    /// Only letters with this error class (`decode`, `validation`, `retries_exhausted`, ...).
    pub error_class: Option<String>,
    /// Only letters whose record key is this.
    pub key: Option<String>,
}

impl Filter {
    pub(crate) fn matches(&self, letter: &DeadLetter) -> bool {
        let key = letter.key.as_deref().map(String::from_utf8_lossy);
        self.source_topic
            .as_ref()
            .is_none_or(|t| *t == letter.source_topic)
            && self
                .error_class
                .as_ref()
                .is_none_or(|c| *c == letter.error_class)
            && self
                .key
                .as_ref()
                .is_none_or(|k| key.as_deref() == Some(k.as_str()))
    }
}

/// How a replay runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The dead-letter topic to read.
    pub dead_letter_topic: String,
    /// Which letters to replay.
    pub filter: Filter,
    /// Report what would be replayed, publish nothing, and leave the replayer's group
    /// untouched (a throwaway group reads from the beginning).
    pub dry_run: bool,
    /// Letters already replayed this many times are skipped.
    pub max_replays: i32,
    /// Consumer settings; the group defaults to `chatgptd-dlq-replay`.
    pub consumer: ConsumerOptions,
    /// Stop if nothing arrives for this long, even if the end was not reached.
    pub idle_timeout: Duration,
    /// Letters read of the letters to read, updated as the run goes (for a progress bar).
    pub tally: Arc<Tally>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dead_letter_topic: names::DEAD_LETTER.to_string(),
            filter: Filter::default(),
            dry_run: false,
            max_replays: 3,
            consumer: ConsumerOptions::default(),
            idle_timeout: Duration::from_secs(30),
            tally: Arc::default(),
        }
    }
}

/// One letter that matched the filter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayedLetter {
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    pub error_class: String,
    pub error_message: String,
    pub attempts: i32,
    /// Replays before this one.
    pub replay_count: i32,
}

/// What a replay did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayReport {
    /// Letters that matched: re-published, or (dry run) would have been.
    pub matched: Vec<ReplayedLetter>,
    /// Letters the filter left out.
    pub filtered_out: usize,
    /// Letters skipped because they were replayed `max_replays` times already.
    pub too_many_replays: usize,
    /// Letters without their original value (it was too large to dead-letter): there is
    /// nothing to replay; the letter's `dlq.value.omitted` header says where the original is.
    pub without_value: usize,
    /// Letters that could not be read, or whose source topic refused them again: they stay
    /// in the dead-letter topic (the log says why).
    pub left_in_place: usize,
    /// (partition, offset) of every letter counted above, so that a retried letter is
    /// counted once.
    #[serde(skip)]
    counted: HashSet<(i32, i64)>,
    /// Whether nothing was published.
    pub dry_run: bool,
}

struct Replayer {
    filter: Filter,
    dry_run: bool,
    max_replays: i32,
    progress: Arc<Progress>,
    report: Arc<Mutex<ReplayReport>>,
    last_activity: Arc<Mutex<Instant>>,
}

impl Replayer {
    /// `position`: the letter's partition and offset in the dead-letter topic.
    fn decide(&self, letter: &DeadLetter, position: (i32, i64)) -> Option<OutputRecord> {
        let mut report = self.report.lock().unwrap_or_else(|p| p.into_inner());
        // A retry (the source topic did not acknowledge) decides again, but counts once.
        let first_time = report.counted.insert(position);
        if !self.filter.matches(letter) {
            report.filtered_out += usize::from(first_time);
            return None;
        }
        if letter.replay_count >= self.max_replays {
            report.too_many_replays += usize::from(first_time);
            return None;
        }
        if letter.headers.contains_key(header::VALUE_OMITTED) {
            // Replaying an empty value would only fail to decode and come back here.
            report.without_value += usize::from(first_time);
            return None;
        }
        if first_time {
            report.matched.push(ReplayedLetter {
                source_topic: letter.source_topic.clone(),
                source_partition: letter.source_partition,
                source_offset: letter.source_offset,
                error_class: letter.error_class.clone(),
                error_message: letter.error_message.clone(),
                attempts: letter.attempts,
                replay_count: letter.replay_count,
            });
        }
        if self.dry_run {
            return None;
        }
        let mut headers: Vec<(String, Vec<u8>)> = letter
            .headers
            .iter()
            .filter(|(name, _)| !name.starts_with("dlq."))
            .map(|(name, value)| (name.clone(), value.to_vec()))
            .collect();
        headers.push((
            header::REPLAY_COUNT.to_string(),
            (letter.replay_count + 1).to_string().into_bytes(),
        ));
        Some(OutputRecord {
            topic: letter.source_topic.clone(),
            key: letter.key.clone(),
            payload: letter.value.clone().unwrap_or_default(),
            headers,
        })
    }
}

impl Processor for Replayer {
    type Input = DeadLetter;

    fn process(
        &self,
        record: &Incoming<DeadLetter>,
    ) -> impl Future<Output = Result<Vec<OutputRecord>, ProcessError>> + Send {
        *self.last_activity.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        let output = self.decide(&record.value, (record.meta.partition, record.meta.offset));
        self.progress
            .handled(record.meta.partition, record.meta.offset);
        async move { Ok(output.into_iter().collect()) }
    }

    /// The letter could not be decoded, or its source topic refused it: the runtime leaves
    /// it in the dead-letter topic, which is what it reads.
    fn dead_lettered(&self, meta: &RecordMeta) {
        let mut report = self.report.lock().unwrap_or_else(|p| p.into_inner());
        report.left_in_place += 1;
        drop(report);
        self.progress.handled(meta.partition, meta.offset);
    }
}

/// Replays matching dead letters until caught up with the topic's end at start, or
/// `shutdown`, and reports what it did.
pub async fn replay(
    context: &WorkerContext,
    mut options: Options,
    shutdown: CancellationToken,
) -> Result<ReplayReport, Error> {
    if options.consumer.group_id.is_empty() {
        options.consumer.group_id = "chatgptd-dlq-replay".to_string();
    }
    // A letter that fails again stays where it is, instead of being written to the topic
    // being read (see the runtime's dead-letter handling), and a dry run writes nothing.
    options.consumer.dead_letter_topic = options.dead_letter_topic.clone();
    if options.dry_run {
        options.consumer.group_id = format!("chatgptd-dlq-replay-dry-run-{}", uuid::Uuid::new_v4());
    }
    let config = context
        .kafka
        .base_config("dlq-replay-progress", &context.secrets)?;
    let (topic, group, tally) = (
        options.dead_letter_topic.clone(),
        options.consumer.group_id.clone(),
        options.tally.clone(),
    );
    let progress =
        tokio::task::spawn_blocking(move || Progress::start(&config, &topic, &group, tally))
            .await
            .map_err(|err| Error::ConsumerThread(err.to_string()))?
            .map_err(Error::kafka("reading the dead-letter topic's offsets"))?;
    let progress = Arc::new(progress);
    let report = Arc::new(Mutex::new(ReplayReport {
        dry_run: options.dry_run,
        ..Default::default()
    }));
    if progress.caught_up() {
        info!(topic = %options.dead_letter_topic, "no dead letters to replay");
        return Ok(report.lock().unwrap_or_else(|p| p.into_inner()).clone());
    }

    let last_activity = Arc::new(Mutex::new(Instant::now()));
    let replayer = Replayer {
        filter: options.filter.clone(),
        dry_run: options.dry_run,
        max_replays: options.max_replays,
        progress: progress.clone(),
        report: report.clone(),
        last_activity: last_activity.clone(),
    };
    let runtime = ConsumerRuntime::new(
        "dlq-replay",
        context,
        options.consumer.clone(),
        vec![options.dead_letter_topic.clone()],
        replayer,
    )?;
    let run = shutdown.child_token();
    let running = tokio::spawn(runtime.run(run.clone()));
    let idle_timeout = options.idle_timeout;
    let monitor = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let idle = last_activity
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed();
            if progress.caught_up() || idle > idle_timeout {
                break;
            }
        }
    };
    tokio::select! {
        _ = monitor => {}
        _ = run.cancelled() => {}
    }
    // Stopping drains: the last re-published records are acknowledged and committed.
    run.cancel();
    running
        .await
        .map_err(|err| Error::ConsumerThread(err.to_string()))??;
    let report = report.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn letter(source: &str, class: &str, key: &str, replays: i32) -> DeadLetter {
        DeadLetter {
            source_topic: source.into(),
            source_partition: 0,
            source_offset: 5,
            key: Some(key.as_bytes().to_vec()),
            value: Some(b"value".to_vec()),
            headers: BTreeMap::from([
                (
                    "traceparent".into(),
                    serde_bytes::ByteBuf::from(b"tp".to_vec()),
                ),
                (
                    "dlq.error.class".into(),
                    serde_bytes::ByteBuf::from(b"x".to_vec()),
                ),
            ]),
            error_class: class.into(),
            error_message: "m".into(),
            attempts: 1,
            worker: "w".into(),
            failed_at_ms: 0,
            replay_count: replays,
        }
    }

    fn replayer(filter: Filter, dry_run: bool) -> Replayer {
        Replayer {
            filter,
            dry_run,
            max_replays: 2,
            progress: Arc::default(),
            report: Arc::default(),
            last_activity: Arc::new(Mutex::new(Instant::now())),
        }
    }

    #[test]
    fn a_letter_without_its_value_is_not_replayed() {
        let replayer = replayer(Filter::default(), false);
        let mut omitted = letter("tickets.events", "validation", "k", 0);
        omitted.value = None;
        omitted.headers.insert(
            header::VALUE_OMITTED.into(),
            serde_bytes::ByteBuf::from(b"tickets.events/0/5".to_vec()),
        );
        assert!(replayer.decide(&omitted, (0, 1)).is_none());
        assert!(replayer.decide(&omitted, (0, 1)).is_none());
        let report = replayer.report.lock().unwrap();
        assert_eq!(report.without_value, 1, "counted once");
        assert!(report.matched.is_empty());
    }

    #[test]
    fn republishes_the_original_bytes_with_a_replay_count() {
        let replayer = replayer(Filter::default(), false);
        let output = replayer
            .decide(&letter("tickets.events", "validation", "k", 1), (0, 1))
            .unwrap();
        assert_eq!(output.topic, "tickets.events");
        assert_eq!(output.payload, b"value");
        assert_eq!(output.key.as_deref(), Some(&b"k"[..]));
        let names: Vec<&str> = output.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec!["traceparent", header::REPLAY_COUNT],
            "dlq.* headers dropped"
        );
        assert_eq!(output.headers[1].1, b"2");
    }

    #[test]
    fn filters_and_the_replay_limit_skip_letters() {
        let filter = Filter {
            error_class: Some("validation".into()),
            ..Default::default()
        };
        let replayer = replayer(filter, false);
        assert!(
            replayer
                .decide(&letter("t", "decode", "k", 0), (0, 2))
                .is_none()
        );
        assert!(
            replayer
                .decide(&letter("t", "validation", "k", 2), (0, 3))
                .is_none()
        );
        assert!(
            replayer
                .decide(&letter("t", "validation", "k", 0), (0, 4))
                .is_some()
        );
        let report = replayer.report.lock().unwrap();
        assert_eq!(
            (
                report.filtered_out,
                report.too_many_replays,
                report.matched.len()
            ),
            (1, 1, 1)
        );
        drop(report);
        // The source topic did not acknowledge: the same letter is decided again.
        assert!(
            replayer
                .decide(&letter("t", "validation", "k", 0), (0, 4))
                .is_some()
        );
        assert_eq!(replayer.report.lock().unwrap().matched.len(), 1);
    }

    #[test]
    fn a_dry_run_publishes_nothing_but_reports() {
        let replayer = replayer(
            Filter {
                key: Some("k".into()),
                ..Default::default()
            },
            true,
        );
        assert!(
            replayer
                .decide(&letter("t", "decode", "k", 0), (0, 5))
                .is_none()
        );
        assert_eq!(replayer.report.lock().unwrap().matched.len(), 1);
    }
}
