//! Logs: human-readable or JSON lines, filtered by `log.filter` or `RUST_LOG`.
//!
//! Style: messages are lowercase sentences without a trailing period; facts go in fields.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use chatgptd_node::config::{LogFormat, LogOptions};

/// Installs the global subscriber. `quiet` (for `produce`/`tail`, whose stdout is the
/// output) lowers the default to warnings.
pub fn init(options: &LogOptions, quiet: bool) {
    let default = if quiet {
        "warn,librdkafka=error,rdkafka=error"
    } else {
        options.filter.as_str()
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match options.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
