//! Processing one record, with retries, until it is done or dead-lettered.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatgptd_types::avro::Codec;
use chatgptd_types::trace::TraceContext;
use chatgptd_types::waiting;
use futures::FutureExt;
use futures::future::BoxFuture;
use rdkafka::message::{Headers, Message, OwnedMessage};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info_span, warn};

use super::context::PartitionHooks;
use super::coordinator::{Admitted, Coordinator, LaneStart};
use super::options::ConsumerOptions;
use crate::dead_letter::{Failure, dead_letter_record, dead_letter_without_value};
use crate::processor::{
    Decode, ErrorKind, Incoming, OutputRecord, ProcessError, Processor, RecordMeta, StartAt,
};
use crate::producer::Producer;
use crate::telemetry::{TopicCounters, metric};

/// The longest `Retry-After` an unavailable dependency is waited for at once; a longer ask
/// is probably a mistake, and asking again costs one request.
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How handling a record ended.
enum Outcome {
    /// Outputs acknowledged, or the record dead-lettered: its offset may be committed.
    Done,
    /// The partition was taken away (rebalance, shutdown): not done, will be redelivered.
    Cancelled,
}

/// Everything a record task needs; one per consumer, shared by its tasks.
pub(crate) struct RecordHandler<P: Processor> {
    pub worker: String,
    pub processor: P,
    pub producer: Producer,
    pub codec: Codec,
    pub options: ConsumerOptions,
    pub coordinator: Arc<Coordinator>,
    /// Looked up once: a lookup per record costs a key allocation and a map search.
    pub processing_seconds: metrics::Histogram,
    pub records_in: TopicCounters,
    pub records_out: TopicCounters,
}

impl<P: Processor> RecordHandler<P> {
    /// Runs a key's lane: the record it starts with, then each record that queued behind it.
    /// When the lane ends, the task goes on with a record its completion let start, rather
    /// than ending and spawning another; further ones get tasks of their own.
    ///
    /// Boxed, because the future spawns futures of its own type.
    pub fn run_lane(self: Arc<Self>, start: LaneStart) -> BoxFuture<'static, ()> {
        Box::pin(self.lane(start))
    }

    async fn lane(self: Arc<Self>, start: LaneStart) {
        let mut current = start;
        loop {
            let LaneStart {
                partition,
                epoch,
                lane,
                admitted:
                    Admitted {
                        message,
                        previous_offset,
                    },
                cancel,
            } = current;
            let offset = message.offset();
            let started = Instant::now();
            if let Outcome::Cancelled = self.handle(&message, previous_offset, &cancel).await {
                return;
            }
            drop(message);
            self.processing_seconds
                .record(started.elapsed().as_secs_f64());
            let consumer = self.coordinator.consumer();
            let (next, mut starts) =
                self.coordinator
                    .complete(consumer.as_deref(), &partition, epoch, offset, &lane);
            drop(consumer);
            current = match next {
                Some(admitted) => LaneStart {
                    partition,
                    epoch,
                    lane,
                    admitted,
                    cancel,
                },
                None => match starts.pop() {
                    Some(start) => start,
                    None => return,
                },
            };
            for start in starts {
                tokio::spawn(self.clone().run_lane(start));
            }
        }
    }

    async fn handle(
        &self,
        message: &OwnedMessage,
        previous_offset: Option<i64>,
        cancel: &CancellationToken,
    ) -> Outcome {
        let meta = record_meta(message, previous_offset);
        let span = info_span!(
            "record",
            worker = %self.worker,
            topic = %meta.topic,
            partition = meta.partition,
            offset = meta.offset,
            trace_id = %meta.trace.trace_id_hex(),
        );
        self.handle_in_span(message, meta, cancel)
            .instrument(span)
            .await
    }

    async fn handle_in_span(
        &self,
        message: &OwnedMessage,
        meta: RecordMeta,
        cancel: &CancellationToken,
    ) -> Outcome {
        self.records_in.increment(&meta.topic);
        let trace = meta.trace;
        let payload = message.payload().unwrap_or_default();
        let value = match <P::Input as Decode>::decode(&self.codec, payload) {
            Ok(value) => value,
            Err(err) => {
                self.count_error(err.class(), "decode");
                let failure = Failure {
                    class: err.class(),
                    message: err.to_string(),
                    attempts: 1,
                };
                return self
                    .dead_letter(message, &meta, failure, &trace, cancel)
                    .await;
            }
        };
        let mut incoming = Incoming { value, meta };
        let max_attempts = self.options.max_attempts;
        // Tries that failed for a reason that counts toward max_attempts.
        let mut failures = 0;
        // Consecutive tries that found a dependency down; they never count.
        let mut outage = 0;
        let last_error = loop {
            incoming.meta.attempt = failures + 1;
            let error = match self.try_within_timeout(&incoming, cancel).await {
                None => return Outcome::Cancelled,
                Some(Ok(())) => return Outcome::Done,
                Some(Err(error)) => error,
            };
            self.count_error(
                error.class,
                if error.class == "produce" {
                    "produce"
                } else {
                    "process"
                },
            );
            let delay = match error.kind {
                ErrorKind::Permanent => {
                    let failure = Failure {
                        class: error.class,
                        message: error.message,
                        attempts: failures + 1,
                    };
                    return self
                        .dead_letter(message, &incoming.meta, failure, &trace, cancel)
                        .await;
                }
                ErrorKind::Unavailable => {
                    outage += 1;
                    warn!(outage, error = %error, "dependency unavailable; retrying until it is back");
                    // An outage costs no attempts, so a long `Retry-After` (an API's hourly
                    // limit) is honoured in full rather than cut to the backoff cap.
                    let asked = error.retry_after.map(|wait| wait.min(LONGEST_RETRY_AFTER));
                    self.options
                        .backoff
                        .delay(outage, None)
                        .max(asked.unwrap_or_default())
                }
                ErrorKind::Retryable => {
                    failures += 1;
                    outage = 0;
                    if failures >= max_attempts {
                        break error;
                    }
                    warn!(attempt = failures, max_attempts, error = %error, "retryable error");
                    self.options.backoff.delay(failures, error.retry_after)
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return Outcome::Cancelled,
                _ = tokio::time::sleep(delay) => {}
            }
        };
        let failure = Failure {
            class: "retries_exhausted",
            message: format!("{}: {}", last_error.class, last_error.message),
            attempts: max_attempts,
        };
        self.dead_letter(message, &incoming.meta, failure, &trace, cancel)
            .await
    }

    /// One try under `process_timeout`, of which only working time counts: time the try
    /// spends waiting on a limiter or a `Retry-After` (see `chatgptd_types::waiting`) moves
    /// its deadline, so a backlog behind a rate limit never times out. `None`: cancelled.
    async fn try_within_timeout(
        &self,
        incoming: &Incoming<P::Input>,
        cancel: &CancellationToken,
    ) -> Option<Result<(), ProcessError>> {
        let timeout = self.options.process_timeout;
        tokio::select! {
            _ = cancel.cancelled() => None,
            result = waiting::timeout(timeout, self.try_once(incoming)) => Some(match result {
                Ok(result) => result,
                Err(_elapsed) => Err(ProcessError::retryable(
                    "timeout",
                    format!("not done within process_timeout ({timeout:?}) of work"),
                )),
            }),
        }
    }

    /// One try: process, then produce the outputs and wait for every acknowledgement.
    async fn try_once(&self, incoming: &Incoming<P::Input>) -> Result<(), ProcessError> {
        let mut outputs = self.process_catching_panics(incoming).await?;
        let traceparent = incoming.meta.trace.to_header();
        for output in &mut outputs {
            if !output
                .headers
                .iter()
                .any(|(name, _)| name == TraceContext::HEADER)
            {
                output.headers.push((
                    TraceContext::HEADER.to_string(),
                    traceparent.clone().into_bytes(),
                ));
            }
        }
        self.producer.send_all(&outputs).await.map_err(|err| {
            // A broker that does not acknowledge says nothing about the record: waiting for it
            // must not turn healthy records into dead letters. Only a record the broker
            // refuses for what it is (too large, malformed) can never succeed.
            if crate::producer::rejects_record(&err) {
                ProcessError::permanent("output_rejected", format!("output refused: {err}"))
            } else {
                ProcessError::unavailable("produce", format!("output not acknowledged: {err}"))
            }
        })?;
        for output in &outputs {
            self.records_out.increment(&output.topic);
        }
        Ok(())
    }

    /// Runs the processor; a panic becomes a permanent error of class `panic`, so the record
    /// is dead-lettered with the panic's message and its lane and partition move on. Uncaught,
    /// it would end the record's task without completing the record: its key would wait
    /// forever, and its partition's committed offset stay behind it until a rebalance.
    async fn process_catching_panics(
        &self,
        incoming: &Incoming<P::Input>,
    ) -> Result<Vec<OutputRecord>, ProcessError> {
        // Building the future may panic too, so the call is inside what is caught. Unwind
        // safety: the processor's state is its own; the runtime's state is not touched here.
        match AssertUnwindSafe(async { self.processor.process(incoming).await })
            .catch_unwind()
            .await
        {
            Ok(result) => result,
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                error!(panic = %message, "the processor panicked; the record is dead-lettered");
                Err(ProcessError::permanent(
                    "panic",
                    format!("processor panicked: {message}"),
                ))
            }
        }
    }

    /// Sends the record to the dead-letter topic, retrying until the broker has it: only then
    /// may its offset be committed, or the record would be lost.
    async fn dead_letter(
        &self,
        message: &OwnedMessage,
        meta: &RecordMeta,
        failure: Failure,
        trace: &TraceContext,
        cancel: &CancellationToken,
    ) -> Outcome {
        let topic = &self.options.dead_letter_topic;
        if message.topic() == topic {
            // Failing in the dead-letter topic itself (a replay): the record already sits
            // where it would go, so writing it again would only add a copy, or a loop.
            warn!(error_class = failure.class, error = %failure.message, "failed record left in the dead-letter topic");
            self.count_error(failure.class, "dead_letter");
            self.processor.dead_lettered(meta);
            return Outcome::Done;
        }
        let mut record =
            match dead_letter_record(&self.codec, topic, &self.worker, message, &failure, trace) {
                Ok(record) => record,
                Err(err) => {
                    // Only a broken build can fail to encode a DeadLetter; not committing keeps
                    // the record, and the error is loud.
                    error!(%err, "cannot encode the dead letter; the record stays uncommitted");
                    cancel.cancelled().await;
                    return Outcome::Cancelled;
                }
            };
        let mut attempt = 0;
        let mut value_omitted = false;
        loop {
            attempt += 1;
            let sent = tokio::select! {
                _ = cancel.cancelled() => return Outcome::Cancelled,
                sent = self.producer.send(&record) => sent,
            };
            match sent {
                Ok(_) => {
                    warn!(error_class = failure.class, attempts = failure.attempts, error = %failure.message, dead_letter_topic = %topic, value_omitted, "record dead-lettered");
                    metrics::counter!(
                        metric::DEAD_LETTERS,
                        "worker" => self.worker.clone(),
                        "topic" => message.topic().to_string(),
                        "error_class" => failure.class
                    )
                    .increment(1);
                    self.processor.dead_lettered(meta);
                    return Outcome::Done;
                }
                Err(err) => {
                    self.count_error("produce", "dead_letter");
                    // Refused for what it is, usually too large (the letter adds headers and
                    // the error to a record close to `message.max.bytes`): sending it again
                    // cannot succeed, and the partition would never commit past it. A letter
                    // without the original value says where the original is instead.
                    if !value_omitted
                        && crate::producer::rejects_record(&err)
                        && let Ok(smaller) = dead_letter_without_value(
                            &self.codec,
                            topic,
                            &self.worker,
                            message,
                            &failure,
                            trace,
                            &err.to_string(),
                        )
                    {
                        error!(%err, "dead-letter topic refused the record; sending the dead letter without the original value");
                        record = smaller;
                        value_omitted = true;
                        continue;
                    }
                    error!(%err, attempt, "dead-letter topic did not take the record; retrying");
                    let delay = self.options.backoff.delay(attempt, None);
                    tokio::select! {
                        _ = cancel.cancelled() => return Outcome::Cancelled,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    fn count_error(&self, class: &'static str, stage: &'static str) {
        metrics::counter!(
            metric::ERRORS,
            "worker" => self.worker.clone(),
            "error_class" => class,
            "stage" => stage
        )
        .increment(1);
    }
}

impl<P: Processor> PartitionHooks for RecordHandler<P> {
    fn start_offsets(&self, partitions: &[(String, i32)]) -> Vec<Option<StartAt>> {
        let starts = self.processor.start_offsets(partitions);
        // A processor answering for the wrong number of partitions gets the default.
        if starts.len() == partitions.len() {
            starts
        } else {
            vec![None; partitions.len()]
        }
    }

    fn partitions_revoked(&self, partitions: &[(String, i32)]) {
        self.processor.partitions_revoked(partitions);
    }
}

/// What a panic said: its message when it was a string (as `panic!` makes them).
fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_string()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_string()
    }
}

fn record_meta(message: &OwnedMessage, previous_offset: Option<i64>) -> RecordMeta {
    let headers: Vec<(String, Vec<u8>)> = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let parent = headers
        .iter()
        .find(|(name, _)| name == TraceContext::HEADER)
        .and_then(|(_, value)| TraceContext::from_bytes(Some(value)));
    RecordMeta {
        topic: message.topic().to_string(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        timestamp_ms: message.timestamp().to_millis(),
        headers,
        trace: parent
            .map(|p| p.child())
            .unwrap_or_else(TraceContext::new_root),
        attempt: 1,
        previous_offset,
    }
}
