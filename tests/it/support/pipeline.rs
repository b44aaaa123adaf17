//! What the ticket tests add to the node: the fake model and trackers in a `chatgptd.toml`,
//! the nodes of a ticket pipeline in front of them, what a test reads back from Kafka, memory
//! and the fakes, and [`Pipeline::deliver`], which follows one ticket through every hop up to
//! its write-back. What each tracker must receive is the tests' table (`tickets.rs`).

use std::time::Duration;

use chatgptd_node::{Config, Role};
use chatgptd_testkit::fake_openai::{Behaviour, FakeOpenAi, FakeOptions};
use chatgptd_testkit::fake_trackers::{
    Api, Call, FakeTrackers, GITHUB_TOKEN, JIRA_API_TOKEN, SERVICENOW_PASSWORD,
};
use chatgptd_testkit::kafka::{MockKafka, header};
use chatgptd_testkit::redis::RedisServer;
use chatgptd_testkit::webhooks::{SECRET as WEBHOOK_SECRET, Webhook};
use chatgptd_testkit::{http_client, wait_until};
use chatgptd_types::Source;
use chatgptd_types::avro::{AvroRecord, Codec};
use chatgptd_types::records::{EnrichedTicket, TicketEvent};
use chatgptd_types::topics::names::{DEAD_LETTER, MEMORY_RECORDS, TICKET_EVENTS, TICKETS_ENRICHED};
use chatgptd_types::trace::TraceContext;
use chatgptd_worker_ingest::source::route;
use rdkafka::Message;
use rdkafka::message::OwnedMessage;
use serde_json::{Value, json};

use super::node::{self, Node};

/// How long a test waits for anything.
pub const WAIT: Duration = Duration::from_secs(30);

/// The key the fake model wants.
pub const MODEL_KEY: &str = "sk-e2e-fake-key";
/// Every secret, under the name [`config_toml`] gives it (the write-back's under their
/// default names): what a deployment's environment holds. The nodes get them as a map,
/// `chatgptd up` as its environment.
pub const SECRETS: [(&str, &str); 7] = [
    ("E2E_OPENAI_API_KEY", MODEL_KEY),
    ("E2E_JIRA_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ("E2E_SERVICENOW_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ("E2E_GITHUB_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ("JIRA_API_TOKEN", JIRA_API_TOKEN),
    ("SERVICENOW_PASSWORD", SERVICENOW_PASSWORD),
    ("GITHUB_TOKEN", GITHUB_TOKEN),
];

/// The tickets the webhook fixtures are about: Jira project `KT`, GitHub
/// `Codertocat/Hello-World`.
pub const JIRA_ISSUE_ID: &str = "10509";
pub const JIRA_ISSUE_KEY: &str = "KT-22";
pub const SYS_ID: &str = "a9e30c7dc61122760116894de7bcc7bd";
pub const INCIDENT: &str = "INC0000046";
pub const GITHUB_ISSUE: (&str, &str, u64) = ("Codertocat", "Hello-World", 1);

/// The sender's trace (the W3C specification's example).
pub const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
pub const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// What the fake model answers ([`model_answer`]) for the first ticket of a test.
pub const SUMMARY: &str = "The reporter cannot use the product since this morning.";
pub const REPLY: &str =
    "Hello,\nthanks for the report. We are looking into it now.\n\nBest regards";

/// The model's scripted answer, the first of a test: [`SUMMARY`], [`REPLY`] and the rest.
pub fn model_answer() -> Behaviour {
    Behaviour::Content(
        json!({
            "category": "access", "suggested_priority": "high", "sentiment": "negative",
            "language": "EN", "summary": SUMMARY, "suggested_reply": REPLY,
            "labels": ["login", "needs triage"], "confidence": 0.87,
        })
        .to_string(),
    )
}

/// The fakes in a `chatgptd.toml`: the model, every tracker (the testkit's write-back
/// sections; replies are drafts, the default), the fixtures' project and repository allowed
/// on both sides, no client-side limits, the secrets by the names of [`SECRETS`]. A stopped
/// write-back abandons what is in flight after a second.
pub fn config_toml(model: &FakeOpenAi, trackers: &FakeTrackers) -> String {
    let mut writeback = trackers.writeback_sections(&["KT"], &["Codertocat/Hello-World"]);
    writeback["request_timeout"] = json!("5s");
    writeback["consumer"] = json!({"drain_timeout": "1s"});
    let writeback = toml::to_string(&json!({ "writeback": writeback })).unwrap();
    format!(
        r#"
[model]
provider = "openai"
base_url = "{model}"
api_key_env = "E2E_OPENAI_API_KEY"
default_limits = {{ requests_per_minute = 0, tokens_per_minute = 0, max_concurrency = 0 }}

[ingest]
jira = {{ secret_env = "E2E_JIRA_WEBHOOK_SECRET", projects = ["KT"] }}
servicenow = {{ secret_env = "E2E_SERVICENOW_WEBHOOK_SECRET" }}
github = {{ secret_env = "E2E_GITHUB_WEBHOOK_SECRET", repositories = ["Codertocat/Hello-World"] }}

{writeback}"#,
        model = model.base_url(),
    )
}

/// The fake model (it wants [`MODEL_KEY`]) and trackers (with the fixtures' tickets).
pub async fn fakes() -> (FakeOpenAi, FakeTrackers) {
    let api_key = Some(MODEL_KEY.to_string());
    let model = FakeOpenAi::start_with(FakeOptions {
        api_key,
        ..FakeOptions::default()
    });
    let trackers = FakeTrackers::start().await;
    trackers.add_jira_issue(JIRA_ISSUE_ID, JIRA_ISSUE_KEY);
    trackers.add_servicenow_incident(SYS_ID, INCIDENT);
    let (owner, repo, issue) = GITHUB_ISSUE;
    trackers.add_github_issue(owner, repo, issue);
    (model.await, trackers)
}

/// What one webhook became on its way through.
pub struct Delivered {
    pub source: Source,
    pub event: TicketEvent,
    pub enriched: EnrichedTicket,
    /// The provenance line every tracker's comment ends with.
    pub footer: String,
}

/// The fakes of one test and the nodes in front of them.
pub struct Pipeline {
    pub model: FakeOpenAi,
    pub trackers: FakeTrackers,
    pub config: Config,
    /// Ingest and enrich, and the write-back unless it runs in a node of its own.
    pub node: Node,
    /// The write-back's own node, in a split pipeline.
    writeback: Option<Node>,
    client: reqwest::Client,
    /// The memory of a split pipeline's nodes.
    redis: Option<RedisServer>,
    _kafka: MockKafka,
    _dir: tempfile::TempDir,
}

impl Pipeline {
    /// One node running ingest, enrich and write-back, as `chatgptd up` does, on SQLite.
    pub async fn start() -> Pipeline {
        Self::start_on(None).await
    }

    /// Ingest and enrich in one node, the write-back in another, sharing a redis-server.
    pub async fn split() -> Pipeline {
        Self::start_on(Some(RedisServer::start().await)).await
    }

    async fn start_on(redis: Option<RedisServer>) -> Pipeline {
        let (kafka, dir) = (node::kafka(), tempfile::tempdir().unwrap());
        let (model, trackers) = fakes().await;
        let config = node::config(&kafka, dir.path(), "tickets");
        let mut config = node::with_toml(config, &config_toml(&model, &trackers));
        let mut roles = vec![Role::Ingest, Role::Enrich];
        match &redis {
            Some(redis) => config.memory.redis_url = redis.url(),
            None => roles.push(Role::Writeback),
        }
        let node = Node::start(config.clone(), SECRETS, &roles).await;
        let mut pipeline = Pipeline {
            model,
            trackers,
            config,
            node,
            writeback: None,
            client: http_client(),
            redis,
            _kafka: kafka,
            _dir: dir,
        };
        if pipeline.redis.is_some() {
            pipeline.start_writeback().await;
        }
        pipeline
    }

    /// Starts the write-back's own node (again after a stop: it resumes from its group's
    /// committed offsets).
    pub async fn start_writeback(&mut self) {
        assert!(self.writeback.is_none(), "the write-back is running");
        let node = Node::start(self.config.clone(), SECRETS, &[Role::Writeback]).await;
        self.writeback = Some(node);
    }

    /// Stops the write-back's node: what is in flight after `drain_timeout` is abandoned,
    /// neither finished nor committed, as in a crash.
    pub async fn stop_writeback(&mut self) {
        let node = self.writeback.take().expect("the write-back is running");
        node.stop().await.unwrap();
    }

    /// Posts a webhook; the status and the JSON body (every answer is JSON).
    pub async fn send(&self, webhook: &Webhook) -> (u16, Value) {
        let url = self.node.url(route(webhook.source));
        let response = webhook.post(&self.client, &url).await;
        let status = response.status().as_u16();
        let content_type = response.headers().get("content-type").cloned();
        let text = response.text().await.unwrap();
        let json = content_type
            .as_ref()
            .is_some_and(|v| v == "application/json");
        assert!(json, "answer {status} ({content_type:?}): {text}");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("answer {status} is not JSON ({err}): {text}"));
        (status, body)
    }

    /// Records on `topic` so far.
    pub async fn count(&self, topic: &str) -> i64 {
        node::count(&self.node.brokers(), topic).await
    }

    /// Waits for `count` records on `topic` and returns them.
    pub async fn records(&self, topic: &str, count: usize) -> Vec<OwnedMessage> {
        node::records(&self.node.brokers(), topic, count).await
    }

    pub fn calls(&self, api: Api) -> Vec<Call> {
        self.trackers.calls_to(api)
    }

    /// No tracker but `api` was called.
    pub fn assert_only_called(&self, api: Api) {
        for other in [Api::Jira, Api::ServiceNow, Api::GitHub] {
            assert!(
                other == api || self.calls(other).is_empty(),
                "{other:?} called"
            );
        }
    }

    /// Waits until the write-back recorded `key` as done in memory: the last step of a write,
    /// after which the record is acknowledged.
    pub async fn wait_written_back(&self, key: &str) {
        let memory = self.node.memory().await;
        wait_until(WAIT, &format!("the write-back's done key {key}"), || {
            let (memory, key) = (memory.clone(), key.to_string());
            async move { memory.get(&key).await.ok().flatten().map(|_| ()) }
        })
        .await;
    }

    /// Sends `webhook` (the first of its ticket, with a scripted model answer) and follows it
    /// through: exactly one TicketEvent, one EnrichedTicket with what the model answered, the
    /// trace on every record, the write-back done. Returns what was produced.
    pub async fn deliver(&self, webhook: &Webhook) -> Delivered {
        let source = webhook.source;
        let model_requests_before = self.model.request_count();
        self.model.push(model_answer());

        let (status, answer) = self.send(webhook).await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["status"], "accepted");
        assert_eq!(self.count(TICKET_EVENTS).await, 1);
        let event_record = &self.records(TICKET_EVENTS, 1).await[0];
        assert_eq!(answer["partition"], event_record.partition());
        assert_eq!(answer["offset"], event_record.offset());
        assert_traced(event_record);
        let event: TicketEvent = decode(event_record);
        assert_eq!(answer["event_id"], event.event_id.as_str());
        let derived = chatgptd_worker_ingest::parse::event_id(source, &event.delivery_id);
        assert_eq!(
            event.event_id, derived,
            "event ids derive from the delivery"
        );
        assert_eq!(event.source, source.as_str());
        let raw = event.raw_payload.as_bytes();
        assert_eq!(raw, webhook.body, "the payload is kept as received");
        let keyed = "keyed by ticket, so its updates stay in order";
        assert_eq!(key(event_record), event.key(), "{keyed}");

        let enriched_record = &self.records(TICKETS_ENRICHED, 1).await[0];
        assert_traced(enriched_record);
        assert_eq!(key(enriched_record), event.key());
        let enriched: EnrichedTicket = decode(enriched_record);
        // The ticket's identity, carried over.
        assert_eq!(enriched.event_id, event.event_id);
        assert_eq!(enriched.source, event.source);
        assert_eq!(enriched.ticket_id, event.ticket_id);
        assert_eq!(enriched.ticket_key, event.ticket_key);
        assert_eq!(enriched.title, event.title);
        assert_eq!(enriched.url, event.url);
        // What the model answered.
        assert_eq!(enriched.category, "access");
        assert_eq!(enriched.suggested_priority, "high");
        assert_eq!(enriched.sentiment, "negative");
        assert_eq!(enriched.language, "en", "languages are lowercased");
        assert_eq!(enriched.summary, SUMMARY);
        assert_eq!(enriched.suggested_reply, REPLY);
        assert_eq!(enriched.labels, ["login", "needs triage"]);
        assert_eq!(enriched.confidence, 0.87);
        assert!(enriched.related_tickets.is_empty());
        // Where it came from.
        let provenance = &enriched.provenance;
        assert_eq!(provenance.provider, "openai");
        assert_eq!(provenance.model, "gpt-4o-mini");
        assert!(!provenance.prompt_version.is_empty());
        let request_id = format!("req_{:016x}", model_requests_before + 1);
        assert_eq!(provenance.request_id.as_deref(), Some(request_id.as_str()));
        assert_eq!(provenance.finish_reason, "stop");
        assert!(!provenance.cached);
        assert!(provenance.prompt_tokens > 0 && provenance.completion_tokens > 0);
        assert_eq!(provenance.source_topic, TICKET_EVENTS);
        assert_eq!(provenance.source_partition, event_record.partition());
        assert_eq!(provenance.source_offset, event_record.offset());

        // The model was asked once, with the key, for the enrichment schema, about this ticket.
        let requests = self.model.requests();
        assert_eq!(requests.len(), model_requests_before + 1);
        let request = &requests[model_requests_before];
        let bearer = format!("Bearer {MODEL_KEY}");
        assert_eq!(request.header("authorization"), Some(bearer.as_str()));
        assert_eq!(request.uri, "/v1/chat/completions");
        assert_eq!(request.body["model"], "gpt-4o-mini");
        let schema = &request.body["response_format"]["json_schema"]["name"];
        assert_eq!(schema, "ticket_enrichment");
        let user_message = request.body["messages"][1]["content"].as_str().unwrap();
        let about = user_message.contains(&event.ticket_key) && user_message.contains(&event.title);
        assert!(about, "{user_message}");

        self.wait_written_back(&done_key(source, &enriched)).await;
        // The ticket and its enrichment are remembered, on the same trace.
        for record in self.records(MEMORY_RECORDS, 2).await {
            assert_traced(&record);
        }
        assert_eq!(self.count(TICKETS_ENRICHED).await, 1);
        assert_eq!(self.count(MEMORY_RECORDS).await, 2);
        assert_eq!(self.count(DEAD_LETTER).await, 0);

        let (model, prompt) = (&provenance.model, &provenance.prompt_version);
        let footer =
            format!("Generated by chatgptd: model {model}, prompt {prompt}, request {request_id}");
        Delivered {
            source,
            event,
            enriched,
            footer,
        }
    }
}

/// The record carries the sender's trace id, in a span of its own.
fn assert_traced(record: &OwnedMessage) {
    let topic = record.topic();
    let value = header(record, TraceContext::HEADER)
        .unwrap_or_else(|| panic!("a record on {topic} without traceparent"));
    let trace = TraceContext::parse(&value).unwrap();
    assert_eq!(trace.trace_id_hex(), TRACE_ID, "trace id on {topic}");
    assert_ne!(value, TRACEPARENT, "each hop is a child span");
}

pub fn decode<T: AvroRecord>(record: &OwnedMessage) -> T {
    Codec::builtin().decode(record.payload().unwrap()).unwrap()
}

fn key(record: &OwnedMessage) -> String {
    String::from_utf8(record.key().unwrap().to_vec()).unwrap()
}

/// The write-back's marker: `chatgptd:<source>:<ticket>:<prompt version>`.
pub fn marker(source: Source, enriched: &EnrichedTicket) -> String {
    let ticket = match source {
        Source::Jira | Source::ServiceNow => &enriched.ticket_id,
        // Issue numbers are unique per repository only: the marker names `owner/repo#n`.
        Source::GitHub => &enriched.ticket_key,
    };
    let version = &enriched.provenance.prompt_version;
    format!("chatgptd:{}:{ticket}:{version}", source.as_str())
}

/// The memory key a finished write-back leaves.
pub fn done_key(source: Source, enriched: &EnrichedTicket) -> String {
    marker(source, enriched).replacen("chatgptd:", "writeback:", 1)
}
