//! What the agents and workflows tests add to the node: a configuration with the offline
//! model or the fake one, runs followed over HTTP, and step records on the mock cluster,
//! where a test checks what Kafka holds.

use std::time::Duration;

use chatgptd_fleet::{AgentsClient, Inbox};
use chatgptd_model::ProviderKind;
use chatgptd_node::{Config, Role};
use chatgptd_runtime::http::{Scope, TokenOptions};
use chatgptd_testkit::fake_openai::FakeOpenAi;
use chatgptd_testkit::kafka::{MockKafka, consume, produce, producer};
use chatgptd_testkit::{http_client, wait_until};
use chatgptd_types::avro::{AvroRecord, Codec};
use chatgptd_types::records::WorkflowStep;
use chatgptd_types::topics::names;
use chatgptd_worker_workflows::{RunStatus, RunView, StepState, StepStatus, WorkflowsOptions};
use rdkafka::Message;
use serde_json::{Value, json};

use super::node::{self, Node};

/// How long a test waits for anything.
pub const WAIT: Duration = Duration::from_secs(60);

/// The agents' heartbeat in these tests: short, but not so short that a loaded machine (the
/// suite runs CPU-bound property tests beside these) makes a live agent look stale.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// A node to start: the mock cluster, a data directory, and the configuration and secrets
/// a test adjusts first.
pub struct Fleet {
    pub kafka: MockKafka,
    pub config: Config,
    secrets: Vec<(String, String)>,
    data: tempfile::TempDir,
}

impl Fleet {
    /// The offline model; consumer groups named after `tag` (`<tag>-workflows` is the
    /// engine's); heartbeats every [`HEARTBEAT`]; no triggers; and a step holds its record
    /// for all its attempts: the workflows' own process timeout, not the tests' short one.
    pub fn new(tag: &str) -> Fleet {
        let kafka = node::kafka();
        let data = tempfile::tempdir().unwrap();
        let mut config = node::config(&kafka, data.path(), tag);
        config.model.provider = ProviderKind::Offline;
        config.agents.heartbeat_interval = HEARTBEAT;
        config.workflows.triggers = false;
        config.workflows.consumer.process_timeout =
            WorkflowsOptions::default().consumer.process_timeout;
        Fleet {
            kafka,
            config,
            secrets: Vec::new(),
            data,
        }
    }

    /// The same with `fake` as the model, its key in the secrets.
    pub fn with_fake(tag: &str, fake: &FakeOpenAi) -> Fleet {
        let mut fleet = Fleet::new(tag);
        fleet.config.model.provider = ProviderKind::OpenAi;
        fleet.config.model.base_url = fake.base_url();
        let key_env = fleet.config.model.api_key_env.clone();
        fleet.secrets.push((key_env, "sk-test".into()));
        fleet
    }

    /// Adds workflow `name` to a workflows directory of its own, which replaces the built-in
    /// workflows.
    pub fn workflow(&mut self, name: &str, yaml: &str) {
        let dir = self.data.path().join("workflows");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.yaml")), yaml).unwrap();
        self.config.workflows.workflows_dir = dir;
    }

    /// Adds a secret, as the deployment's environment would hold it.
    pub fn secret(&mut self, name: &str, value: &str) {
        self.secrets.push((name.to_string(), value.to_string()));
    }

    /// Configures the API token `name` with `scopes`, its secret `secret` in the secrets (as
    /// a deployment's environment holds it). With tokens configured the node keeps none of
    /// its own: [`Node::client`] uses the first `admin` token configured.
    pub fn token(&mut self, name: &str, scopes: &[Scope], secret: &str) {
        let env = format!("TOKEN_{}", name.to_uppercase().replace(['-', '.'], "_"));
        self.config.http.tokens.insert(
            name.to_string(),
            TokenOptions {
                scopes: scopes.to_vec(),
                secret_env: env.clone(),
                ..TokenOptions::default()
            },
        );
        self.secret(&env, secret);
    }

    /// Replaces the built-in agents with a copy of the repository's `agents/` in which
    /// `edit(file name, text)` changed what a test needs (a policy, an expiry).
    pub fn agents(&mut self, edit: impl Fn(&str, String) -> String) {
        let dir = self.data.path().join("agents");
        std::fs::create_dir_all(&dir).unwrap();
        let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("agents");
        for entry in std::fs::read_dir(source).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let text = edit(&name, std::fs::read_to_string(&path).unwrap());
            std::fs::write(dir.join(&name), text).unwrap();
        }
        self.config.agents.registry_dir = dir;
    }

    /// Starts a node with `roles` on this configuration.
    pub async fn start(&self, roles: &[Role]) -> Node {
        Node::start(self.config.clone(), self.secrets.clone(), roles).await
    }

    /// Every record of `topic` (from the beginning), decoded, once `at_least` arrived (or
    /// after 10 s); with `usize::MAX`, whatever arrived in 3 s.
    pub async fn records<T: AvroRecord>(&self, topic: &str, at_least: usize) -> Vec<T> {
        let wait = Duration::from_secs(if at_least == usize::MAX { 3 } else { 10 });
        let (brokers, topic) = (self.kafka.brokers(), topic.to_string());
        let messages =
            tokio::task::spawn_blocking(move || consume(&brokers, &topic, at_least, wait))
                .await
                .unwrap();
        let codec = Codec::builtin();
        messages
            .iter()
            .map(|m| codec.decode(m.payload().unwrap()).unwrap())
            .collect()
    }

    /// Produces `record` keyed by `key` to `topic`, as another process would.
    pub async fn produce<T: AvroRecord>(&self, topic: &str, key: &str, record: &T) {
        let payload = Codec::builtin().encode(record).unwrap();
        let producer = producer(&self.kafka.brokers());
        produce(&producer, topic, None, Some(key.as_bytes()), &payload, &[]).await;
    }

    /// Sends a step record of `kind` (`execute`, `resume`) straight to the steps topic, as
    /// a redelivered or stray record would arrive.
    pub async fn send_step(&self, run: &str, workflow: &str, step: &str, kind: &str) {
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
        self.produce(names::WORKFLOW_STEPS, run, &record).await;
    }

    /// Waits until the engine's group committed every record of the steps topic, and the
    /// agents' group every record of the messages topic (steps are answered there): each of
    /// them handled, along with whatever they emitted.
    pub async fn steps_settled(&self) {
        let brokers = self.kafka.brokers();
        let groups = [
            (
                names::WORKFLOW_STEPS,
                self.config.workflows.consumer.group_id.clone(),
            ),
            (
                names::AGENT_MESSAGES,
                self.config.agents.consumer.group_id.clone(),
            ),
        ];
        wait_until(
            WAIT,
            "the engine and the agents to commit their topics",
            || {
                let (brokers, groups) = (brokers.clone(), groups.clone());
                async move {
                    let mut ends = Vec::new();
                    for (topic, group) in &groups {
                        let end = node::ends(&brokers, topic).await;
                        let committed = node::committed(&brokers, group, topic).await;
                        let done = |(partition, end): (&i32, &i64)| {
                            *end == 0 || committed.get(partition) == Some(end)
                        };
                        if !end.iter().all(done) {
                            return None;
                        }
                        ends.push(end);
                    }
                    // A record produced between reading the ends and the commits (a step's next
                    // step, or an agent's answer, emitted before its own commit) would pass
                    // unseen: the ends must not have moved meanwhile.
                    for ((topic, _), before) in groups.iter().zip(&ends) {
                        if node::ends(&brokers, topic).await != *before {
                            return None;
                        }
                    }
                    Some(())
                }
            },
        )
        .await;
    }
}

/// A client that sends AgentMessages as they are (hops, path, `reply_to`) through the
/// node's producer and reads answers from its inboxes: what a message made by another
/// process needs, where the API would make a fresh request.
pub async fn agents_client(node: &Node) -> AgentsClient {
    let memory = node.stack.memory().await.unwrap();
    AgentsClient::new(
        node.stack.context.producer.clone(),
        Inbox::new(memory, node.stack.config.agents.inbox_ttl),
        names::AGENT_MESSAGES,
    )
}

/// `POST` of `body` to `path` on `node`: the status and the JSON answer.
pub async fn post(node: &Node, path: &str, body: Value) -> (u16, Value) {
    let response = node
        .client()
        .post(node.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// `POST` of `body` to `path` on `node` with the API token `secret`: the status and the
/// JSON answer.
pub async fn post_as(node: &Node, secret: &str, path: &str, body: Value) -> (u16, Value) {
    let response = chatgptd_testkit::http_client_with_token(secret)
        .post(node.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// `GET` of `path` on `node`: the status and the JSON answer.
pub async fn get(node: &Node, path: &str) -> (u16, Value) {
    let response = node.client().get(node.url(path)).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Starts a run of `workflow` with `input` (`POST /workflows/{name}/runs`); its id.
pub async fn start_run(node: &Node, workflow: &str, input: Value) -> String {
    let path = format!("/workflows/{workflow}/runs");
    let (status, body) = post(node, &path, json!({ "input": input })).await;
    assert_eq!(status, 202, "{body}");
    body["run_id"].as_str().unwrap().to_string()
}

/// Runs `workflow` with `input` to its end (or its approval), as `POST
/// /workflows/{name}/runs` with `wait` does.
pub async fn run_waiting(node: &Node, workflow: &str, input: Value) -> RunView {
    let path = format!("/workflows/{workflow}/runs");
    let request = json!({"input": input, "wait": true, "timeout_ms": WAIT.as_millis()});
    let (status, body) = post(node, &path, request).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

/// The run as `GET /runs/{id}` shows it, once it is recorded.
pub async fn run_view(node: &Node, run: &str) -> Option<RunView> {
    let (status, body) = get(node, &format!("/runs/{run}")).await;
    (status == 200).then(|| serde_json::from_value(body).unwrap())
}

/// Waits until the run is as `check` wants it.
pub async fn run_until(
    node: &Node,
    run: &str,
    what: &str,
    check: impl Fn(&RunView) -> bool,
) -> RunView {
    wait_until(WAIT, what, || {
        let check = &check;
        async move { run_view(node, run).await.filter(|view| check(view)) }
    })
    .await
}

/// Waits until the run finished or waits for an approval, as a `POST .../runs` with `wait`
/// waits.
pub async fn settled(node: &Node, run: &str) -> RunView {
    run_until(
        node,
        run,
        "the run to finish or wait for an approval",
        |view| {
            view.run.status != RunStatus::Running
                || steps_in(view, StepStatus::WaitingApproval) > 0
                || steps_in(view, StepStatus::Waiting) > 0
        },
    )
    .await
}

/// Step `id` of `view`.
pub fn step(view: &RunView, id: &str) -> StepState {
    let step = view.steps.iter().find(|s| s.id == id);
    step.unwrap().state.clone()
}

/// What the model was asked first, once it was asked.
pub async fn first_prompt(fake: &FakeOpenAi) -> String {
    wait_until(WAIT, "the model to be asked", || async move {
        (fake.request_count() == 1).then_some(())
    })
    .await;
    fake.requests()[0].body["messages"].to_string()
}

/// How many steps of `view` are `status`.
pub fn steps_in(view: &RunView, status: StepStatus) -> usize {
    let steps = view.steps.iter();
    steps.filter(|s| s.state.status == status).count()
}

/// `POST /runs/{id}/resume`: the steps sent again, or the refusal.
pub async fn resume(node: &Node, run: &str) -> Result<Vec<String>, Value> {
    let (status, body) = post(node, &format!("/runs/{run}/resume"), Value::Null).await;
    match status {
        202 => Ok(serde_json::from_value(body["resumed_steps"].clone()).unwrap()),
        _ => Err(body),
    }
}

/// Waits for a node that cannot run to stop by itself (its HTTP server goes with it);
/// its error, with the causes.
pub async fn failure(node: Node) -> String {
    wait_until(WAIT, "the node to stop by itself", || {
        let request = http_client().get(node.url("/healthz")).send();
        async move { request.await.is_err().then_some(()) }
    })
    .await;
    format!("{:#}", node.stop().await.expect_err("the node failed"))
}
