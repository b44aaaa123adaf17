//! The workflow engine: runs the workflows of `workflows/` as records on `workflows.steps`.
//!
//! - A run starts with a `start` record (from the API, the CLI, or a trigger such as a new
//!   security ticket): its state is recorded and its root steps are emitted.
//! - An `execute` record runs one step: its agent answers the step's rendered input (the run's
//!   input and earlier steps' outputs), with the step's retry policy and timeout. The result is
//!   stored in the memory backend BEFORE the next steps are emitted; a step whose dependencies
//!   are several (a fan-in) is emitted once an atomic join in memory has counted them all.
//! - A redelivered step finds its result stored and only re-emits what follows (the model's
//!   result cache covers a crash before the result was stored). A claim keyed by the step
//!   record's own position keeps a duplicated step record from running the step a second time
//!   while the first still runs, and lets the same record take over after a crash.
//! - A step that fails after its retries fails the run with its error; `resume` runs it again.
//!   Only `resume` takes a run out of `failed`: step records that find their run failed are
//!   set aside for it.
//!   A step marked `approval: required` waits for `approve`.
//!
//! Step records are keyed by run id (one partition per run) but not ordered by key: a run's
//! parallel steps run concurrently.

mod client;
mod engine;
mod list;
mod options;
mod routes;
mod state;
pub mod telemetry;
mod trigger;

pub use client::{ClientError, WorkflowsClient};
pub use engine::{Engine, WorkflowsService, start_record};
pub use list::{ListedState, RunSummary, RunsPage, RunsQuery};
pub use options::WorkflowsOptions;
pub use routes::router;
pub use state::{RunState, RunStatus, RunStore, RunView, StepState, StepStatus, StepView};
