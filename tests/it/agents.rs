//! Agents and workflows through their workers: the mock cluster, a SQLite memory on disk,
//! the offline model or a fake OpenAI-compatible server on 127.0.0.1.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chatgptd_fleet::{AgentsClient, Brain, Inbox, new_request};
use chatgptd_memory::{HistoryEntry, HistoryLimits, Memory, MemoryOptions};
use chatgptd_model::{ModelClient, ModelOptions, ProviderKind};
use chatgptd_registry::{Registry, Workflows};
use chatgptd_runtime::{ConsumerOptions, Health, Service, WorkerContext};
use chatgptd_search::{IndexerOptions, Retriever, SearchService, ShardSet};
use chatgptd_testkit::fake_openai::{Behaviour, FakeOpenAi};
use chatgptd_testkit::kafka::{MockKafka, committed, consume, produce, producer};
use chatgptd_testkit::{init_logging, wait_until};
use chatgptd_types::Secrets;
use chatgptd_types::avro::Codec;
use chatgptd_types::records::{AgentMessage, WorkflowStep};
use chatgptd_types::topics::{TopicsFile, names};
use chatgptd_worker_agents::{AgentsOptions, AgentsService};
use chatgptd_worker_workflows::{
    RunStatus, RunStore, StepStatus, WorkflowsClient, WorkflowsOptions, WorkflowsService,
};
use rdkafka::Message;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::support::test_options;

const WAIT: Duration = Duration::from_secs(60);

/// The agents and workflows stack on one mock cluster and one memory.
struct Stack {
    kafka: MockKafka,
    context: WorkerContext,
    memory: Arc<dyn Memory>,
    registry: Arc<Registry>,
    workflows: Arc<Workflows>,
    model: ModelClient,
    _data: tempfile::TempDir,
}

impl Stack {
    /// With the offline model, or a fake OpenAI-compatible server when `fake` is given.
    async fn start(fake: Option<&FakeOpenAi>) -> Stack {
        let kafka = MockKafka::start();
        for topic in &TopicsFile::builtin().topics {
            kafka.create_topic(&topic.name, topic.partitions);
        }
        let data = tempfile::tempdir().unwrap();
        let memory = chatgptd_memory::open(&MemoryOptions::default(), data.path(), &Secrets::env())
            .await
            .unwrap();
        let model_options = match fake {
            Some(fake) => ModelOptions {
                provider: ProviderKind::OpenAi,
                base_url: fake.base_url(),
                ..ModelOptions::default()
            },
            None => ModelOptions {
                provider: ProviderKind::Offline,
                ..ModelOptions::default()
            },
        };
        let model = ModelClient::new(
            &model_options,
            Some(memory.clone()),
            &Secrets::from_map([("OPENAI_API_KEY", "sk-test")]),
        )
        .await
        .unwrap();
        let registry = Arc::new(Registry::builtin());
        let workflows = Arc::new(Workflows::builtin(&registry));
        let context =
            WorkerContext::new(&kafka.options(), &Health::default(), &Secrets::env()).unwrap();
        Stack {
            kafka,
            context,
            memory,
            registry,
            workflows,
            model,
            _data: data,
        }
    }

    fn brain(&self) -> Brain {
        Brain::new(self.model.clone(), std::path::Path::new("")).unwrap()
    }

    fn agents(&self, options: AgentsOptions) -> Running {
        self.agents_with(options, Retriever::None)
    }

    fn agents_with(&self, options: AgentsOptions, retriever: Retriever) -> Running {
        let service = AgentsService::new(
            &options,
            &self.context,
            self.registry.clone(),
            self.brain(),
            self.memory.clone(),
            retriever,
        )
        .unwrap();
        Running::spawn(|shutdown| service.run(shutdown))
    }

    /// The workflow engine with the tests' consumer options, and no triggers.
    fn workflows(&self, consumer: ConsumerOptions) -> Running {
        let service = self
            .workflows_service(&WorkflowsOptions {
                consumer: step_consumer(consumer),
                triggers: false,
                ..WorkflowsOptions::default()
            })
            .unwrap();
        Running::spawn(|shutdown| service.run(shutdown))
    }

    /// The workflow worker over this stack's workflows, registry, model and memory.
    fn workflows_service(
        &self,
        options: &WorkflowsOptions,
    ) -> Result<WorkflowsService, chatgptd_runtime::Error> {
        WorkflowsService::new(
            options,
            &self.context,
            self.workflows.clone(),
            self.registry.clone(),
            self.brain(),
            self.memory.clone(),
        )
    }

    fn agents_client(&self) -> AgentsClient {
        AgentsClient::new(
            self.context.producer.clone(),
            Inbox::new(self.memory.clone(), Duration::from_secs(3600)),
            names::AGENT_MESSAGES,
        )
    }

    fn workflows_client(&self) -> WorkflowsClient {
        let store = RunStore::new(self.memory.clone(), Duration::from_secs(3600));
        WorkflowsClient::new(
            self.context.producer.clone(),
            store,
            self.workflows.clone(),
            names::WORKFLOW_STEPS,
        )
    }

    /// Sends an `execute` record for `step` of `run` straight to the steps topic, as a
    /// redelivery or a stray record would arrive.
    async fn send_step(&self, run: &str, workflow: &str, step: &str) {
        self.send_step_of_kind(run, workflow, step, "execute").await;
    }

    /// Sends a step record of `kind` (`execute`, `resume`) straight to the steps topic.
    async fn send_step_of_kind(&self, run: &str, workflow: &str, step: &str, kind: &str) {
        let record = WorkflowStep {
            run_id: run.to_string(),
            workflow: workflow.to_string(),
            step_id: step.to_string(),
            kind: kind.into(),
            agent: None,
            input_json: "{}".into(),
            attempt: 1,
            requested_at_ms: chatgptd_types::now_ms(),
        };
        produce(
            &producer(&self.kafka.brokers()),
            names::WORKFLOW_STEPS,
            None,
            Some(run.as_bytes()),
            &Codec::builtin().encode(&record).unwrap(),
            &[],
        )
        .await;
    }

    /// Waits until consumer group `group` committed every record of the steps topic, each
    /// of them handled, along with whatever they emitted.
    async fn steps_settled(&self, group: &str) {
        let brokers = self.kafka.brokers();
        let partitions = TopicsFile::builtin()
            .topics
            .iter()
            .find(|t| t.name == names::WORKFLOW_STEPS)
            .unwrap()
            .partitions;
        wait_until(WAIT, "the engine to commit the whole steps topic", || {
            let (brokers, group) = (brokers.clone(), group.to_string());
            async move {
                tokio::task::spawn_blocking(move || {
                    use rdkafka::consumer::{BaseConsumer, Consumer};
                    let reader: BaseConsumer = rdkafka::ClientConfig::new()
                        .set("bootstrap.servers", &brokers)
                        .create()
                        .unwrap();
                    let committed = committed(&brokers, &group, names::WORKFLOW_STEPS, partitions);
                    (0..partitions)
                        .all(|partition| {
                            let (_, end) = reader
                                .fetch_watermarks(
                                    names::WORKFLOW_STEPS,
                                    partition,
                                    Duration::from_secs(5),
                                )
                                .unwrap();
                            end == 0 || committed.get(&partition) == Some(&end)
                        })
                        .then_some(())
                })
                .await
                .unwrap()
            }
        })
        .await;
    }

    /// Every record on a topic, decoded (read from the beginning).
    async fn records<T: chatgptd_types::avro::AvroRecord>(
        &self,
        topic: &str,
        at_least: usize,
    ) -> Vec<T> {
        let (brokers, topic) = (self.kafka.brokers(), topic.to_string());
        let messages = tokio::task::spawn_blocking(move || {
            consume(&brokers, &topic, at_least, Duration::from_secs(10))
        })
        .await
        .unwrap();
        messages
            .iter()
            .map(|m| Codec::builtin().decode(m.payload().unwrap()).unwrap())
            .collect()
    }
}

/// A step holds its record for all its attempts: the workflows' own process timeout, not
/// the tests' short one.
fn step_consumer(consumer: ConsumerOptions) -> ConsumerOptions {
    ConsumerOptions {
        process_timeout: WorkflowsOptions::default().consumer.process_timeout,
        ..consumer
    }
}

struct Running {
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), chatgptd_runtime::Error>>,
}

impl Running {
    /// Runs a service until `stop`.
    fn spawn<F>(run: impl FnOnce(CancellationToken) -> F) -> Running
    where
        F: std::future::Future<Output = Result<(), chatgptd_runtime::Error>> + Send + 'static,
    {
        let shutdown = CancellationToken::new();
        Running {
            shutdown: shutdown.clone(),
            handle: tokio::spawn(run(shutdown)),
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap();
    }
}

/// The agents' heartbeat in these tests: short, but not so short that a loaded machine (the
/// suite runs CPU-bound property tests beside these) makes a live agent look stale.
const HEARTBEAT: Duration = Duration::from_secs(1);

fn agent_options(group: &str, max_hops: u32) -> AgentsOptions {
    AgentsOptions {
        consumer: test_options(group),
        max_hops,
        heartbeat_interval: HEARTBEAT,
        ..AgentsOptions::default()
    }
}

/// Two agents talk: one asks, the other answers, the first answers back, and the hop limit
/// ends it with a refusal that nobody answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_round_trip_between_two_agents_ends_at_the_hop_limit() {
    init_logging();
    let stack = Stack::start(None).await;
    let agents = stack.agents(agent_options("agents-round-trip", 2));
    // Two agents without a hop limit of their own: the worker's (2) applies.
    let mut request = new_request(
        "wanderweave",
        "design-studio-pro",
        "Three image moments for a Lisbon story",
        None,
        0,
    );
    request.reply_to = Some("wanderweave".into());
    stack.agents_client().send(&request).await.unwrap();

    let mut messages: Vec<AgentMessage> = stack.records(names::AGENT_MESSAGES, 4).await;
    // Keyed by recipient, the messages sit on different partitions: read order is not
    // conversation order, the hop count is.
    messages.sort_by_key(|m| m.hop_count);
    let chain: Vec<(String, String, String, i32)> = messages
        .iter()
        .map(|m| (m.from.clone(), m.to.clone(), m.kind.clone(), m.hop_count))
        .collect();
    assert_eq!(
        chain,
        vec![
            (
                "wanderweave".into(),
                "design-studio-pro".into(),
                "request".into(),
                0
            ),
            (
                "design-studio-pro".into(),
                "wanderweave".into(),
                "reply".into(),
                1
            ),
            (
                "wanderweave".into(),
                "design-studio-pro".into(),
                "reply".into(),
                2
            ),
            (
                "design-studio-pro".into(),
                "wanderweave".into(),
                "refusal".into(),
                3
            ),
        ]
    );
    assert!(messages[3].body.contains("hops"), "{}", messages[3].body);
    assert_eq!(
        messages[1].in_reply_to.as_deref(),
        Some(request.id.as_str())
    );
    assert_eq!(messages[1].conversation_id, request.conversation_id);
    assert!(
        messages[1]
            .provenance
            .as_ref()
            .is_some_and(|p| p.provider == "offline")
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        stack
            .records::<AgentMessage>(names::AGENT_MESSAGES, 5)
            .await
            .len(),
        4,
        "nobody answers a refusal"
    );

    // Heartbeats: the agents this worker serves are active; none is stale.
    let health = chatgptd_fleet::agent_health(stack.memory.as_ref(), "wanderweave", HEARTBEAT)
        .await
        .unwrap();
    assert_eq!(health.status, chatgptd_registry::AgentStatus::Active);
    agents.stop().await;
}

/// A broadcast reaches every enabled agent of the fleet, and each answer reaches the inbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broadcast_reaches_every_agent_of_a_fleet() {
    init_logging();
    let stack = Stack::start(None).await;
    let agents = stack.agents(agent_options("agents-broadcast", 8));
    let client = stack.agents_client();
    let message = new_request(
        "user:test",
        "fleet:creative",
        "Ideas for a winter campaign",
        None,
        0,
    );
    client.send(&message).await.unwrap();
    let fleet: Vec<String> = stack
        .registry
        .fleet("creative")
        .iter()
        .map(|a| a.id.clone())
        .collect();
    assert_eq!(fleet.len(), 4);
    let answers = client.wait(&message.id, fleet.len(), WAIT).await.unwrap();
    let mut from: Vec<String> = answers
        .iter()
        .map(|a| a["from"].as_str().unwrap().to_string())
        .collect();
    from.sort();
    assert_eq!(from, fleet);
    assert!(answers.iter().all(|a| a["kind"] == "reply"));
    agents.stop().await;
}

/// An agent answers with its conversation so far: earlier turns of this conversation are in
/// the prompt, even behind many turns of other conversations; other conversations, later
/// turns and this very message's own entries (there on a redelivery) are not, so a
/// redelivery asks the model the same question.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reply_sees_the_conversation_before_it_and_nothing_else() {
    init_logging();
    let fake = FakeOpenAi::start().await;
    let stack = Stack::start(Some(&fake)).await;
    let mut message = new_request(
        "user:test",
        "design-studio-pro",
        "And the cover image?",
        Some("conversation-1"),
        0,
    );
    message.reply_to = None;
    let entry = |id: &str, conversation: &str, text: &str, at_ms: i64| HistoryEntry {
        id: id.to_string(),
        role: "user".into(),
        text: text.into(),
        at_ms,
        attributes: BTreeMap::from([("conversation_id".to_string(), conversation.to_string())]),
    };
    let sent = message.sent_at_ms;
    let own = format!("message:{}:design-studio-pro", message.id);
    for history in [
        entry(
            "message:m0:design-studio-pro",
            "conversation-1",
            "EARLIER TURN",
            sent - 1000,
        ),
        entry(
            "message:m1:design-studio-pro",
            "conversation-2",
            "OTHER CONVERSATION",
            sent - 500,
        ),
        entry(&own, "conversation-1", "OWN MESSAGE", sent),
        entry(
            "message:m9:design-studio-pro",
            "conversation-1",
            "LATER TURN",
            sent + 5000,
        ),
    ] {
        stack
            .memory
            .append_history(
                "agent:design-studio-pro",
                &history,
                HistoryLimits {
                    cap: 200,
                    ttl: None,
                },
            )
            .await
            .unwrap();
        if history.id == "message:m0:design-studio-pro" {
            // A busy agent: many turns of other conversations since this one's last.
            for i in 0..60 {
                let busy = entry(
                    &format!("message:busy{i}:design-studio-pro"),
                    "conversation-busy",
                    "BUSY ELSEWHERE",
                    sent - 900 + i,
                );
                stack
                    .memory
                    .append_history(
                        "agent:design-studio-pro",
                        &busy,
                        HistoryLimits {
                            cap: 200,
                            ttl: None,
                        },
                    )
                    .await
                    .unwrap();
            }
        }
    }
    let agents = stack.agents(agent_options("agents-history", 8));
    stack.agents_client().send(&message).await.unwrap();
    wait_until(WAIT, "the model to be asked", || {
        let fake = &fake;
        async move { (fake.request_count() == 1).then_some(()) }
    })
    .await;
    let prompt = fake.requests()[0].body["messages"].to_string();
    assert!(prompt.contains("EARLIER TURN"), "{prompt}");
    for absent in [
        "OTHER CONVERSATION",
        "BUSY ELSEWHERE",
        "OWN MESSAGE",
        "LATER TURN",
    ] {
        assert!(!prompt.contains(absent), "{absent} in {prompt}");
    }
    agents.stop().await;
}

/// An agent's prompt carries relevant memory found in a real Tantivy index on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reply_draws_on_relevant_memory_from_the_search_index() {
    init_logging();
    let index_root = tempfile::tempdir().unwrap();
    let shards = ShardSet::new(
        index_root.path(),
        names::MEMORY_RECORDS,
        IndexerOptions {
            commit_interval: Duration::from_millis(50),
            ..IndexerOptions::default()
        },
    );
    let stop = CancellationToken::new();
    let committer = tokio::spawn(shards.clone().run_committer(stop.clone().cancelled_owned()));
    shards.open(0).unwrap();
    let remembered = |id: &str, text: &str| chatgptd_types::records::MemoryRecord {
        id: id.into(),
        owner: "run:earlier".into(),
        kind: "step_result".into(),
        text: text.into(),
        tags: vec![],
        created_at_ms: chatgptd_types::now_ms(),
        source_topic: names::WORKFLOW_STEPS.into(),
        source_partition: 0,
        source_offset: 0,
        attributes: BTreeMap::new(),
    };
    shards
        .index(
            0,
            remembered(
                "r1",
                "Tram 28 to the castle leaves from Martim Moniz, board early",
            ),
            0,
            None,
        )
        .await
        .unwrap();
    shards
        .index(
            0,
            remembered("r2", "Invoices are emailed on the first of the month"),
            1,
            Some(0),
        )
        .await
        .unwrap();
    let search = SearchService::new(&chatgptd_search::topic_dir(
        index_root.path(),
        names::MEMORY_RECORDS,
    ));

    let fake = FakeOpenAi::start().await;
    let stack = Stack::start(Some(&fake)).await;
    let agents = stack.agents_with(
        agent_options("agents-retrieval", 8),
        Retriever::Local(Arc::new(search)),
    );
    let mut message = new_request(
        "user:test",
        "wanderweave",
        "Which tram goes up to the castle in Lisbon?",
        None,
        0,
    );
    message.reply_to = None;
    stack.agents_client().send(&message).await.unwrap();
    wait_until(WAIT, "the model to be asked", || {
        let fake = &fake;
        async move { (fake.request_count() == 1).then_some(()) }
    })
    .await;
    let prompt = fake.requests()[0].body["messages"].to_string();
    assert!(prompt.contains("Martim Moniz"), "{prompt}");
    assert!(
        !prompt.contains("Invoices"),
        "only what is relevant: {prompt}"
    );
    agents.stop().await;
    stop.cancel();
    committer.await.unwrap();
}

/// A message bringing an agent back into a chain it spoke in too often is refused as a loop;
/// one over its token budget is refused with the numbers; an unknown agent is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn loops_budgets_and_unknown_agents_are_refused_with_a_reason() {
    init_logging();
    let stack = Stack::start(None).await;
    let agents = stack.agents(agent_options("agents-refusals", 20));
    let client = stack.agents_client();

    let mut looping = new_request("user:test", "wanderweave", "Again?", None, 0);
    looping.path = [
        "wanderweave",
        "design-studio-pro",
        "wanderweave",
        "design-studio-pro",
        "wanderweave",
    ]
    .map(String::from)
    .to_vec();
    looping.hop_count = 5;
    let tiny = new_request(
        "user:test",
        "wanderweave",
        "Write me a long story",
        None,
        10,
    );
    let unknown = new_request("user:test", "no-such-agent", "hello", None, 0);
    for message in [&looping, &tiny, &unknown] {
        client.send(message).await.unwrap();
    }
    let answer = |id: String| {
        let client = client.clone();
        async move {
            let answers = client.wait(&id, 1, WAIT).await.unwrap();
            assert_eq!(answers.len(), 1);
            answers[0].clone()
        }
    };
    let loop_answer = answer(looping.id.clone()).await;
    assert_eq!(loop_answer["kind"], "refusal");
    assert!(
        loop_answer["body"]
            .as_str()
            .unwrap()
            .contains("loop detected"),
        "{loop_answer}"
    );
    let budget_answer = answer(tiny.id.clone()).await;
    assert_eq!(budget_answer["kind"], "refusal");
    assert!(
        budget_answer["body"]
            .as_str()
            .unwrap()
            .contains("token budget of 10"),
        "{budget_answer}"
    );
    let unknown_answer = answer(unknown.id.clone()).await;
    assert!(
        unknown_answer["body"]
            .as_str()
            .unwrap()
            .contains("no agent `no-such-agent`"),
        "{unknown_answer}"
    );
    agents.stop().await;
}

/// The research workflow fans out to three researchers and its synthesis starts only once
/// the slowest of them finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fan_in_waits_for_every_branch() {
    init_logging();
    let fake = FakeOpenAi::start().await;
    // The plan answers at once; one of the three branches is slow.
    fake.push_all([
        Behaviour::Ok,
        Behaviour::Slow(Duration::from_millis(1500)),
        Behaviour::Ok,
        Behaviour::Ok,
    ]);
    let stack = Stack::start(Some(&fake)).await;
    let engine = stack.workflows(test_options("workflows-fan-in"));
    let client = stack.workflows_client();
    let run = client
        .start(
            "research",
            &serde_json::json!({"question": "Rail passes?"}),
            "test",
        )
        .await
        .unwrap();
    let view = client.wait(&run, WAIT).await.unwrap();
    assert_eq!(view.run.status, RunStatus::Succeeded, "{view:?}");
    let step = |id: &str| {
        view.steps
            .iter()
            .find(|s| s.id == id)
            .unwrap()
            .state
            .clone()
    };
    let synthesis_started = step("synthesize").started_at_ms.unwrap();
    let mut branches_finished = Vec::new();
    for branch in ["market", "technology", "risk"] {
        let state = step(branch);
        assert_eq!(state.status, StepStatus::Succeeded);
        branches_finished.push(state.finished_at_ms.unwrap());
    }
    let slowest = *branches_finished.iter().max().unwrap();
    assert!(
        synthesis_started >= slowest,
        "synthesis at {synthesis_started}, a branch finished at {slowest}"
    );
    assert!(
        slowest - step("plan").finished_at_ms.unwrap() >= 1400,
        "one branch was slow"
    );
    let outputs = step("synthesize").input.unwrap();
    assert!(outputs.contains("Rail passes?"));
    assert_eq!(fake.request_count(), 5, "one model call per step");
    engine.stop().await;
}

/// A step record delivered again after its result was stored (a redelivery after a crash
/// between storing and committing) calls no model and emits nothing it had not emitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redelivered_finished_step_calls_no_model_and_emits_nothing_new() {
    init_logging();
    let fake = FakeOpenAi::start().await;
    let stack = Stack::start(Some(&fake)).await;
    let group = "workflows-redelivered";
    let engine = stack.workflows(test_options(group));
    let client = stack.workflows_client();
    let run = client
        .start(
            "research",
            &serde_json::json!({"question": "Trains?"}),
            "test",
        )
        .await
        .unwrap();
    let view = client.wait(&run, WAIT).await.unwrap();
    assert_eq!(view.run.status, RunStatus::Succeeded, "{view:?}");
    assert_eq!(fake.request_count(), 5);
    let brokers = stack.kafka.brokers();
    let partitions = TopicsFile::builtin()
        .topics
        .iter()
        .find(|t| t.name == names::WORKFLOW_STEPS)
        .unwrap()
        .partitions;
    // Every record the topic holds (read until nothing more comes for a while), as this
    // run's (step, kind), and the end offset of each partition.
    let all_steps = || {
        let (brokers, run) = (brokers.clone(), run.clone());
        async move {
            let messages = tokio::task::spawn_blocking(move || {
                consume(
                    &brokers,
                    names::WORKFLOW_STEPS,
                    usize::MAX,
                    Duration::from_secs(3),
                )
            })
            .await
            .unwrap();
            let mut ends: HashMap<i32, i64> = HashMap::new();
            let mut steps = Vec::new();
            for message in &messages {
                let end = ends.entry(message.partition()).or_default();
                *end = (*end).max(message.offset() + 1);
                let step: WorkflowStep =
                    Codec::builtin().decode(message.payload().unwrap()).unwrap();
                if step.run_id == run {
                    steps.push((step.step_id, step.kind));
                }
            }
            (steps, ends)
        }
    };
    let (before, _) = all_steps().await;

    stack.send_step(&run, "research", "market").await;
    // Until the engine committed everything, including whatever the redelivery emitted.
    let after = wait_until(WAIT, "the engine to commit the whole topic", || {
        let (brokers, all_steps) = (brokers.clone(), all_steps);
        async move {
            let (steps, ends) = all_steps().await;
            let committed = committed(&brokers, group, names::WORKFLOW_STEPS, partitions);
            ends.iter()
                .all(|(partition, end)| committed.get(partition) == Some(end))
                .then_some(steps)
        }
    })
    .await;
    assert_eq!(fake.request_count(), 5, "no second model call");
    // At-least-once: a redelivered step emits again what it emitted before (its fan-in),
    // so a crash between storing and emitting cannot stall the run; nothing new.
    assert!(after.len() > before.len());
    for emitted in &after {
        assert!(
            before.contains(emitted),
            "{emitted:?} was not emitted before"
        );
    }
    let finished = client.view(&run).await.unwrap();
    assert_eq!(finished.run, view.run, "the run is as it was");
    let results = tokio::task::spawn_blocking(move || {
        consume(
            &brokers,
            names::MEMORY_RECORDS,
            usize::MAX,
            Duration::from_secs(3),
        )
    })
    .await
    .unwrap();
    let owner = format!("run:{run}");
    assert_eq!(
        results
            .iter()
            .map(|m| Codec::builtin()
                .decode::<chatgptd_types::records::MemoryRecord>(m.payload().unwrap())
                .unwrap())
            .filter(|r| r.owner == owner)
            .count(),
        5,
        "no step result stored twice"
    );
    engine.stop().await;
}

/// A plan, two parallel branches and their join, with quick retries; the branches are not
/// retried.
const FRAGILE: &str = r#"name: fragile
description: A plan, two parallel branches and their join, with quick retries.
input:
  topic: {type: string, required: true}
steps:
  - id: plan
    agent: atlas-sentinel
    input: "PLAN {{ input.topic }}"
    retry: {max_attempts: 2, backoff: {initial: 10ms, max: 10ms}}
    timeout: 500ms
  - id: left
    agent: atlas-sentinel
    depends_on: [plan]
    input: "LEFT {{ steps.plan.output }}"
    retry: {max_attempts: 1}
  - id: right
    agent: atlas-sentinel
    depends_on: [plan]
    input: "RIGHT {{ steps.plan.output }}"
    retry: {max_attempts: 1}
  - id: join
    agent: atlas-sentinel
    depends_on: [left, right]
    input: "JOIN {{ steps.left.output }} {{ steps.right.output }}"
"#;

/// A step times out and is retried by its policy; two parallel branches are refused by the
/// model (permanent), which fails the run with the step's error; resuming the run sends both
/// branches again (not only the one recorded as failed), and the run completes without
/// calling the model again for the steps that had succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_run_resumes_every_unfinished_branch() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fragile.yaml"), FRAGILE).unwrap();
    let fake = FakeOpenAi::start().await;
    // The plan's first attempt outlives its timeout; the second answers. Both branches are
    // refused, whichever asks first.
    fake.push_all([
        Behaviour::Slow(Duration::from_secs(2)),
        Behaviour::Ok,
        Behaviour::Refusal,
        Behaviour::Refusal,
    ]);
    let mut stack = Stack::start(Some(&fake)).await;
    stack.workflows = Arc::new(Workflows::load(dir.path(), &stack.registry).unwrap());
    let engine = stack.workflows(test_options("workflows-resume"));
    let client = stack.workflows_client();
    let run = client
        .start("fragile", &serde_json::json!({"topic": "tides"}), "test")
        .await
        .unwrap();

    let failed = wait_until(WAIT, "both branches to fail", || {
        let (client, run) = (client.clone(), run.clone());
        async move {
            let view = client.view(&run).await.ok()?;
            let failed = view
                .steps
                .iter()
                .filter(|s| s.state.status == StepStatus::Failed)
                .count();
            (view.run.status == RunStatus::Failed && failed == 2).then_some(view)
        }
    })
    .await;
    let step = |view: &chatgptd_worker_workflows::RunView, id: &str| {
        view.steps
            .iter()
            .find(|s| s.id == id)
            .unwrap()
            .state
            .clone()
    };
    let plan = step(&failed, "plan");
    assert_eq!(
        (plan.status, plan.attempts),
        (StepStatus::Succeeded, 2),
        "the timed-out attempt was retried by the step's policy"
    );
    for branch in ["left", "right"] {
        let state = step(&failed, branch);
        assert_eq!(state.attempts, 1, "a refusal is not retried");
        assert!(
            state.error.as_deref().unwrap().contains("model_refusal"),
            "{state:?}"
        );
    }
    assert!(
        failed
            .run
            .error
            .as_deref()
            .unwrap()
            .contains("model_refusal"),
        "the run carries the step's error: {:?}",
        failed.run.error
    );
    assert_eq!(step(&failed, "join").status, StepStatus::Pending);
    assert_eq!(fake.request_count(), 4);

    let mut resumed = client.resume(&run).await.unwrap();
    resumed.sort();
    assert_eq!(resumed, ["left", "right"]);
    let view = client.wait(&run, WAIT).await.unwrap();
    assert_eq!(view.run.status, RunStatus::Succeeded, "{view:?}");
    assert!(view.run.error.is_none());
    assert!(
        view.steps
            .iter()
            .all(|s| s.state.status == StepStatus::Succeeded)
    );
    assert_eq!(
        fake.request_count(),
        7,
        "the branches and the join, and not the plan again"
    );
    assert!(
        client.resume(&run).await.is_err(),
        "a run that succeeded cannot be resumed"
    );
    engine.stop().await;
}

/// A resumed run whose first resumed branch fails again stays failed: the second branch's
/// resume record, handled after that failure, neither flips the run back to running (where
/// its join would wait forever and `resume` would refuse a run "not failed") nor runs. A
/// second resume then finishes the run. Steps are handled one at a time, in the order they
/// were sent, so the second record comes after the failure every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_branch_failing_again_after_a_resume_leaves_the_run_failed_and_resumable() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fragile.yaml"), FRAGILE).unwrap();
    let fake = FakeOpenAi::start().await;
    // The plan answers; `left` is refused (the run fails and `right`, arriving after, is set
    // aside); resumed, `left` is refused again; everything after that answers.
    fake.push_all([Behaviour::Ok, Behaviour::Refusal, Behaviour::Refusal]);
    let mut stack = Stack::start(Some(&fake)).await;
    stack.workflows = Arc::new(Workflows::load(dir.path(), &stack.registry).unwrap());
    let group = "workflows-fails-again";
    let engine = stack.workflows(ConsumerOptions {
        max_in_flight_per_partition: 1,
        ..test_options(group)
    });
    let client = stack.workflows_client();
    let run = client
        .start("fragile", &serde_json::json!({"topic": "tides"}), "test")
        .await
        .unwrap();
    stack.steps_settled(group).await;
    let failed = client.view(&run).await.unwrap();
    assert_eq!(failed.run.status, RunStatus::Failed, "{failed:?}");
    assert_eq!(failed.run.failed_step.as_deref(), Some("left"));
    assert_eq!(fake.request_count(), 2, "plan and left");

    let resumed = client.resume(&run).await.unwrap();
    assert_eq!(
        resumed,
        ["left", "right"],
        "the failed branch and the one set aside"
    );
    stack.steps_settled(group).await;
    let again = client.view(&run).await.unwrap();
    assert_eq!(
        again.run.status,
        RunStatus::Failed,
        "left failed again, and right's resume record came after: {again:?}"
    );
    assert_eq!(again.run.failed_step.as_deref(), Some("left"));
    assert!(
        again
            .run
            .error
            .as_deref()
            .unwrap()
            .contains("model_refusal"),
        "{:?}",
        again.run.error
    );
    assert_eq!(
        fake.request_count(),
        3,
        "right, arriving at a failed run, was set aside for the next resume"
    );

    let mut resumed = client
        .resume(&run)
        .await
        .expect("the failed run resumes again");
    resumed.sort();
    assert_eq!(resumed, ["left", "right"]);
    let view = client.wait(&run, WAIT).await.unwrap();
    assert_eq!(view.run.status, RunStatus::Succeeded, "{view:?}");
    assert!(
        view.steps
            .iter()
            .all(|s| s.state.status == StepStatus::Succeeded),
        "{view:?}"
    );
    assert_eq!(fake.request_count(), 6, "left, right and the join");
    engine.stop().await;
}

/// A step record of a run that goes to the dead-letter topic (here: a step the workflow does
/// not have) fails the run with a pointer to the letter, instead of leaving it running.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_lettered_step_fails_its_run_instead_of_leaving_it_running() {
    init_logging();
    let stack = Stack::start(None).await;
    let engine = stack.workflows(test_options("workflows-dead-letter"));
    let client = stack.workflows_client();
    let run = client
        .start(
            "content-creation",
            &serde_json::json!({"topic": "Porto"}),
            "test",
        )
        .await
        .unwrap();
    // Held for approval: running, waiting for a person.
    let view = client.wait(&run, WAIT).await.unwrap();
    assert_eq!(view.run.status, RunStatus::Running, "{view:?}");
    stack
        .send_step(&run, "content-creation", "no-such-step")
        .await;
    let failed = wait_until(WAIT, "the run to fail", || {
        let (client, run) = (client.clone(), run.clone());
        async move {
            let view = client.view(&run).await.ok()?;
            (view.run.status == RunStatus::Failed).then_some(view)
        }
    })
    .await;
    let error = failed.run.error.unwrap();
    assert!(
        error.contains("dead-lettered") && error.contains(names::WORKFLOW_STEPS),
        "{error}"
    );
    // A resume record that was not sent by a resume (a stray or replayed one) does not undo
    // the failure; an explicit resume does.
    stack
        .send_step_of_kind(&run, "content-creation", "story", "resume")
        .await;
    stack.steps_settled("workflows-dead-letter").await;
    let still = client.view(&run).await.unwrap();
    assert_eq!(
        still.run.status,
        RunStatus::Failed,
        "a stray resume record leaves the run failed: {still:?}"
    );
    assert_eq!(still.run.error.as_deref(), Some(error.as_str()));
    client
        .resume(&run)
        .await
        .expect("the failed run can be resumed");
    assert_eq!(
        client.view(&run).await.unwrap().run.status,
        RunStatus::Running
    );
    engine.stop().await;
}

/// A worker whose output topic is missing refuses to start, naming it, instead of stalling
/// on the first record that needs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_refuses_to_start_without_its_output_topic() {
    init_logging();
    let stack = Stack::start(None).await;
    let options = WorkflowsOptions {
        consumer: step_consumer(test_options("workflows-no-output")),
        memory_topic: "memory.nowhere".into(),
        triggers: false,
        ..WorkflowsOptions::default()
    };
    let service = stack.workflows_service(&options).unwrap();
    let err = service
        .run(CancellationToken::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("memory.nowhere") && err.contains("chatgptd topics apply"),
        "{err}"
    );
}

/// A step whose attempts could outlast the consumer's process_timeout would be cut off and
/// run again, model and all: the engine refuses to start, naming the step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_longer_than_the_process_timeout_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("slow.yaml"),
        r#"name: slow
description: One step that may take an hour.
input:
  topic: {type: string, required: true}
steps:
  - id: ponder
    agent: atlas-sentinel
    input: "PONDER {{ input.topic }}"
    retry: {max_attempts: 2}
    timeout: 30m
"#,
    )
    .unwrap();
    let mut stack = Stack::start(None).await;
    stack.workflows = Arc::new(Workflows::load(dir.path(), &stack.registry).unwrap());
    let options = WorkflowsOptions {
        consumer: test_options("workflows-too-slow"),
        ..WorkflowsOptions::default()
    };
    let err = stack
        .workflows_service(&options)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("workflow slow step ponder") && err.contains("process_timeout"),
        "{err}"
    );
}

/// A workflow worker dies in the middle of a step; another takes the step over and the run
/// completes once: each step's record is emitted once and its output stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_during_a_step_completes_the_run_once() {
    init_logging();
    let fake = FakeOpenAi::start().await;
    fake.set_latency(Duration::from_millis(300));
    let stack = Stack::start(Some(&fake)).await;
    let store = RunStore::new(stack.memory.clone(), Duration::from_secs(3600));
    let client = stack.workflows_client();

    // No time to drain: the step in flight is abandoned, uncommitted, as in a crash.
    let mut hasty = test_options("workflows-killed");
    hasty.drain_timeout = Duration::from_millis(1);
    let first = stack.workflows(hasty);
    let run = client
        .start(
            "content-creation",
            &serde_json::json!({"topic": "Lisbon on foot"}),
            "test",
        )
        .await
        .unwrap();
    wait_until(WAIT, "the first step running", || {
        let store = store.clone();
        let run = run.clone();
        async move {
            let state = store.step(&run, "story").await.ok().flatten()?;
            (state.status == StepStatus::Running).then_some(())
        }
    })
    .await;
    first.stop().await;

    let second = stack.workflows(test_options("workflows-killed"));
    let view = wait_until(WAIT, "the run to reach its approval", || {
        let client = client.clone();
        let run = run.clone();
        async move {
            let view = client.view(&run).await.ok()?;
            view.steps
                .iter()
                .any(|s| s.state.status == StepStatus::WaitingApproval)
                .then_some(view)
        }
    })
    .await;
    assert_eq!(view.steps[0].state.status, StepStatus::Succeeded);
    client.approve(&run, "show").await.unwrap();
    let view = client.wait(&run, WAIT).await.unwrap();
    assert_eq!(view.run.status, RunStatus::Succeeded, "{view:?}");

    let steps: Vec<WorkflowStep> = stack.records(names::WORKFLOW_STEPS, 5).await;
    let mut emitted: HashMap<String, usize> = HashMap::new();
    for step in steps
        .iter()
        .filter(|s| s.run_id == run && s.kind == "execute")
    {
        *emitted.entry(step.step_id.clone()).or_default() += 1;
    }
    // `show` twice: held for approval, then sent again by the approval.
    assert_eq!(
        emitted,
        HashMap::from([
            ("story".into(), 1),
            ("visuals".into(), 1),
            ("show".into(), 2)
        ])
    );
    let results = stack
        .records::<chatgptd_types::records::MemoryRecord>(names::MEMORY_RECORDS, 3)
        .await;
    let mut stored: BTreeMap<String, usize> = BTreeMap::new();
    for record in results.iter().filter(|r| r.owner == format!("run:{run}")) {
        *stored.entry(record.id.clone()).or_default() += 1;
    }
    assert_eq!(stored.len(), 3, "one result per step: {stored:?}");
    assert!(
        stored.values().all(|n| *n == 1),
        "no step output stored twice: {stored:?}"
    );
    second.stop().await;
}

/// A hundred runs started at once all complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_runs_all_complete() {
    init_logging();
    let stack = Stack::start(None).await;
    let engine = stack.workflows(test_options("workflows-hundred"));
    let client = stack.workflows_client();
    let mut runs = Vec::new();
    for i in 0..100 {
        runs.push(
            client
                .start(
                    "research",
                    &serde_json::json!({"question": format!("Question {i}?")}),
                    "test",
                )
                .await
                .unwrap(),
        );
    }
    for run in &runs {
        let view = client.wait(run, WAIT).await.unwrap();
        assert_eq!(view.run.status, RunStatus::Succeeded, "run {run}: {view:?}");
        assert!(
            view.steps
                .iter()
                .all(|s| s.state.status == StepStatus::Succeeded)
        );
    }
    engine.stop().await;
}

/// An enriched ticket in the `security` category starts the security audit, whose last step
/// (shield-core's remediation) waits for approval; the same ticket delivered again starts
/// nothing new; a ticket of another category starts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_security_ticket_triggers_the_security_audit_once() {
    init_logging();
    let stack = Stack::start(None).await;
    let options = WorkflowsOptions {
        consumer: step_consumer(test_options("workflows-triggered")),
        trigger_consumer: test_options("workflows-triggers"),
        triggers: true,
        ..WorkflowsOptions::default()
    };
    let service = stack.workflows_service(&options).unwrap();
    let engine = Running::spawn(|shutdown| service.run(shutdown));

    let ticket = |key: &str, category: &str| chatgptd_types::records::EnrichedTicket {
        event_id: format!("event-{key}"),
        source: "jira".into(),
        ticket_id: key.to_lowercase(),
        ticket_key: key.into(),
        title: "Phishing email asks staff to reset VPN passwords".into(),
        url: None,
        category: category.into(),
        suggested_priority: "high".into(),
        sentiment: "negative".into(),
        language: "en".into(),
        summary: "Several staff received a convincing VPN reset email.".into(),
        suggested_reply: String::new(),
        labels: vec![],
        confidence: 0.9,
        related_tickets: vec![],
        provenance: Default::default(),
        enriched_at_ms: 0,
    };
    let codec = Codec::builtin();
    let producer = chatgptd_testkit::kafka::producer(&stack.kafka.brokers());
    let security = ticket("SEC-1", "security");
    for value in [&security, &security, &ticket("BILL-1", "billing")] {
        let payload = codec.encode(value).unwrap();
        chatgptd_testkit::kafka::produce(
            &producer,
            names::TICKETS_ENRICHED,
            None,
            Some(value.key().as_bytes()),
            &payload,
            &[],
        )
        .await;
    }

    let starts = wait_until(WAIT, "the triggered start records", || {
        let stack = &stack;
        async move {
            let steps: Vec<WorkflowStep> = stack.records(names::WORKFLOW_STEPS, 2).await;
            let starts: Vec<WorkflowStep> =
                steps.into_iter().filter(|s| s.kind == "start").collect();
            (starts.len() >= 2).then_some(starts)
        }
    })
    .await;
    assert!(
        starts
            .iter()
            .all(|s| s.workflow == "security-audit" && s.step_id == "ticket:jira:sec-1"),
        "{starts:?}"
    );
    assert!(
        starts.iter().all(|s| s.run_id == starts[0].run_id),
        "a redelivered ticket starts the same run"
    );
    let input: serde_json::Value = serde_json::from_str(&starts[0].input_json).unwrap();
    assert_eq!(input["ticket_key"], "SEC-1");

    let client = stack.workflows_client();
    let view = client.wait(&starts[0].run_id, WAIT).await.unwrap();
    let remediate = view.steps.iter().find(|s| s.id == "remediate").unwrap();
    assert_eq!(
        remediate.state.status,
        StepStatus::WaitingApproval,
        "{view:?}"
    );
    assert!(
        remediate
            .state
            .input
            .as_deref()
            .unwrap()
            .contains("Phishing"),
        "the held step shows what it will do"
    );
    engine.stop().await;
}

/// `POST /workflows/{name}/runs` over HTTP on 127.0.0.1: a wait it cannot honour (none, a
/// negative or fractional one, or longer than a held connection should last) is refused with
/// the allowed range, and starts no run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_request_with_an_out_of_range_timeout_is_refused_with_the_range() {
    init_logging();
    let stack = Stack::start(None).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn(chatgptd_runtime::http::serve(
        listener,
        chatgptd_worker_workflows::router(stack.workflows_client()),
        shutdown.clone(),
    ));
    let client = chatgptd_testkit::http_client();
    let start = |timeout_ms: serde_json::Value, wait: bool| {
        let request = client
            .post(format!("{url}/workflows/research/runs"))
            .json(&serde_json::json!({
                "input": {"question": "Ferries?"},
                "wait": wait,
                "timeout_ms": timeout_ms,
            }))
            .send();
        async move {
            let response = request.await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (status, body)
        }
    };
    for refused in [
        serde_json::json!(0),
        serde_json::json!(-1),
        serde_json::json!(1.5),
        serde_json::json!(300_001),
        serde_json::json!(u64::MAX),
    ] {
        let (status, body) = start(refused.clone(), true).await;
        assert_eq!(status, 400, "timeout_ms {refused}: {body}");
        assert_eq!(body["error"], "timeout_ms out of range", "{body}");
        assert_eq!(
            (body["min_ms"].as_u64(), body["max_ms"].as_u64()),
            (Some(1), Some(300_000))
        );
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("from 1 to 300000"),
            "{body}"
        );
    }
    // No engine runs here, so the run never finishes: the longest wait is asked for
    // without waiting.
    for (accepted, wait) in [(1, true), (300_000, false)] {
        let (status, body) = start(serde_json::json!(accepted), wait).await;
        assert_eq!(status, 202, "{accepted}: {body}");
        assert!(body["run_id"].is_string(), "{body}");
    }
    let brokers = stack.kafka.brokers();
    let starts = tokio::task::spawn_blocking(move || {
        consume(
            &brokers,
            names::WORKFLOW_STEPS,
            usize::MAX,
            Duration::from_secs(3),
        )
    })
    .await
    .unwrap();
    assert_eq!(starts.len(), 2, "only the accepted requests started runs");
    shutdown.cancel();
    serving.await.unwrap().unwrap();
}
