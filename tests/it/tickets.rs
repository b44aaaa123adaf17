//! The ticket pipeline end to end: the real public webhook payloads of Jira Cloud, ServiceNow
//! and GitHub, signed the way each sender signs, through the gateway, Kafka (the mock
//! cluster), the enrichment worker (a fake OpenAI-compatible model) and the write-back worker,
//! to the exact REST calls a fake Jira/ServiceNow/GitHub receives.
//!
//! Then what must change nothing: a redelivered webhook, a bad signature, a malformed
//! payload, and a write-back interrupted between posting its comment and acknowledging the
//! record. Last, the same path through the real binary (`chatgptd up`) and its config file.
//!
//! Every worker runs in this process as `chatgptd up` composes them: one producer, one SQLite
//! memory shared by the gateway (dedupe), the model client (result cache) and the write-back
//! (done keys).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chatgptd_memory::{Memory, MemoryOptions};
use chatgptd_model::{LimitOptions, ModelClient, ModelOptions, ProviderKind};
use chatgptd_runtime::{ConsumerOptions, Health, Service, WorkerContext};
use chatgptd_search::Retriever;
use chatgptd_testkit::fake_openai::{Behaviour, FakeOpenAi, FakeOptions};
use chatgptd_testkit::fake_trackers::{
    Api, Call, FakeTrackers, GITHUB_TOKEN, JIRA_API_TOKEN, JIRA_EMAIL, SERVICENOW_PASSWORD,
    SERVICENOW_USER,
};
use chatgptd_testkit::kafka::{MockKafka, committed, consume, header};
use chatgptd_testkit::{basic_auth, http_client, init_logging, unique, wait_until};
use chatgptd_types::Secrets;
use chatgptd_types::avro::Codec;
use chatgptd_types::records::{EnrichedTicket, TicketEvent};
use chatgptd_types::topics::{TopicsFile, names};
use chatgptd_types::trace::TraceContext;
use chatgptd_worker_enrich::EnrichOptions;
use chatgptd_worker_ingest::signature::{sign_base64, sign_hex};
use chatgptd_worker_ingest::source::route;
use chatgptd_worker_ingest::{Ingest, IngestOptions, Source};
use chatgptd_worker_writeback::{Writeback, WritebackOptions};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{Running, test_options};

const WAIT: Duration = Duration::from_secs(30);

/// Every source's webhook secret here (GitHub's documented test-vector secret).
const WEBHOOK_SECRET: &str = "It's a Secret to Everybody";
/// The model's API key, and the variable the model options name for it.
const MODEL_KEY_ENV: &str = "E2E_OPENAI_API_KEY";
const MODEL_KEY: &str = "sk-e2e-fake-key";
/// The sender's trace (the W3C specification's example).
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

const JIRA_FIXTURE: &str = "jira/jira_issue_created.cloud.mattermost-plugin-jira.json";
const SERVICENOW_FIXTURE: &str = "servicenow/SYNTH_business_rule_outbound_incident.json";
const GITHUB_FIXTURE: &str = "github/issues.opened.octokit-webhooks.json";

/// The tickets the fixtures are about.
const JIRA_ISSUE_ID: &str = "10509";
const JIRA_ISSUE_KEY: &str = "KT-22";
const SYS_ID: &str = "a9e30c7dc61122760116894de7bcc7bd";
const INCIDENT: &str = "INC0000046";
const GITHUB_OWNER: &str = "Codertocat";
const GITHUB_REPO: &str = "Hello-World";
const GITHUB_ISSUE: u64 = 1;

/// What the fake model answers for the first ticket of a test.
const SUMMARY: &str = "The reporter cannot use the product since this morning.";
const REPLY: &str = "Hello,\nthanks for the report. We are looking into it now.\n\nBest regards";

fn model_answer() -> Value {
    json!({
        "category": "access",
        "suggested_priority": "high",
        "sentiment": "negative",
        "language": "EN",
        "summary": SUMMARY,
        "suggested_reply": REPLY,
        "labels": ["login", "needs triage"],
        "confidence": 0.87,
    })
}

/// A fixture's exact bytes: from `../shared/fixtures/webhooks`, else from the identical copy
/// the ingest crate keeps in the repository.
pub(crate) fn fixture(path: &str) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        root.join("../shared/fixtures/webhooks").join(path),
        root.join("workers/ingest/tests/fixtures").join(path),
    ];
    candidates
        .iter()
        .find_map(|candidate| std::fs::read(candidate).ok())
        .unwrap_or_else(|| panic!("fixture {path} not found in {candidates:?}"))
}

/// A webhook as its sender posts it: body, delivery headers, signature.
#[derive(Debug, Clone)]
struct Webhook {
    source: Source,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

impl Webhook {
    /// The fixture of `source`, signed with [`WEBHOOK_SECRET`], with a `traceparent`.
    fn fixture(source: Source, delivery_id: &str) -> Webhook {
        let path = match source {
            Source::Jira => JIRA_FIXTURE,
            Source::ServiceNow => SERVICENOW_FIXTURE,
            Source::GitHub => GITHUB_FIXTURE,
        };
        Webhook::new(source, fixture(path), delivery_id).with_header("traceparent", TRACEPARENT)
    }

    /// `body` from `source`, signed with [`WEBHOOK_SECRET`]. ServiceNow's delivery id comes
    /// from the body (`sys_id:sys_updated_on`), so `delivery_id` is not sent for it.
    fn new(source: Source, body: Vec<u8>, delivery_id: &str) -> Webhook {
        let headers = match source {
            Source::Jira => vec![("X-Atlassian-Webhook-Identifier", delivery_id.to_string())],
            Source::ServiceNow => Vec::new(),
            Source::GitHub => vec![
                ("X-GitHub-Event", "issues".to_string()),
                ("X-GitHub-Delivery", delivery_id.to_string()),
            ],
        };
        Webhook {
            source,
            body,
            headers,
        }
        .signed_with(WEBHOOK_SECRET)
    }

    /// The signature header as the sender computes it with `secret`: hex for Jira and GitHub,
    /// base64 (`CertificateEncryption.generateMac`) for ServiceNow.
    fn signed_with(self, secret: &str) -> Webhook {
        let signature = match self.source {
            Source::ServiceNow => sign_base64(secret.as_bytes(), &self.body),
            Source::Jira | Source::GitHub => sign_hex(secret.as_bytes(), &self.body),
        };
        let name = signature_header(self.source);
        self.without_header(name).with_header(name, &signature)
    }

    fn with_header(mut self, name: &'static str, value: &str) -> Webhook {
        self.headers.push((name, value.to_string()));
        self
    }

    fn without_header(mut self, name: &str) -> Webhook {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }
}

fn signature_header(source: Source) -> &'static str {
    match source {
        Source::Jira => "X-Hub-Signature",
        // The gateway's default `ingest.servicenow.signature_header`.
        Source::ServiceNow => "X-Signature",
        Source::GitHub => "X-Hub-Signature-256",
    }
}

/// The model options every test uses: the fake, no client-side limits.
fn model_options(model: &FakeOpenAi) -> ModelOptions {
    let unlimited = LimitOptions {
        requests_per_minute: 0,
        tokens_per_minute: 0,
        max_concurrency: 0,
        ..LimitOptions::default()
    };
    ModelOptions {
        provider: ProviderKind::OpenAi,
        base_url: model.base_url(),
        api_key_env: MODEL_KEY_ENV.to_string(),
        default_limits: unlimited,
        ..ModelOptions::default()
    }
}

/// Every tracker enabled at the fake; replies are drafts (the defaults).
fn writeback_options(trackers: &FakeTrackers, group: &str) -> WritebackOptions {
    let mut options = WritebackOptions {
        request_timeout: Duration::from_secs(5),
        consumer: ConsumerOptions {
            // A stopped write-back abandons what is in flight after a second.
            drain_timeout: Duration::from_secs(1),
            ..test_options(group)
        },
        ..WritebackOptions::default()
    };
    options.jira.enabled = true;
    options.jira.base_url = trackers.jira_url();
    options.jira.email = JIRA_EMAIL.to_string();
    options.jira.projects = vec![jira_project()];
    options.jira.requests_per_second = 0;
    options.servicenow.enabled = true;
    options.servicenow.instance_url = trackers.servicenow_url();
    options.servicenow.username = SERVICENOW_USER.to_string();
    options.servicenow.requests_per_second = 0;
    options.github.enabled = true;
    options.github.api_url = trackers.github_url();
    options.github.repositories = vec![github_repository()];
    options.github.requests_per_second = 0;
    options
}

/// The fake trackers' credentials, under the names `options` gives them.
fn tracker_secrets(options: &WritebackOptions) -> Secrets {
    Secrets::from_map([
        (options.jira.api_token_env.as_str(), JIRA_API_TOKEN),
        (
            options.servicenow.password_env.as_str(),
            SERVICENOW_PASSWORD,
        ),
        (options.github.token_env.as_str(), GITHUB_TOKEN),
    ])
}

/// The project of the Jira fixture (`KT` of `KT-22`).
fn jira_project() -> String {
    JIRA_ISSUE_KEY.split('-').next().unwrap().to_string()
}

fn github_repository() -> String {
    format!("{GITHUB_OWNER}/{GITHUB_REPO}")
}

/// The gateway's defaults, with the fixtures' project and repository allowed, and every
/// source's webhooks signed with the secret [`webhook_secrets`] holds.
fn ingest_options() -> IngestOptions {
    let mut options = IngestOptions::default();
    options.jira.projects = vec![jira_project()];
    options.github.repositories = vec![github_repository()];
    options.jira.secret_env = "JIRA_WEBHOOK_SECRET".into();
    options.servicenow.secret_env = "SERVICENOW_WEBHOOK_SECRET".into();
    options.github.secret_env = "GITHUB_WEBHOOK_SECRET".into();
    options
}

/// [`WEBHOOK_SECRET`] under the names [`ingest_options`] gives.
fn webhook_secrets() -> Secrets {
    Secrets::from_map([
        ("JIRA_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("SERVICENOW_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("GITHUB_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ])
}

fn spawn<S: Service<Error = chatgptd_runtime::Error>>(service: S, health: &Health) -> Running {
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(service.run(shutdown.clone()));
    Running {
        shutdown,
        handle,
        health: health.clone(),
    }
}

/// The whole pipeline on one mock cluster, with the fakes it talks to.
struct Pipeline {
    kafka: MockKafka,
    memory: Arc<dyn Memory>,
    model: FakeOpenAi,
    trackers: FakeTrackers,
    context: WorkerContext,
    health: Health,
    gateway_url: String,
    client: reqwest::Client,
    enrich: Running,
    writeback: Option<Running>,
    writeback_group: String,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.server.abort();
        self.enrich.shutdown.cancel();
        if let Some(writeback) = &self.writeback {
            writeback.shutdown.cancel();
        }
    }
}

/// What one webhook became on its way through.
struct Delivered {
    event: TicketEvent,
    enriched: EnrichedTicket,
    /// The provenance line every tracker's comment ends with.
    footer: String,
}

impl Pipeline {
    async fn start() -> Pipeline {
        init_logging();
        let kafka = MockKafka::start();
        for topic in TopicsFile::builtin().topics {
            kafka.create_topic(&topic.name, topic.partitions);
        }
        let dir = tempfile::tempdir().unwrap();
        let memory = chatgptd_memory::open(&MemoryOptions::default(), dir.path(), &Secrets::env())
            .await
            .unwrap();
        let model = FakeOpenAi::start_with(FakeOptions {
            api_key: Some(MODEL_KEY.to_string()),
            ..FakeOptions::default()
        })
        .await;
        let trackers = FakeTrackers::start().await;
        trackers.add_jira_issue(JIRA_ISSUE_ID, JIRA_ISSUE_KEY);
        trackers.add_servicenow_incident(SYS_ID, INCIDENT);
        trackers.add_github_issue(GITHUB_OWNER, GITHUB_REPO, GITHUB_ISSUE);

        let health = Health::default();
        let context = WorkerContext::new(&kafka.options(), &health, &Secrets::env()).unwrap();

        let ingest = Ingest::new(
            ingest_options(),
            &context,
            memory.clone(),
            &webhook_secrets(),
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway_url = format!("http://{}", listener.local_addr().unwrap());
        let router = ingest.router();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });

        // Tests cannot set environment variables (no `unsafe`): the key comes in a map.
        let model_client = ModelClient::new(
            &model_options(&model),
            Some(memory.clone()),
            &Secrets::from_map([(MODEL_KEY_ENV, MODEL_KEY)]),
        )
        .await
        .unwrap();
        let enrich_options = EnrichOptions {
            consumer: test_options(&unique("enrich")),
            ..EnrichOptions::default()
        };
        let enrich = chatgptd_worker_enrich::EnrichService::new(
            &enrich_options,
            &context,
            model_client,
            Retriever::None,
        )
        .unwrap();
        let enrich = spawn(enrich, &health);

        let mut pipeline = Pipeline {
            kafka,
            memory,
            model,
            trackers,
            context,
            health,
            gateway_url,
            client: http_client(),
            enrich,
            writeback: None,
            writeback_group: unique("writeback"),
            server,
            _dir: dir,
        };
        pipeline.start_writeback();
        pipeline
    }

    /// Starts the write-back worker in its consumer group (again, after a stop: it resumes
    /// from the group's committed offsets).
    fn start_writeback(&mut self) {
        assert!(self.writeback.is_none(), "the write-back is running");
        let options = writeback_options(&self.trackers, &self.writeback_group);
        let writeback =
            Writeback::new(&options, self.memory.clone(), &tracker_secrets(&options)).unwrap();
        let runtime =
            chatgptd_worker_writeback::WritebackService::new(&options, &self.context, writeback)
                .unwrap();
        self.writeback = Some(spawn(runtime, &self.health));
    }

    /// Stops the write-back worker: what is in flight after `drain_timeout` is abandoned,
    /// neither finished nor committed, as in a crash.
    async fn stop_writeback(&mut self) {
        let running = self.writeback.take().expect("the write-back is running");
        running.stop().await.unwrap();
    }

    /// Posts a webhook; the status and the JSON body (every answer is JSON).
    async fn send(&self, webhook: &Webhook) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}{}", self.gateway_url, route(webhook.source)))
            .header("content-type", "application/json")
            .body(webhook.body.clone());
        for (name, value) in &webhook.headers {
            request = request.header(*name, value.as_str());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let text = response.text().await.unwrap();
        assert_eq!(
            content_type.as_deref(),
            Some("application/json"),
            "answer {status}: {text}"
        );
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("answer {status} is not JSON ({err}): {text}"));
        (status, body)
    }

    /// Records on `topic`: the sum of its partitions' high watermarks (exact at once for the
    /// gateway, which answers 202 only after the ack).
    async fn count(&self, topic: &str) -> i64 {
        let brokers = self.kafka.brokers();
        let topic = topic.to_string();
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .create()
                .unwrap();
            let partitions = TopicsFile::builtin().get(&topic).unwrap().partitions;
            (0..partitions)
                .map(|partition| {
                    consumer
                        .fetch_watermarks(&topic, partition, Duration::from_secs(10))
                        .unwrap()
                        .1
                })
                .sum()
        })
        .await
        .unwrap()
    }

    /// Waits for `count` records on `topic` and returns them.
    async fn records(&self, topic: &str, count: usize) -> Vec<OwnedMessage> {
        let brokers = self.kafka.brokers();
        let owned_topic = topic.to_string();
        let records =
            tokio::task::spawn_blocking(move || consume(&brokers, &owned_topic, count, WAIT))
                .await
                .unwrap();
        assert_eq!(records.len(), count, "records on {topic}");
        records
    }

    /// Waits until the write-back recorded `key` as done in memory: the last step of a write,
    /// after which the record is acknowledged.
    async fn wait_written_back(&self, key: &str) {
        wait_until(WAIT, &format!("the write-back's done key {key}"), || {
            let memory = self.memory.clone();
            let key = key.to_string();
            async move { memory.get(&key).await.ok().flatten().map(|_| ()) }
        })
        .await;
    }

    /// Sends `webhook` (the first of its ticket, with a scripted model answer) and follows it
    /// through: exactly one TicketEvent, one EnrichedTicket with what the model answered, the
    /// trace on every record, the write-back done. Returns what was produced.
    async fn deliver(&self, webhook: &Webhook) -> Delivered {
        let source = webhook.source;
        let model_requests_before = self.model.request_count();
        self.model
            .push(Behaviour::Content(model_answer().to_string()));

        let (status, answer) = self.send(webhook).await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["status"], "accepted");
        assert_eq!(self.count(names::TICKET_EVENTS).await, 1);
        let event_record = &self.records(names::TICKET_EVENTS, 1).await[0];
        assert_eq!(answer["partition"], event_record.partition());
        assert_eq!(answer["offset"], event_record.offset());
        assert_traced(event_record);
        let event: TicketEvent = decode(event_record);
        assert_eq!(answer["event_id"], event.event_id.as_str());
        assert_eq!(
            event.event_id,
            chatgptd_worker_ingest::parse::event_id(source, &event.delivery_id),
            "event ids derive from the delivery"
        );
        assert_eq!(event.source, source.as_str());
        assert_eq!(
            event.raw_payload.as_bytes(),
            webhook.body,
            "the payload is kept as received"
        );
        assert_eq!(
            key(event_record),
            event.key(),
            "keyed by ticket, so its updates stay in order"
        );

        let enriched_record = &self.records(names::TICKETS_ENRICHED, 1).await[0];
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
        assert_eq!(provenance.source_topic, names::TICKET_EVENTS);
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
        assert_eq!(
            request.body["response_format"]["json_schema"]["name"],
            "ticket_enrichment"
        );
        let user_message = request.body["messages"][1]["content"].as_str().unwrap();
        assert!(
            user_message.contains(&event.ticket_key) && user_message.contains(&event.title),
            "{user_message}"
        );

        let done_key = done_key(source, &enriched);
        self.wait_written_back(&done_key).await;
        // The ticket and its enrichment are remembered, on the same trace.
        for record in self.records(names::MEMORY_RECORDS, 2).await {
            assert_traced(&record);
        }
        assert_eq!(self.count(names::TICKETS_ENRICHED).await, 1);
        assert_eq!(self.count(names::MEMORY_RECORDS).await, 2);
        assert_eq!(self.count(names::DEAD_LETTER).await, 0);

        let footer = format!(
            "Generated by chatgptd: model {}, prompt {}, request {request_id}",
            provenance.model, provenance.prompt_version
        );
        Delivered {
            event,
            enriched,
            footer,
        }
    }
}

fn decode<T: chatgptd_types::avro::AvroRecord>(record: &OwnedMessage) -> T {
    Codec::builtin().decode(record.payload().unwrap()).unwrap()
}

fn key(record: &OwnedMessage) -> String {
    String::from_utf8(record.key().unwrap().to_vec()).unwrap()
}

/// The record carries the sender's trace id, in a span of its own.
fn assert_traced(record: &OwnedMessage) {
    let value = header(record, TraceContext::HEADER)
        .unwrap_or_else(|| panic!("a record on {} without traceparent", record.topic()));
    let trace = TraceContext::parse(&value).unwrap();
    assert_eq!(
        trace.trace_id_hex(),
        TRACE_ID,
        "trace id on {}",
        record.topic()
    );
    assert_ne!(value, TRACEPARENT, "each hop is a child span");
}

/// The write-back's marker: `chatgptd:<source>:<ticket>:<prompt version>`.
fn marker(source: Source, enriched: &EnrichedTicket) -> String {
    let ticket = match source {
        Source::Jira => enriched.ticket_id.clone(),
        Source::ServiceNow => enriched.ticket_id.clone(),
        // Issue numbers are unique per repository only: the marker names `owner/repo#n`.
        Source::GitHub => enriched.ticket_key.clone(),
    };
    format!(
        "chatgptd:{}:{ticket}:{}",
        source.as_str(),
        enriched.provenance.prompt_version
    )
}

/// The memory key a finished write-back leaves.
fn done_key(source: Source, enriched: &EnrichedTicket) -> String {
    marker(source, enriched).replacen("chatgptd:", "writeback:", 1)
}

/// `METHOD /path` of each call, for sequence assertions.
fn lines(calls: &[Call]) -> Vec<String> {
    calls.iter().map(Call::line).collect()
}

/// A call made with these credentials, answered `status`.
fn assert_call(call: &Call, line: &str, authorization: &str, status: u16) {
    assert_eq!(call.line(), line);
    assert_eq!(call.header("authorization"), Some(authorization), "{line}");
    assert_eq!(call.status, status, "{line}: {}", call.body);
}

/// The Jira comment as Atlassian Document Format: the note, the draft reply, the
/// provenance, the marker.
fn expected_jira_comment(marker: &str, footer: &str) -> Value {
    let text = |text: &str| json!({"type": "text", "text": text});
    let strong = |text: &str| json!({"type": "text", "text": text, "marks": [{"type": "strong"}]});
    let paragraph = |content: Vec<Value>| json!({"type": "paragraph", "content": content});
    let fact = |label: &str, value: &str| json!({"type": "listItem", "content": [paragraph(vec![strong(&format!("{label}: ")), text(value)])]});
    json!({"version": 1, "type": "doc", "content": [
        paragraph(vec![strong("chatgptd triage")]),
        {"type": "bulletList", "content": [
            fact("Category", "access"),
            fact("Suggested priority", "high"),
            fact("Sentiment", "negative"),
            fact("Language", "en"),
            fact("Confidence", "87%"),
            fact("Labels", "login, needs triage"),
        ]},
        paragraph(vec![strong("Summary")]),
        paragraph(vec![text(SUMMARY)]),
        paragraph(vec![strong("Suggested reply (DRAFT, not sent to the customer)")]),
        paragraph(vec![
            text("Hello,"),
            json!({"type": "hardBreak"}),
            text("thanks for the report. We are looking into it now."),
        ]),
        paragraph(vec![text("Best regards")]),
        paragraph(vec![json!({"type": "text", "text": footer, "marks": [{"type": "em"}]})]),
        paragraph(vec![json!({
            "type": "text",
            "text": format!("[{marker}]"),
            "marks": [{"type": "textColor", "attrs": {"color": "#97a0af"}}],
        })]),
    ]})
}

/// The ServiceNow work note: plain text, the draft reply inside, the marker last.
fn expected_work_note(marker: &str, footer: &str) -> String {
    format!(
        "chatgptd triage\n\
         - Category: access\n\
         - Suggested priority: high\n\
         - Sentiment: negative\n\
         - Language: en\n\
         - Confidence: 87%\n\
         - Labels: login, needs triage\n\
         \n\
         Summary:\n\
         {SUMMARY}\n\
         \n\
         Suggested reply (DRAFT, not sent to the customer):\n\
         {REPLY}\n\
         \n\
         {footer}\n\
         [{marker}]"
    )
}

/// The GitHub comment: Markdown, the note only (issue comments are public: no draft).
fn expected_github_comment(marker: &str, footer: &str) -> String {
    format!(
        "**chatgptd triage**\n\
         \n\
         - **Category:** access\n\
         - **Suggested priority:** high\n\
         - **Sentiment:** negative\n\
         - **Language:** en\n\
         - **Confidence:** 87%\n\
         - **Labels:** login, needs triage\n\
         \n\
         **Summary**\n\
         \n\
         {SUMMARY}\n\
         \n\
         <sub>{footer}</sub>\n\
         \n\
         <!-- {marker} -->"
    )
}

fn jira_auth() -> String {
    basic_auth(JIRA_EMAIL, JIRA_API_TOKEN)
}

fn servicenow_auth() -> String {
    basic_auth(SERVICENOW_USER, SERVICENOW_PASSWORD)
}

fn github_auth() -> String {
    format!("Bearer {GITHUB_TOKEN}")
}

const JIRA_COMMENTS: &str = "/rest/api/3/issue/10509/comment";
const JIRA_ISSUE: &str = "/rest/api/3/issue/10509";
const INCIDENT_PATH: &str = "/api/now/table/incident/a9e30c7dc61122760116894de7bcc7bd";
const GITHUB_COMMENTS: &str = "/repos/Codertocat/Hello-World/issues/1/comments";
const GITHUB_LABELS: &str = "/repos/Codertocat/Hello-World/issues/1/labels";

/// Checks Jira's three calls: look for the marker, post the comment, add the labels.
fn assert_jira_write(calls: &[Call], delivered: &Delivered) {
    let marker = marker(Source::Jira, &delivered.enriched);
    assert_eq!(
        lines(calls),
        [
            format!("GET {JIRA_COMMENTS}"),
            format!("POST {JIRA_COMMENTS}"),
            format!("PUT {JIRA_ISSUE}"),
        ]
    );
    let auth = jira_auth();
    assert_call(&calls[0], &format!("GET {JIRA_COMMENTS}"), &auth, 200);
    assert_eq!(
        calls[0].query,
        [
            ("orderBy".to_string(), "-created".to_string()),
            ("startAt".to_string(), "0".to_string()),
            ("maxResults".to_string(), "100".to_string()),
        ]
    );
    assert_call(&calls[1], &format!("POST {JIRA_COMMENTS}"), &auth, 201);
    assert_eq!(
        calls[1].body,
        json!({
            "body": expected_jira_comment(&marker, &delivered.footer),
            // The reply is a draft, so the comment is internal in Service Management.
            "properties": [{"key": "sd.public.comment", "value": {"internal": true}}],
        })
    );
    assert_call(&calls[2], &format!("PUT {JIRA_ISSUE}"), &auth, 204);
    assert_eq!(
        calls[2].body,
        json!({"update": {"labels": [{"add": "login"}, {"add": "needs-triage"}]}}),
        "Jira labels cannot hold spaces"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jira_webhook_becomes_an_internal_adf_comment_and_labels() {
    let pipeline = Pipeline::start().await;
    let webhook = Webhook::fixture(Source::Jira, "jira-delivery-1");
    let delivered = pipeline.deliver(&webhook).await;

    let event = &delivered.event;
    assert_eq!(event.event_type, "jira:issue_created");
    assert_eq!(event.delivery_id, "jira-delivery-1");
    assert_eq!(
        (event.ticket_id.as_str(), event.ticket_key.as_str()),
        (JIRA_ISSUE_ID, JIRA_ISSUE_KEY)
    );
    assert_eq!(event.title, "Lots of fields selected");
    assert_eq!(
        event.url.as_deref(),
        Some("https://mmtest.atlassian.net/browse/KT-22")
    );

    assert_jira_write(&pipeline.trackers.calls_to(Api::Jira), &delivered);
    assert_eq!(pipeline.trackers.jira_comments(JIRA_ISSUE_ID).len(), 1);
    assert_eq!(
        pipeline.trackers.jira_labels(JIRA_ISSUE_KEY),
        ["login", "needs-triage"]
    );
    assert!(pipeline.trackers.calls_to(Api::ServiceNow).is_empty());
    assert!(pipeline.trackers.calls_to(Api::GitHub).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servicenow_webhook_becomes_a_private_work_note_with_the_draft_reply() {
    let pipeline = Pipeline::start().await;
    let webhook = Webhook::fixture(Source::ServiceNow, "");
    let delivered = pipeline.deliver(&webhook).await;

    let event = &delivered.event;
    assert_eq!(event.event_type, "incident.updated");
    assert_eq!(
        event.delivery_id,
        format!("{SYS_ID}:2015-11-01 22:37:27"),
        "one delivery per update of the record"
    );
    assert_eq!(
        (event.ticket_id.as_str(), event.ticket_key.as_str()),
        (SYS_ID, INCIDENT)
    );
    assert_eq!(event.title, "Can't access SFA software");

    let calls = pipeline.trackers.calls_to(Api::ServiceNow);
    assert_eq!(
        lines(&calls),
        [
            format!("GET {INCIDENT_PATH}"),
            format!("PATCH {INCIDENT_PATH}")
        ]
    );
    let auth = servicenow_auth();
    assert_call(&calls[0], &format!("GET {INCIDENT_PATH}"), &auth, 200);
    assert_eq!(
        calls[0].query,
        [
            ("sysparm_fields".to_string(), "work_notes".to_string()),
            ("sysparm_display_value".to_string(), "true".to_string()),
        ]
    );
    assert_call(&calls[1], &format!("PATCH {INCIDENT_PATH}"), &auth, 200);
    let marker = marker(Source::ServiceNow, &delivered.enriched);
    // Only `work_notes` (private): nothing in `comments`, which the caller would see.
    assert_eq!(
        calls[1].body,
        json!({"work_notes": expected_work_note(&marker, &delivered.footer)})
    );
    assert_eq!(
        pipeline.trackers.servicenow_journal(SYS_ID),
        [(
            "work_notes".to_string(),
            expected_work_note(&marker, &delivered.footer)
        )]
    );
    assert!(pipeline.trackers.calls_to(Api::Jira).is_empty());
    assert!(pipeline.trackers.calls_to(Api::GitHub).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_webhook_becomes_a_public_comment_without_the_draft_and_labels() {
    let pipeline = Pipeline::start().await;
    let webhook = Webhook::fixture(Source::GitHub, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    let delivered = pipeline.deliver(&webhook).await;

    let event = &delivered.event;
    assert_eq!(event.event_type, "issues.opened");
    assert_eq!(event.delivery_id, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    assert_eq!(
        (event.ticket_id.as_str(), event.ticket_key.as_str()),
        ("MDU6SXNzdWU0NDQ1MDAwNDE=", "Codertocat/Hello-World#1")
    );
    assert_eq!(event.title, "Spelling error in the README file");

    let calls = pipeline.trackers.calls_to(Api::GitHub);
    assert_eq!(
        lines(&calls),
        [
            format!("GET {GITHUB_COMMENTS}"),
            format!("POST {GITHUB_COMMENTS}"),
            format!("POST {GITHUB_LABELS}"),
        ]
    );
    let auth = github_auth();
    assert_call(&calls[0], &format!("GET {GITHUB_COMMENTS}"), &auth, 200);
    assert_eq!(
        calls[0].query_param("since"),
        None,
        "every comment: the marker may be older than this record"
    );
    assert_eq!(calls[0].query_param("per_page"), Some("100"));
    assert_eq!(calls[0].query_param("page"), Some("1"));
    for call in &calls {
        assert_eq!(call.header("x-github-api-version"), Some("2022-11-28"));
        assert_eq!(call.header("accept"), Some("application/vnd.github+json"));
    }
    assert_call(&calls[1], &format!("POST {GITHUB_COMMENTS}"), &auth, 201);
    let marker = marker(Source::GitHub, &delivered.enriched);
    let comment = expected_github_comment(&marker, &delivered.footer);
    assert_eq!(calls[1].body, json!({ "body": comment }));
    assert!(
        !comment.contains("thanks for the report") && !comment.contains("DRAFT"),
        "a public comment carries no draft reply"
    );
    assert_call(&calls[2], &format!("POST {GITHUB_LABELS}"), &auth, 200);
    assert_eq!(calls[2].body, json!({"labels": ["login", "needs triage"]}));
    assert_eq!(
        pipeline
            .trackers
            .github_comments(GITHUB_OWNER, GITHUB_REPO, GITHUB_ISSUE),
        [comment]
    );
    assert!(pipeline.trackers.calls_to(Api::Jira).is_empty());
    assert!(pipeline.trackers.calls_to(Api::ServiceNow).is_empty());
}

/// Sends the ServiceNow fixture and waits for its write-back: proof that the pipeline ran
/// past whatever was sent before it.
async fn send_sentinel(pipeline: &Pipeline) {
    let (status, answer) = pipeline
        .send(&Webhook::fixture(Source::ServiceNow, ""))
        .await;
    assert_eq!(status, 202, "{answer}");
    let enriched = wait_until(WAIT, "the sentinel's enrichment", || async {
        let brokers = pipeline.kafka.brokers();
        let records = tokio::task::spawn_blocking(move || {
            consume(
                &brokers,
                names::TICKETS_ENRICHED,
                usize::MAX,
                Duration::from_millis(500),
            )
        })
        .await
        .unwrap();
        records
            .iter()
            .map(decode::<EnrichedTicket>)
            .find(|enriched| enriched.source == "servicenow")
    })
    .await;
    pipeline
        .wait_written_back(&done_key(Source::ServiceNow, &enriched))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_webhook_is_a_duplicate_and_changes_nothing() {
    let pipeline = Pipeline::start().await;
    let webhook = Webhook::fixture(Source::Jira, "jira-delivery-2");
    let delivered = pipeline.deliver(&webhook).await;

    // Jira retries with the same identifier and counts its retries.
    let retry = webhook
        .clone()
        .with_header("X-Atlassian-Webhook-Retry", "1");
    let (status, answer) = pipeline.send(&retry).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"status": "duplicate", "event_id": delivered.event.event_id})
    );
    assert_eq!(
        pipeline.count(names::TICKET_EVENTS).await,
        1,
        "no second event"
    );

    send_sentinel(&pipeline).await;
    assert_eq!(pipeline.count(names::TICKET_EVENTS).await, 2);
    assert_eq!(pipeline.count(names::TICKETS_ENRICHED).await, 2);
    assert_eq!(pipeline.model.request_count(), 2, "no second model call");
    assert_jira_write(&pipeline.trackers.calls_to(Api::Jira), &delivered);
    assert_eq!(pipeline.trackers.jira_comments(JIRA_ISSUE_ID).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_signature_is_refused_and_nothing_is_produced_or_posted() {
    let pipeline = Pipeline::start().await;
    for source in Source::ALL {
        let forged = Webhook::fixture(source, "forged-1").signed_with("not the secret");
        let (status, answer) = pipeline.send(&forged).await;
        assert_eq!(status, 401, "{source:?}: {answer}");
        assert_eq!(answer["error"], "unauthorized");
        assert_eq!(answer["detail"], "the signature does not match the body");

        let unsigned =
            Webhook::fixture(source, "unsigned-1").without_header(signature_header(source));
        let (status, answer) = pipeline.send(&unsigned).await;
        assert_eq!(status, 401, "{source:?}: {answer}");
        assert_eq!(answer["detail"], "the signature header is missing");

        // Signed over other bytes: one changed byte of the real payload.
        let mut tampered = Webhook::fixture(source, "tampered-1");
        let last = tampered.body.len() - 1;
        tampered.body[last] = b' ';
        let (status, _) = pipeline.send(&tampered).await;
        assert_eq!(status, 401, "{source:?}");
    }
    assert_eq!(pipeline.count(names::TICKET_EVENTS).await, 0);

    send_sentinel(&pipeline).await;
    assert_eq!(
        pipeline.count(names::TICKET_EVENTS).await,
        1,
        "the sentinel only"
    );
    assert_eq!(pipeline.model.request_count(), 1);
    assert!(pipeline.trackers.calls_to(Api::Jira).is_empty());
    assert!(pipeline.trackers.calls_to(Api::GitHub).is_empty());
    assert_eq!(
        lines(&pipeline.trackers.calls_to(Api::ServiceNow)),
        [
            format!("GET {INCIDENT_PATH}"),
            format!("PATCH {INCIDENT_PATH}")
        ],
        "the sentinel only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_payload_gets_400_and_nothing_is_produced() {
    let pipeline = Pipeline::start().await;
    // Each correctly signed, so the refusal is about the payload.
    let jira = fixture(JIRA_FIXTURE);
    let cases = [
        (
            Webhook::new(Source::Jira, jira[..jira.len() / 2].to_vec(), "cut-1"),
            "malformed_json",
        ),
        (
            Webhook::new(Source::ServiceNow, b"[1, 2, 3]".to_vec(), ""),
            "invalid_payload",
        ),
        (
            Webhook::new(
                Source::ServiceNow,
                br#"{"event": "incident.updated", "number": "INC0000046"}"#.to_vec(),
                "",
            ),
            "missing_field",
        ),
        (
            Webhook::new(Source::GitHub, br#"{"action": "opened"}"#.to_vec(), "gh-1"),
            "missing_field",
        ),
        (
            Webhook::fixture(Source::GitHub, "gh-2").without_header("X-GitHub-Delivery"),
            "missing_header",
        ),
    ];
    for (webhook, error) in &cases {
        let (status, answer) = pipeline.send(webhook).await;
        assert_eq!(status, 400, "{:?}: {answer}", webhook.source);
        assert_eq!(answer["error"], *error, "{answer}");
        assert!(
            answer["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{answer}"
        );
    }
    assert_eq!(pipeline.count(names::TICKET_EVENTS).await, 0);

    send_sentinel(&pipeline).await;
    assert_eq!(
        pipeline.count(names::TICKET_EVENTS).await,
        1,
        "the sentinel only"
    );
    assert_eq!(pipeline.model.request_count(), 1);
    assert!(pipeline.trackers.calls_to(Api::Jira).is_empty());
    assert!(pipeline.trackers.calls_to(Api::GitHub).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_posting_and_acknowledging_does_not_post_twice() {
    let mut pipeline = Pipeline::start().await;
    // Jira's first two calls (look, post) are answered at once; the third (the labels) is
    // held far longer than the test, so the write-back stops with the comment posted and
    // neither the done key nor the offset written.
    pipeline.trackers.delay_next(Api::Jira, 2, Duration::ZERO);
    pipeline
        .trackers
        .delay_next(Api::Jira, 1, Duration::from_secs(600));
    // Labels to add, so there is a third call.
    pipeline
        .model
        .push(Behaviour::Content(model_answer().to_string()));
    let (status, answer) = pipeline
        .send(&Webhook::fixture(Source::Jira, "jira-crash-1"))
        .await;
    assert_eq!(status, 202, "{answer}");
    wait_until(WAIT, "the comment to be posted", || async {
        let calls = pipeline.trackers.calls_to(Api::Jira);
        calls
            .iter()
            .any(|c| c.line() == format!("POST {JIRA_COMMENTS}") && c.status == 201)
            .then_some(())
    })
    .await;

    pipeline.stop_writeback().await;
    let enriched_record = &pipeline.records(names::TICKETS_ENRICHED, 1).await[0];
    let enriched: EnrichedTicket = decode(enriched_record);
    let done_key = done_key(Source::Jira, &enriched);
    assert_eq!(
        pipeline.memory.get(&done_key).await.unwrap(),
        None,
        "stopped before remembering the write"
    );
    let (brokers, group) = (pipeline.kafka.brokers(), pipeline.writeback_group.clone());
    let partitions = TopicsFile::builtin()
        .get(names::TICKETS_ENRICHED)
        .unwrap()
        .partitions;
    let offsets = tokio::task::spawn_blocking(move || {
        committed(&brokers, &group, names::TICKETS_ENRICHED, partitions)
    })
    .await
    .unwrap();
    let committed_offset = offsets.get(&enriched_record.partition()).copied();
    assert!(
        committed_offset.is_none_or(|offset| offset <= enriched_record.offset()),
        "the record was not acknowledged: committed {committed_offset:?}"
    );

    // The restarted worker gets the record again, finds its comment, and finishes.
    pipeline.start_writeback();
    pipeline.wait_written_back(&done_key).await;
    assert_eq!(
        lines(&pipeline.trackers.calls_to(Api::Jira)),
        [
            format!("GET {JIRA_COMMENTS}"),
            format!("POST {JIRA_COMMENTS}"),
            format!("GET {JIRA_COMMENTS}"),
            format!("PUT {JIRA_ISSUE}"),
        ],
        "one comment; the retry looks, finds it, and only adds the labels"
    );
    assert_eq!(pipeline.trackers.jira_comments(JIRA_ISSUE_ID).len(), 1);
    assert_eq!(
        pipeline.trackers.jira_labels(JIRA_ISSUE_ID),
        ["login", "needs-triage"]
    );
    assert_eq!(pipeline.model.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_label_call_after_the_comment_is_retried_without_a_second_comment() {
    let pipeline = Pipeline::start().await;
    // GitHub's third call (the labels, after look and post) fails with a 502.
    pipeline.trackers.delay_next(Api::GitHub, 2, Duration::ZERO);
    pipeline.trackers.fail_next(Api::GitHub, 1, 502, None);
    pipeline
        .model
        .push(Behaviour::Content(model_answer().to_string()));
    let (status, answer) = pipeline
        .send(&Webhook::fixture(Source::GitHub, "gh-retry-1"))
        .await;
    assert_eq!(status, 202, "{answer}");
    let enriched: EnrichedTicket = decode(&pipeline.records(names::TICKETS_ENRICHED, 1).await[0]);
    pipeline
        .wait_written_back(&done_key(Source::GitHub, &enriched))
        .await;

    let calls = pipeline.trackers.calls_to(Api::GitHub);
    assert_eq!(
        calls
            .iter()
            .map(|c| format!("{} {}", c.line(), c.status))
            .collect::<Vec<_>>(),
        [
            format!("GET {GITHUB_COMMENTS} 200"),
            format!("POST {GITHUB_COMMENTS} 201"),
            format!("POST {GITHUB_LABELS} 502"),
            format!("GET {GITHUB_COMMENTS} 200"),
            format!("POST {GITHUB_LABELS} 200"),
        ]
    );
    assert_eq!(
        pipeline
            .trackers
            .github_comments(GITHUB_OWNER, GITHUB_REPO, GITHUB_ISSUE)
            .len(),
        1
    );
    assert_eq!(
        pipeline
            .trackers
            .github_labels(GITHUB_OWNER, GITHUB_REPO, GITHUB_ISSUE),
        ["login", "needs triage"]
    );
    assert_eq!(pipeline.count(names::DEAD_LETTER).await, 0);
}

/// A `chatgptd up` child, killed on drop.
struct Up {
    child: Child,
    log: std::path::PathBuf,
}

impl Up {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatgptd_up_runs_the_pipeline_as_its_config_file_says() {
    init_logging();
    let model = FakeOpenAi::start_with(FakeOptions {
        api_key: Some(MODEL_KEY.to_string()),
        ..FakeOptions::default()
    })
    .await;
    let trackers = FakeTrackers::start().await;
    trackers.add_github_issue(GITHUB_OWNER, GITHUB_REPO, GITHUB_ISSUE);

    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = dir.path().join("chatgptd.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[model]
provider = "openai"
base_url = "{model}"
api_key_env = "E2E_OPENAI_API_KEY"

[ingest.github]
secret_env = "E2E_GITHUB_WEBHOOK_SECRET"
repositories = ["{repository}"]

[writeback.github]
enabled = true
api_url = "{github}"
token_env = "E2E_GITHUB_TOKEN"
repositories = ["{repository}"]
"#,
            model = model.base_url(),
            github = trackers.github_url(),
            repository = github_repository(),
        ),
    )
    .unwrap();
    let log = dir.path().join("up.log");
    let child = Command::new(env!("CARGO_BIN_EXE_chatgptd"))
        // Nothing from the tests' own environment configures the child.
        .env_remove("CHATGPTD_CONFIG")
        .env_remove("RUST_LOG")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env(MODEL_KEY_ENV, MODEL_KEY)
        .env("E2E_GITHUB_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("E2E_GITHUB_TOKEN", GITHUB_TOKEN)
        .arg("--config")
        .arg(&config)
        .args(["up", "--http-listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn chatgptd up");
    let up = Up { child, log };

    let info_file = data_dir.join("embedded.json");
    wait_until(Duration::from_secs(60), "embedded.json", || {
        let exists = info_file.exists();
        async move { exists.then_some(()) }
    })
    .await;
    let info: Value = serde_json::from_str(&std::fs::read_to_string(&info_file).unwrap()).unwrap();
    let url = format!("{}/webhooks/github", info["http"].as_str().unwrap());

    let client = http_client();
    let post = |webhook: Webhook| {
        let mut request = client
            .post(&url)
            .header("content-type", "application/json")
            .body(webhook.body);
        for (name, value) in webhook.headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let forged = Webhook::fixture(Source::GitHub, "up-forged").signed_with("not the secret");
    let refused = post(forged).await.unwrap();
    assert_eq!(
        refused.status(),
        401,
        "the secret from secret_env is checked"
    );
    let accepted = post(Webhook::fixture(Source::GitHub, "up-delivery-1"))
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202, "{}", up.log());

    let posted =
        |call: &Call| call.line() == format!("POST {GITHUB_COMMENTS}") && call.status == 201;
    let found = tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            if trackers.calls_to(Api::GitHub).iter().any(posted) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "no comment posted; chatgptd up said:\n{}",
        up.log()
    );

    let comments = trackers.github_comments(GITHUB_OWNER, GITHUB_REPO, GITHUB_ISSUE);
    assert_eq!(comments.len(), 1);
    assert!(
        comments[0].contains("<!-- chatgptd:github:Codertocat/Hello-World#1:"),
        "{}",
        comments[0]
    );
    let call = trackers
        .calls_to(Api::GitHub)
        .into_iter()
        .find(posted)
        .unwrap();
    assert_eq!(call.header("authorization"), Some(github_auth().as_str()));
    let requests = model.requests();
    assert_eq!(requests.len(), 1, "one model call");
    let bearer = format!("Bearer {MODEL_KEY}");
    assert_eq!(requests[0].header("authorization"), Some(bearer.as_str()));
}
