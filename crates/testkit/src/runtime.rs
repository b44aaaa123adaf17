//! The consumer runtime in tests: a processor made of a closure, the tests' consumer options,
//! a runtime spawned on the current Tokio runtime, and the process's metrics.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chatgptd_runtime::retry::Backoff;
use chatgptd_runtime::{
    ConsumerOptions, ConsumerRuntime, Health, Incoming, OutputRecord, ProcessError, Processor,
    WorkerContext,
};
use chatgptd_types::avro::Codec;
use chatgptd_types::records::WorkflowStep;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::records::step;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Handler = dyn Fn(Incoming<WorkflowStep>) -> BoxFuture<Result<Vec<OutputRecord>, ProcessError>>
    + Send
    + Sync;

/// A processor of workflow steps made of a closure.
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
        crate::kafka::produce(
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
    let kafka = crate::kafka::test_kafka_options(brokers);
    let context = WorkerContext::new(&kafka, &health, &chatgptd_types::Secrets::env()).unwrap();
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

/// A sample (`name{labels}`, exactly as rendered) of this process's metrics, installing the
/// Prometheus recorder if no test did yet; 0 when absent.
pub fn metric_sample(sample: &str) -> f64 {
    let rendered = chatgptd_runtime::telemetry::install_prometheus().render();
    crate::prometheus_sample(&rendered, sample)
}
