//! Event streams for subscribers (`GET /events`, `GET /runs/{id}/events`): Server-Sent
//! Events read over HTTP on 127.0.0.1 from the mock cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use chatgptd_node::events::{EventStreams, RunTopics};
use chatgptd_testkit::kafka::{MockKafka, produce, producer};
use chatgptd_testkit::records::step;
use chatgptd_testkit::sse::Subscriber;
use chatgptd_testkit::{http_client, init_logging, wait_until};
use chatgptd_types::Secrets;
use chatgptd_types::avro::Codec;
use chatgptd_types::records::MemoryRecord;
use chatgptd_types::topics::{TopicsFile, names};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);
/// A topic the server may stream that the broker does not have.
const DECLARED_NOT_CREATED: &str = "declared.not-created";

/// The mock cluster with chatgptd's topics, and an HTTP server of the event streams.
struct Server {
    /// Lives as long as the test.
    _kafka: MockKafka,
    producer: FutureProducer,
    url: String,
    shutdown: CancellationToken,
    serving: JoinHandle<std::io::Result<()>>,
    streams: EventStreams,
}

impl Server {
    async fn start(max_subscribers: usize) -> Server {
        init_logging();
        let kafka = MockKafka::start();
        let topics = TopicsFile::builtin();
        for topic in &topics.topics {
            kafka.create_topic(&topic.name, topic.partitions);
        }
        let shutdown = CancellationToken::new();
        let streams = EventStreams::new(
            kafka.options(),
            Secrets::env(),
            topics
                .topics
                .into_iter()
                .map(|topic| topic.name)
                .chain([DECLARED_NOT_CREATED.to_string()]),
            RunTopics {
                steps: names::WORKFLOW_STEPS.into(),
                memory: names::MEMORY_RECORDS.into(),
                history: Duration::from_secs(3600),
            },
            max_subscribers,
            shutdown.clone(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let serving = tokio::spawn(chatgptd_runtime::http::serve(
            listener,
            streams.clone().router().into_router(),
            shutdown.clone(),
        ));
        Server {
            producer: producer(&kafka.brokers()),
            _kafka: kafka,
            url,
            shutdown,
            serving,
            streams,
        }
    }

    async fn send(&self, topic: &str, key: &str, payload: &[u8]) -> (i32, i64) {
        produce(
            &self.producer,
            topic,
            None,
            Some(key.as_bytes()),
            payload,
            &[],
        )
        .await
    }
}

fn memory_record(owner: &str, text: &str) -> Vec<u8> {
    Codec::builtin()
        .encode(&MemoryRecord {
            id: format!("{owner}:{text}"),
            owner: owner.into(),
            kind: "step_result".into(),
            text: text.into(),
            tags: vec![],
            created_at_ms: 0,
            source_topic: names::WORKFLOW_STEPS.into(),
            source_partition: 0,
            source_offset: 0,
            attributes: BTreeMap::new(),
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_gets_its_keys_records_decoded_and_resumes_where_it_stopped() {
    let server = Server::start(8).await;
    // Produced before the subscription: not part of a stream that starts at the end.
    server
        .send(names::WORKFLOW_STEPS, "run-a", &step("run-a", "before"))
        .await;
    let path = format!("/events?topics={}&key=run-a", names::WORKFLOW_STEPS);
    let (mut subscriber, _) = Subscriber::open(&server.url, &path, None).await;

    let (partition, first_offset) = server
        .send(names::WORKFLOW_STEPS, "run-a", &step("run-a", "plan"))
        .await;
    server
        .send(names::WORKFLOW_STEPS, "run-b", &step("run-b", "plan"))
        .await;
    server
        .send(names::WORKFLOW_STEPS, "run-a", &step("run-a", "write"))
        .await;
    let events = subscriber.records(2).await;
    let steps: Vec<&str> = events
        .iter()
        .map(|e| e.data["value"]["step_id"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["plan", "write"], "only run-a's, in order");
    let first = &events[0];
    assert_eq!(first.event, "WorkflowStep");
    assert_eq!(first.data["schema"], "chatgptd.WorkflowStep");
    assert_eq!(first.data["key"], "run-a");
    assert_eq!(first.data["topic"], names::WORKFLOW_STEPS);
    assert_eq!(first.data["partition"], partition);
    assert_eq!(first.data["offset"], first_offset);
    assert!(
        first.id.contains(&format!(
            "{}:{partition}:{}",
            names::WORKFLOW_STEPS,
            first_offset + 1
        )),
        "the id holds the position after the record: {}",
        first.id
    );

    // The client goes away; a record arrives meanwhile; it comes back with the last id.
    let last_id = events[1].id.clone();
    drop(subscriber);
    server
        .send(names::WORKFLOW_STEPS, "run-a", &step("run-a", "publish"))
        .await;
    let (mut subscriber, ready) = Subscriber::open(&server.url, &path, Some(&last_id)).await;
    assert_eq!(ready.id, last_id, "it starts where the last event left it");
    let next = subscriber.next().await.unwrap();
    assert_eq!(
        next.data["value"]["step_id"], "publish",
        "nothing missed, nothing repeated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stream_shows_its_steps_and_their_results_from_the_start() {
    let server = Server::start(8).await;
    // A step of the same id two hours ago: older than the run history, so never shown.
    let two_hours_ago = chatgptd_types::now_ms() - 2 * 3600 * 1000;
    server
        .producer
        .send(
            FutureRecord::to(names::WORKFLOW_STEPS)
                .key("run-x")
                .payload(&step("run-x", "stale"))
                .timestamp(two_hours_ago),
            WAIT,
        )
        .await
        .unwrap();
    // The run began before anyone subscribed.
    server
        .send(names::WORKFLOW_STEPS, "run-x", &step("run-x", "plan"))
        .await;
    server
        .send(names::WORKFLOW_STEPS, "run-y", &step("run-y", "plan"))
        .await;
    server
        .send(
            names::MEMORY_RECORDS,
            "run:run-x",
            &memory_record("run:run-x", "the plan"),
        )
        .await;
    server
        .send(
            names::MEMORY_RECORDS,
            "run:run-y",
            &memory_record("run:run-y", "another plan"),
        )
        .await;

    let (mut subscriber, _) = Subscriber::open(&server.url, "/runs/run-x/events", None).await;
    let mut seen: Vec<(String, String, String)> = subscriber
        .records(2)
        .await
        .into_iter()
        .map(|e| {
            let what = e.data["value"]["step_id"]
                .as_str()
                .or(e.data["value"]["text"].as_str())
                .unwrap_or_default()
                .to_string();
            (e.event, e.data["key"].as_str().unwrap().to_string(), what)
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (
                "MemoryRecord".to_string(),
                "run:run-x".to_string(),
                "the plan".to_string()
            ),
            (
                "WorkflowStep".to_string(),
                "run-x".to_string(),
                "plan".to_string()
            ),
        ]
    );
    server
        .send(names::WORKFLOW_STEPS, "run-x", &step("run-x", "write"))
        .await;
    let next = subscriber.next().await.unwrap();
    assert_eq!(next.data["value"]["step_id"], "write", "run-y never shows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_subscriptions_get_a_json_error() {
    let server = Server::start(8).await;
    let client = http_client();
    let get = |path: &str, last_event_id: Option<&str>| {
        let mut request = client.get(format!("{}{path}", server.url));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, body)
        }
    };

    let (status, body) = get("/events", None).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("no topics"),
        "{body}"
    );
    assert!(
        body["topics"]
            .as_array()
            .unwrap()
            .contains(&Value::from(names::TICKETS_ENRICHED)),
        "it lists what may be followed: {body}"
    );

    let (status, body) = get("/events?topics=tickets.enriched,tickets.typo", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "unknown topic");
    assert_eq!(body["topic"], "tickets.typo");

    let (status, body) = get(&format!("/events?topics={DECLARED_NOT_CREATED}"), None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "cannot start the event stream");
    assert!(
        body["detail"].as_str().unwrap().contains("does not exist"),
        "{body}"
    );

    let (status, body) = get("/events?topics=tickets.enriched&from=yesterday", None).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid query");

    let (status, body) = get(
        "/events?topics=tickets.enriched",
        Some("tickets.enriched:0"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid Last-Event-ID");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("topic:partition:offset"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_are_bounded_and_a_closed_stream_frees_its_place() {
    let server = Server::start(1).await;
    let path = format!("/events?topics={}", names::TICKETS_ENRICHED);
    let (first, _) = Subscriber::open(&server.url, &path, None).await;

    let response = http_client()
        .get(format!("{}{path}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "too many event subscribers");
    assert_eq!(body["max_subscribers"], 1);

    drop(first);
    // The subscription notices the closed stream at its next poll.
    wait_until(WAIT, "a place after the first subscriber left", || async {
        let response = http_client()
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_streams_so_the_server_can_stop() {
    let server = Server::start(8).await;
    let path = format!("/events?topics={}", names::AGENT_MESSAGES);
    let (mut subscriber, _) = Subscriber::open(&server.url, &path, None).await;
    server.shutdown.cancel();
    assert!(
        subscriber.next().await.is_none(),
        "the stream ends on shutdown"
    );
    tokio::time::timeout(WAIT, server.serving)
        .await
        .expect("the server stops once its streams ended")
        .unwrap()
        .unwrap();
}

/// A client that opens a stream, reads its first event, and then never reads again, with a
/// small receive buffer so the server's writes back up quickly.
async fn stalled_client(url: &str, path: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = url.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(address).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !String::from_utf8_lossy(&head).contains("ready") {
        let read = tokio::time::timeout(WAIT, stream.read(&mut buffer))
            .await
            .expect("the stream starts")
            .unwrap();
        assert!(read > 0, "the stream ended early");
        head.extend_from_slice(&buffer[..read]);
    }
    assert!(
        String::from_utf8_lossy(&head).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_does_not_hold_shutdown() {
    let server = Server::start(8).await;
    let path = format!("/events?topics={}", names::MEMORY_RECORDS);
    let stalled = stalled_client(&server.url, &path).await;
    // Far more than the subscriber's channel, the server's write buffer and both sockets'
    // buffers hold: the subscription is held back waiting for its client.
    let text = "x".repeat(16 * 1024);
    let payloads: Vec<Vec<u8>> = (0..2000)
        .map(|i| memory_record(&format!("owner-{i}"), &text))
        .collect();
    let server_ref = &server;
    futures::future::join_all(payloads.iter().enumerate().map(|(i, payload)| async move {
        let key = format!("owner-{i}");
        server_ref.send(names::MEMORY_RECORDS, &key, payload).await
    }))
    .await;
    // Time for the subscription to read what it can and get stuck.
    tokio::time::sleep(Duration::from_secs(2)).await;

    assert_eq!(server.streams.subscribers(), 1);
    server.shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(15), server.serving).await;
    let released = tokio::time::timeout(Duration::from_secs(5), async {
        while server.streams.subscribers() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Closed before asserting, so that a failure does not hang the test's runtime on the
    // subscription's thread.
    drop(stalled);
    stopped
        .expect("the server stops although a client stopped reading")
        .unwrap()
        .unwrap();
    released.expect("the subscription's thread ends at shutdown, its client still connected");
}
