//! chatgptd puts GPT agents to work on an event stream. This library is the `chatgptd`
//! binary: the command line ([`cli`]), the configuration ([`config`]), and the composition of
//! workers into one process ([`stack`]). The workers themselves live in `workers/`, the shared
//! machinery in `crates/`. Start with `docs/ARCHITECTURE.md`.

pub mod api;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod logging;
pub mod record_json;
pub mod stack;
pub mod workers;
