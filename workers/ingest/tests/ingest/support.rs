//! The harness: a mock Kafka cluster with the topic, a real memory backend, the gateway served
//! on 127.0.0.1:0, and signed webhooks built from the fixtures.

use std::sync::Arc;
use std::time::Duration;

use chatgptd_memory::{Memory, SqliteMemory};
use chatgptd_runtime::{Health, KafkaOptions, WorkerContext};
use chatgptd_testkit::kafka::{MockKafka, consume};
use chatgptd_types::Secrets;
use chatgptd_types::avro::Codec;
use chatgptd_types::records::TicketEvent;
use chatgptd_types::topics::names;
use chatgptd_worker_ingest::source::route;
use chatgptd_worker_ingest::{Ingest, IngestOptions};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientConfig, Message};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// Every source's signing secret in these tests.
pub use chatgptd_testkit::webhooks::{SECRET, Webhook};
/// The names [`signed`] options give the sources' signing secrets.
pub const SECRET_NAMES: [&str; 3] = [
    "JIRA_WEBHOOK_SECRET",
    "SERVICENOW_WEBHOOK_SECRET",
    "GITHUB_WEBHOOK_SECRET",
];
/// The ServiceNow instance events link to.
pub const INSTANCE_URL: &str = "https://acme.service-now.com";

/// A fixture's exact bytes.
pub fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|err| panic!("reading {full}: {err}"))
}

pub const JIRA_CREATED: &str = "jira/jira_issue_created.cloud.mattermost-plugin-jira.json";
pub const JIRA_UPDATED: &str = "jira/jira_issue_updated.priority.cloud.mattermost-plugin-jira.json";
pub const JIRA_COMMENT: &str = "jira/comment_created.cloud.mattermost-plugin-jira.json";
pub const JIRA_ADF_COMMENT: &str = "jira/rest_v3_add_comment.request.atlassian-openapi.json";
pub const SERVICENOW_RULE: &str = "servicenow/SYNTH_business_rule_outbound_incident.json";
pub const SERVICENOW_TABLE: &str =
    "servicenow/table_api_get_incident.response.servicenow-docs.json";
pub const GITHUB_OPENED: &str = "github/issues.opened.octokit-webhooks.json";

/// The Jira projects of the fixtures (`KT-22`, `TES-41`).
pub const JIRA_PROJECTS: [&str; 2] = ["KT", "TES"];
/// The repository of the GitHub fixture.
pub const GITHUB_REPOSITORY: &str = "Codertocat/Hello-World";

/// The options of most tests: defaults, with the ServiceNow instance set and the fixtures'
/// projects and repository allowed.
pub fn options() -> IngestOptions {
    let mut options = IngestOptions::default();
    options.servicenow.instance_url = INSTANCE_URL.to_string();
    options.jira.projects = JIRA_PROJECTS.map(String::from).to_vec();
    options.github.repositories = vec![GITHUB_REPOSITORY.to_string()];
    options
}

/// `options` with every source's `secret_env` naming one of [`SECRET_NAMES`].
pub fn signed(mut options: IngestOptions) -> IngestOptions {
    let [jira, servicenow, github] = SECRET_NAMES.map(String::from);
    options.jira.secret_env = jira;
    options.servicenow.secret_env = servicenow;
    options.github.secret_env = github;
    options
}

/// [`SECRET`] under every one of [`SECRET_NAMES`], and nothing else.
pub fn secrets() -> Secrets {
    Secrets::from_map(SECRET_NAMES.map(|name| (name, SECRET)))
}

/// A mock cluster with the TicketEvents topic (3 partitions), and a SQLite memory.
pub struct Setup {
    pub kafka: MockKafka,
    pub memory: Arc<dyn Memory>,
    _dir: tempfile::TempDir,
}

impl Setup {
    pub async fn start() -> Setup {
        chatgptd_testkit::init_logging();
        let kafka = MockKafka::start();
        kafka.create_topic(names::TICKET_EVENTS, 3);
        let dir = tempfile::tempdir().unwrap();
        let memory = SqliteMemory::open(&dir.path().join("memory.db"), "test")
            .await
            .unwrap();
        Setup {
            kafka,
            memory: Arc::new(memory),
            _dir: dir,
        }
    }

    /// A gateway on this cluster and memory, every source signed with [`SECRET`].
    pub async fn gateway(&self, options: IngestOptions) -> Gateway {
        Gateway::start(
            signed(options),
            &self.kafka.options(),
            self.memory.clone(),
            secrets(),
        )
        .await
    }

    /// A gateway on this cluster and memory with no secret for any source.
    pub async fn unsigned_gateway(&self, options: IngestOptions) -> Gateway {
        Gateway::start(
            options,
            &self.kafka.options(),
            self.memory.clone(),
            Secrets::from_map::<&str, &str>([]),
        )
        .await
    }

    /// Records on the TicketEvents topic, from the high watermarks (exact and immediate:
    /// the gateway answers 202 only after the ack).
    pub async fn record_count(&self) -> i64 {
        record_count(&self.kafka.brokers()).await
    }

    /// Reads `count` TicketEvents records.
    pub async fn records(&self, count: usize) -> Vec<OwnedMessage> {
        let brokers = self.kafka.brokers();
        let records = tokio::task::spawn_blocking(move || {
            consume(
                &brokers,
                names::TICKET_EVENTS,
                count,
                Duration::from_secs(20),
            )
        })
        .await
        .unwrap();
        assert_eq!(records.len(), count, "records on {}", names::TICKET_EVENTS);
        records
    }
}

/// The sum of the TicketEvents partitions' high watermarks.
pub async fn record_count(brokers: &str) -> i64 {
    let brokers = brokers.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .unwrap();
        (0..3)
            .map(|partition| {
                consumer
                    .fetch_watermarks(names::TICKET_EVENTS, partition, Duration::from_secs(10))
                    .unwrap()
                    .1
            })
            .sum()
    })
    .await
    .unwrap()
}

/// A record's TicketEvent.
pub fn decode(record: &OwnedMessage) -> TicketEvent {
    Codec::builtin()
        .decode::<TicketEvent>(record.payload().unwrap())
        .unwrap()
}

/// The key of a record, as text.
pub fn key(record: &OwnedMessage) -> String {
    String::from_utf8(record.key().unwrap().to_vec()).unwrap()
}

/// A gateway served on a loopback port until dropped.
pub struct Gateway {
    pub base_url: String,
    client: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Gateway {
    pub async fn start(
        options: IngestOptions,
        kafka: &KafkaOptions,
        memory: Arc<dyn Memory>,
        secrets: Secrets,
    ) -> Gateway {
        let context = WorkerContext::new(kafka, &Health::default(), &Secrets::env()).unwrap();
        let ingest = Ingest::new(options, &context, memory, &secrets).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = ingest.router();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Gateway {
            base_url: format!("http://{address}"),
            client: chatgptd_testkit::http_client(),
            server,
        }
    }

    /// Posts a webhook; returns status, headers and the JSON body.
    pub async fn send(&self, webhook: &Webhook) -> Answer {
        let mut request = self
            .client
            .post(format!("{}{}", self.base_url, route(webhook.source)))
            .header("content-type", "application/json")
            .body(webhook.body.clone());
        for (name, value) in &webhook.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("answer {status} is not JSON ({err}): {text}"));
        Answer {
            status,
            headers,
            body,
        }
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An answer of the gateway.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The body's `detail`, what the sender is told; every refusal has one.
    pub fn detail(&self) -> &str {
        self.body["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("no detail in {}", self.body))
    }

    /// `Retry-After` in seconds.
    pub fn retry_after(&self) -> Option<u64> {
        self.headers
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok())
    }
}

/// A fixture's JSON, to derive a payload from.
pub fn fixture_json(path: &str) -> Value {
    serde_json::from_slice(&fixture(path)).unwrap()
}
