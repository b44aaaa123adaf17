//! Helpers shared by the integration tests.

pub mod node;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chatgptd_runtime::retry::Backoff;
use chatgptd_runtime::{
    ConsumerOptions, ConsumerRuntime, Health, Incoming, OutputRecord, ProcessError, Processor,
    WorkerContext,
};
use chatgptd_types::Secrets;
use chatgptd_types::avro::Codec;
use chatgptd_types::records::{TicketEvent, WorkflowStep};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Handler = dyn Fn(Incoming<WorkflowStep>) -> BoxFuture<Result<Vec<OutputRecord>, ProcessError>>
    + Send
    + Sync;

/// A processor made of a closure, for tests.
pub struct FnProcessor(pub Arc<Handler>);

impl FnProcessor {
    pub fn new<F, Fut>(f: F) -> Self
    where
        F: Fn(Incoming<WorkflowStep>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<OutputRecord>, ProcessError>> + Send + 'static,
    {
        FnProcessor(Arc::new(move |incoming| Box::pin(f(incoming))))
    }
}

impl Processor for FnProcessor {
    type Input = WorkflowStep;

    fn process(
        &self,
        record: &Incoming<WorkflowStep>,
    ) -> impl Future<Output = Result<Vec<OutputRecord>, ProcessError>> + Send {
        (self.0)(record.clone())
    }
}

/// A WorkflowStep keyed by `run_id`, encoded.
pub fn step(run_id: &str, step_id: &str) -> Vec<u8> {
    Codec::builtin()
        .encode(&step_value(run_id, step_id))
        .unwrap()
}

/// Produces a step of run `run-<i>`, keyed by its run, for each `i` of `runs`, to
/// `partition` (or by key when `None`), waiting for each ack.
pub async fn produce_runs(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    partition: Option<i32>,
    runs: std::ops::Range<usize>,
) {
    for i in runs {
        let run = format!("run-{i}");
        chatgptd_testkit::kafka::produce(
            producer,
            topic,
            partition,
            Some(run.as_bytes()),
            &step(&run, "s"),
            &[],
        )
        .await;
    }
}

pub fn step_value(run_id: &str, step_id: &str) -> WorkflowStep {
    WorkflowStep {
        run_id: run_id.into(),
        workflow: "test".into(),
        step_id: step_id.into(),
        kind: "execute".into(),
        agent: None,
        input_json: "{}".into(),
        attempt: 1,
        requested_at_ms: 0,
    }
}

/// The same step, to `topic`.
pub fn echo(topic: &str, incoming: &Incoming<WorkflowStep>) -> OutputRecord {
    OutputRecord::avro(
        &Codec::builtin(),
        topic,
        incoming.value.run_id.clone(),
        &incoming.value,
    )
    .unwrap()
}

/// Consumer options for tests: short timeouts, quick retries.
pub fn test_options(group: &str) -> ConsumerOptions {
    ConsumerOptions {
        group_id: group.to_string(),
        max_attempts: 3,
        backoff: Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(100),
        },
        process_timeout: Duration::from_secs(10),
        drain_timeout: Duration::from_secs(4),
        session_timeout: Duration::from_secs(6),
        max_poll_interval: Duration::from_secs(60),
        ..ConsumerOptions::default()
    }
}

/// A running consumer runtime.
pub struct Running {
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<Result<(), chatgptd_runtime::Error>>,
    pub health: Health,
}

impl Running {
    /// Stops it gracefully and returns what `run` returned.
    pub async fn stop(self) -> Result<(), chatgptd_runtime::Error> {
        self.shutdown.cancel();
        self.handle.await.expect("runtime task")
    }
}

/// Starts `processor` over `input` with `options`.
pub fn start(
    brokers: &str,
    worker: &str,
    options: ConsumerOptions,
    input: &str,
    processor: FnProcessor,
) -> Running {
    let health = Health::default();
    let kafka = chatgptd_testkit::kafka::test_kafka_options(brokers);
    let context = WorkerContext::new(&kafka, &health, &Secrets::env()).unwrap();
    start_in(&context, worker, options, input, processor)
}

/// Starts `processor` over `input` with `options`, in `context` (its producer, its health).
pub fn start_in(
    context: &WorkerContext,
    worker: &str,
    options: ConsumerOptions,
    input: &str,
    processor: FnProcessor,
) -> Running {
    let runtime =
        ConsumerRuntime::new(worker, context, options, vec![input.to_string()], processor).unwrap();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(runtime.run(shutdown.clone()));
    Running {
        shutdown,
        handle,
        health: context.health.clone(),
    }
}

/// The `n`th of a run of distinct Jira tickets, each with its own key (`PROJ-n`).
pub fn ticket(n: usize) -> TicketEvent {
    TicketEvent {
        event_id: format!("event-{n}"),
        source: "jira".into(),
        delivery_id: format!("delivery-{n}"),
        event_type: "jira:issue_created".into(),
        ticket_id: format!("{}", 10_000 + n),
        ticket_key: format!("PROJ-{n}"),
        title: format!("Cannot log in, case {n}"),
        description: "SSO shows error 500 for everyone".into(),
        priority: None,
        status: None,
        labels: vec![],
        reporter: None,
        actor: None,
        url: None,
        received_at_ms: 0,
        raw_payload: String::new(),
    }
}
