//! One chatgptd process. `chatgptd up` and `chatgptd worker <role>` are thin over this crate,
//! and so are the end-to-end tests: they start the real node with fakes in its
//! configuration and a map of secrets, as a user's process starts with the environment.
//!
//! - [`config`]: everything a process is configured with (file, `CHATGPTD_*`, flags).
//! - [`Stack`]: what the workers of a process share, opened once: Kafka (configured brokers or
//!   the embedded broker), the producer, health, secrets, and on first need the memory
//!   backend, the model client, the registry and the search index.
//! - [`Role`]: the workers a process can run; [`roles`] builds each from the stack, one module
//!   per role, into the one shape of `chatgptd_runtime::Service`.
//! - [`auth`]: the API tokens of a process, and the refusal to serve an open API.
//! - [`run`]: runs roles and the HTTP API (their routes merged with the process's own:
//!   `/healthz`, `/readyz`, `/metrics`, the [`events`] streams) until shutdown.

pub mod auth;
pub mod config;
pub mod discovery;
pub mod events;
pub mod http;
pub mod record_json;
pub mod role;
pub mod roles;
pub mod stack;

pub use config::Config;
pub use role::Role;
pub use roles::{Prepared, prepare, run};
pub use stack::{KafkaMode, Stack};
