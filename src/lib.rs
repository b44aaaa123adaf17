//! chatgptd puts GPT agents to work on an event stream. This library is the `chatgptd`
//! binary: the command line ([`cli`]) and logging. A process itself (its configuration, the
//! shared stack, the workers and the HTTP API) is composed by `chatgptd-node`; the workers
//! live in `workers/`, the shared machinery in `crates/`. Start with `docs/ARCHITECTURE.md`.

pub mod cli;
pub mod logging;
