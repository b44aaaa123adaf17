//! Event streams for subscribers: Server-Sent Events of the records on chatgptd's topics, for
//! dashboards and scripts that follow tickets, agents and runs as they happen.
//!
//! - `GET /events?topics=tickets.enriched,agents.messages[&key=K][&from=latest|earliest|1h]`
//! - `GET /runs/{id}/events`: the run's steps (`workflows.steps`, key `<id>`) and their results
//!   (`memory.records`, key `run:<id>`).
//!
//! Each subscriber gets its own consumer, assigned (not in a group: it commits nothing and
//! takes nothing from the workers). The first event, `ready`, comes once the start offsets are
//! fixed: everything produced after it is delivered. Every event's `id` holds the position of
//! each partition read so far, so a client that reconnects with `Last-Event-ID` (browsers do
//! it by themselves) goes on where it stopped, missing nothing. A subscriber that reads slowly
//! slows only its own consumer; the number of subscribers is bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chatgptd_runtime::KafkaOptions;
use chatgptd_types::Secrets;
use chatgptd_types::avro::Codec;
use futures::Stream;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::record_json::record_json;
use chatgptd_runtime::http::openapi::ErrorBody;
use chatgptd_runtime::http::{Routes, Scope, error_response as error, query_params};
use utoipa::OpenApi;

/// Records buffered per subscriber before its consumer waits for the client to read.
const BUFFER: usize = 256;
/// How long a subscription may take to learn its topics' partitions and end offsets.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// What the event streams need: the brokers, the topics that may be followed, where a run's
/// records are, a bound on subscribers, and the process's shutdown (open streams end with it,
/// or they would hold the HTTP server's graceful shutdown forever).
#[derive(Clone)]
pub struct EventStreams {
    kafka: KafkaOptions,
    secrets: Secrets,
    topics: Arc<BTreeSet<String>>,
    run_topics: Arc<RunTopics>,
    subscribers: Arc<Semaphore>,
    max_subscribers: usize,
    shutdown: CancellationToken,
}

/// Where a run's records are: its steps, keyed by run id, and its step results, keyed
/// `run:<id>`.
#[derive(Debug, Clone)]
pub struct RunTopics {
    pub steps: String,
    pub memory: String,
    /// How far back a run's records may be (the workflows' `run_ttl`).
    pub history: Duration,
}

impl EventStreams {
    /// Streams of `topics` (the names in topics.yaml) from `kafka` (its secret properties
    /// from `secrets`), at most `max_subscribers` at once.
    pub fn new(
        kafka: KafkaOptions,
        secrets: Secrets,
        topics: impl IntoIterator<Item = String>,
        run_topics: RunTopics,
        max_subscribers: usize,
        shutdown: CancellationToken,
    ) -> Self {
        EventStreams {
            kafka,
            secrets,
            topics: Arc::new(topics.into_iter().collect()),
            run_topics: Arc::new(run_topics),
            subscribers: Arc::new(Semaphore::new(max_subscribers)),
            max_subscribers,
            shutdown,
        }
    }

    /// How many subscriptions hold a consumer (and a thread) now.
    pub fn subscribers(&self) -> usize {
        self.max_subscribers - self.subscribers.available_permits()
    }

    /// `GET /events` and `GET /runs/{id}/events`, for tokens with `read`.
    pub fn router(self) -> Routes {
        Routes::new()
            .documented(EventsApi::openapi())
            .get("/events", Scope::Read, events)
            .get("/runs/{id}/events", Scope::Read, run_events)
            .with_state(self)
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(events, run_events),
    tags((name = "events", description = "Server-Sent Events of the records on chatgptd's topics"))
)]
struct EventsApi;

/// The query of `GET /events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Comma-separated topic names.
    topics: Option<String>,
    /// Only records with exactly this key.
    key: Option<String>,
    /// Where a new subscription starts: `latest` (default), `earliest`, or a duration such as
    /// `1h` for the records of the last hour. A `Last-Event-ID` overrides it.
    from: Option<String>,
}

/// Where a subscription starts.
#[derive(Debug, Clone, Copy)]
enum Start {
    /// Records produced from now on.
    Latest,
    /// Every record the topics still hold.
    Earliest,
    /// Records produced within this long before now.
    Since(Duration),
}

impl Start {
    fn parse(text: Option<&str>) -> Result<Start, String> {
        match text.map(str::trim) {
            None | Some("latest") => Ok(Start::Latest),
            Some("earliest") => Ok(Start::Earliest),
            Some(other) => humantime::parse_duration(other)
                .map(Start::Since)
                .map_err(|err| {
                    format!("from={other:?}: not latest, earliest or a duration such as 1h ({err})")
                }),
        }
    }
}

/// What one subscription reads: per topic, the key to keep (`None`: every record).
type Filters = BTreeMap<String, Option<String>>;

/// Next offset to read, per topic and partition.
type Positions = BTreeMap<(String, i32), i64>;

/// Follows topics as Server-Sent Events: a `ready` event once the start is fixed, then one
/// event per record (its topic, partition, offset, key, headers and value as JSON). Each
/// event's id holds the positions read, so a reconnect with `Last-Event-ID` misses nothing.
#[utoipa::path(get, path = "/events", tag = "events", params(EventsQuery), responses(
    (status = 200, description = "the event stream", body = String, content_type = "text/event-stream"),
    (status = 400, description = "no topics, an unknown topic, or an invalid `from`", body = ErrorBody),
    (status = 503, description = "too many subscribers, or the brokers cannot be reached", body = ErrorBody),
))]
async fn events(
    State(streams): State<EventStreams>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let query = match query_params(query) {
        Ok(query) => query,
        Err(response) => return *response,
    };
    let names: Vec<String> = query
        .topics
        .iter()
        .flat_map(|topics| topics.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect();
    let from = match Start::parse(query.from.as_deref()) {
        Ok(from) => from,
        Err(detail) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid query",
                json!({"detail": detail}),
            );
        }
    };
    if names.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "no topics: name them with ?topics=a,b",
            json!({"topics": streams.topics.iter().collect::<Vec<_>>()}),
        );
    }
    let filters = names
        .into_iter()
        .map(|name| (name, query.key.clone()))
        .collect();
    streams.subscribe(filters, from, &headers).await
}

/// Follows one workflow run as Server-Sent Events: its steps and their results.
#[utoipa::path(get, path = "/runs/{id}/events", tag = "events",
    params(("id" = String, Path, description = "the run id")),
    responses(
        (status = 200, description = "the event stream", body = String, content_type = "text/event-stream"),
        (status = 503, description = "too many subscribers, or the brokers cannot be reached", body = ErrorBody),
    ))]
async fn run_events(
    State(streams): State<EventStreams>,
    Path(run_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let run = &streams.run_topics;
    let filters = Filters::from([
        (run.steps.clone(), Some(run_id.clone())),
        (run.memory.clone(), Some(format!("run:{run_id}"))),
    ]);
    // A run's records all follow its start, and a run is forgotten after `history`: a new
    // subscriber sees the run from its beginning without reading the topics' whole retention.
    let from = Start::Since(run.history);
    streams.subscribe(filters, from, &headers).await
}

impl EventStreams {
    async fn subscribe(&self, filters: Filters, from: Start, headers: &HeaderMap) -> Response {
        if let Some(unknown) = filters.keys().find(|name| !self.topics.contains(*name)) {
            return error(
                StatusCode::NOT_FOUND,
                "unknown topic",
                json!({"topic": unknown, "topics": self.topics.iter().collect::<Vec<_>>()}),
            );
        }
        let resume = match headers.get("last-event-id").map(parse_last_event_id) {
            None => Positions::new(),
            Some(Ok(positions)) => positions,
            Some(Err(detail)) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid Last-Event-ID",
                    json!({"detail": detail}),
                );
            }
        };
        let Ok(permit) = Arc::clone(&self.subscribers).try_acquire_owned() else {
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many event subscribers",
                json!({"max_subscribers": self.max_subscribers}),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return response;
        };
        let consumer = match self.consumer() {
            Ok(consumer) => consumer,
            Err(err) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "cannot reach Kafka",
                    json!({"detail": err.to_string()}),
                );
            }
        };
        let (sender, receiver) = mpsc::channel(BUFFER);
        let mut subscription = Subscription {
            consumer,
            filters,
            from,
            positions: resume,
            not_before_ms: None,
            sender,
            shutdown: self.shutdown.clone(),
            runtime: tokio::runtime::Handle::current(),
            _permit: permit,
        };
        // The answer waits for the assignment, so a stream that cannot start is a 503, not
        // a 200 that ends at once.
        let assigned =
            tokio::task::spawn_blocking(move || subscription.assign().map(|()| subscription)).await;
        match assigned {
            Ok(Ok(subscription)) => {
                tokio::task::spawn_blocking(move || subscription.run());
                Sse::new(event_stream(receiver))
                    .keep_alive(KeepAlive::default())
                    .into_response()
            }
            Ok(Err(detail)) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot start the event stream",
                json!({"detail": detail}),
            ),
            Err(panicked) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the event stream failed to start",
                json!({"detail": panicked.to_string()}),
            ),
        }
    }

    fn consumer(&self) -> Result<BaseConsumer, rdkafka::error::KafkaError> {
        let mut config = self
            .kafka
            .base_config("events", &self.secrets)
            .map_err(|err| rdkafka::error::KafkaError::ClientCreation(err.to_string()))?;
        // librdkafka wants a group id; nothing is committed under it.
        config
            .set(
                "group.id",
                format!("chatgptd-events-{}", uuid::Uuid::new_v4()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        config.create()
    }
}

fn event_stream(receiver: mpsc::Receiver<Event>) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (Ok(event), receiver))
    })
}

/// One subscriber's consumer, on a blocking thread.
struct Subscription {
    consumer: BaseConsumer,
    filters: Filters,
    from: Start,
    positions: Positions,
    /// Records older than this (ms since the epoch) are skipped: set when a `Since` start
    /// had to fall back to reading a partition from its beginning.
    not_before_ms: Option<i64>,
    sender: mpsc::Sender<Event>,
    shutdown: CancellationToken,
    /// The runtime whose timers and channels `deliver` waits on from this blocking thread.
    runtime: tokio::runtime::Handle,
    /// Held for as long as the subscription runs.
    _permit: OwnedSemaphorePermit,
}

impl Subscription {
    /// Streams until the client leaves or the process shuts down. Call after `assign`.
    fn run(mut self) {
        let ready = Event::default()
            .event("ready")
            .id(last_event_id(&self.positions))
            .data(json!({"topics": self.filters.keys().collect::<Vec<_>>()}).to_string());
        if !self.deliver(ready) {
            return;
        }
        let codec = Codec::builtin();
        while !self.shutdown.is_cancelled() && !self.sender.is_closed() {
            let message = match self.consumer.poll(Duration::from_millis(200)) {
                None => continue,
                Some(Err(err)) => {
                    debug!(%err, "event subscription: consumer error");
                    continue;
                }
                Some(Ok(message)) => message,
            };
            let topic = message.topic().to_string();
            self.positions
                .insert((topic.clone(), message.partition()), message.offset() + 1);
            let recent = match (self.not_before_ms, message.timestamp().to_millis()) {
                (Some(not_before), Some(produced)) => produced >= not_before,
                _ => true,
            };
            let wanted = recent
                && match self.filters.get(&topic) {
                    Some(Some(key)) => message.key() == Some(key.as_bytes()),
                    Some(None) => true,
                    None => false,
                };
            if !wanted {
                continue;
            }
            let record = record_json(&codec, &message.detach());
            let name = record["schema"]
                .as_str()
                .map_or("record", |schema| schema.trim_start_matches("chatgptd."))
                .to_string();
            let event = Event::default()
                .event(name)
                .id(last_event_id(&self.positions))
                .data(record.to_string());
            if !self.deliver(event) {
                return;
            }
        }
    }

    /// Hands `event` to the client's stream, waiting while its channel is full (a slow client
    /// holds its consumer back). False once the client left or the process shuts down: a
    /// client that stopped reading must not hold this thread, and with it the process's
    /// shutdown, forever, as a plain `blocking_send` would.
    fn deliver(&self, event: Event) -> bool {
        self.runtime.block_on(async {
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => false,
                sent = self.sender.send(event) => sent.is_ok(),
            }
        })
    }

    /// Assigns every partition of the subscribed topics at an explicit offset (resumed, or
    /// the current start or end), so that `ready` means what it says.
    fn assign(&mut self) -> Result<(), String> {
        let mut assignment = TopicPartitionList::new();
        let topics: Vec<String> = self.filters.keys().cloned().collect();
        for topic in &topics {
            let metadata = self
                .consumer
                .fetch_metadata(Some(topic), METADATA_TIMEOUT)
                .map_err(|err| format!("metadata of {topic}: {err}"))?;
            let partitions = metadata
                .topics()
                .first()
                .map_or(0, |t| t.partitions().len() as i32);
            if partitions == 0 {
                return Err(format!("topic {topic} does not exist"));
            }
            for partition in 0..partitions {
                let offset = match self.positions.get(&(topic.clone(), partition)) {
                    Some(&next) => next,
                    None => {
                        let (low, high) = self
                            .consumer
                            .fetch_watermarks(topic, partition, METADATA_TIMEOUT)
                            .map_err(|err| format!("offsets of {topic}[{partition}]: {err}"))?;
                        match self.from {
                            Start::Latest => high,
                            Start::Earliest => low,
                            Start::Since(window) => {
                                self.offset_at(topic, partition, window, (low, high))?
                            }
                        }
                    }
                };
                self.positions.insert((topic.clone(), partition), offset);
                assignment
                    .add_partition_offset(topic, partition, Offset::Offset(offset))
                    .map_err(|err| err.to_string())?;
            }
        }
        self.consumer
            .assign(&assignment)
            .map_err(|err| format!("assigning partitions: {err}"))
    }
}

impl Subscription {
    /// The first offset of a record produced within `window` before now.
    ///
    /// Kafka answers "none" both when no record is that recent and when the broker cannot
    /// look offsets up by time (librdkafka's mock cluster, the embedded broker). A non-empty
    /// partition is then read from its start with older records skipped: slower, never wrong.
    fn offset_at(
        &mut self,
        topic: &str,
        partition: i32,
        window: Duration,
        (low, high): (i64, i64),
    ) -> Result<i64, String> {
        let since_ms =
            chatgptd_types::now_ms() - i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let mut query = TopicPartitionList::new();
        query
            .add_partition_offset(topic, partition, Offset::Offset(since_ms.max(0)))
            .map_err(|err| err.to_string())?;
        let found = self
            .consumer
            .offsets_for_times(query, METADATA_TIMEOUT)
            .map_err(|err| format!("offsets by time of {topic}[{partition}]: {err}"))?;
        Ok(
            match found.find_partition(topic, partition).map(|p| p.offset()) {
                Some(Offset::Offset(offset)) => offset,
                _ if low < high => {
                    self.not_before_ms = Some(since_ms);
                    low
                }
                _ => high,
            },
        )
    }
}

/// An event id: `topic:partition:next_offset` for every partition, comma-separated. Topic
/// names cannot hold `:` or `,`.
fn last_event_id(positions: &Positions) -> String {
    positions
        .iter()
        .map(|((topic, partition), next)| format!("{topic}:{partition}:{next}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_last_event_id(value: &HeaderValue) -> Result<Positions, String> {
    let text = value.to_str().map_err(|_| "not ASCII".to_string())?;
    let mut positions = Positions::new();
    for entry in text.split(',').filter(|entry| !entry.is_empty()) {
        let mut parts = entry.rsplitn(3, ':');
        let (Some(next), Some(partition), Some(topic)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("{entry:?} is not topic:partition:offset"));
        };
        let partition: i32 = partition
            .parse()
            .map_err(|_| format!("{entry:?}: partition {partition:?} is not a number"))?;
        let next: i64 = next
            .parse()
            .map_err(|_| format!("{entry:?}: offset {next:?} is not a number"))?;
        if partition < 0 || next < 0 {
            return Err(format!("{entry:?}: negative partition or offset"));
        }
        positions.insert((topic.to_string(), partition), next);
    }
    Ok(positions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip() {
        let positions = Positions::from([
            (("tickets.enriched".to_string(), 0), 15),
            (("tickets.enriched".to_string(), 5), 0),
            (("workflows.steps".to_string(), 2), 7),
        ]);
        let id = last_event_id(&positions);
        assert_eq!(
            id,
            "tickets.enriched:0:15,tickets.enriched:5:0,workflows.steps:2:7"
        );
        let parsed = parse_last_event_id(&HeaderValue::from_str(&id).unwrap()).unwrap();
        assert_eq!(parsed, positions);
    }

    #[test]
    fn bad_event_ids_say_why() {
        for (id, expected) in [
            ("tickets.enriched:0", "is not topic:partition:offset"),
            ("tickets.enriched:x:3", "partition \"x\" is not a number"),
            (
                "tickets.enriched:1:three",
                "offset \"three\" is not a number",
            ),
            ("tickets.enriched:-1:3", "negative"),
        ] {
            let err = parse_last_event_id(&HeaderValue::from_static(id)).unwrap_err();
            assert!(err.contains(expected), "{id}: {err}");
        }
    }
}
