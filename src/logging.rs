//! Logs: human-readable or JSON lines, filtered by `log.filter` or `RUST_LOG`.
//!
//! Style: messages are lowercase sentences without a trailing period; facts go in fields.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use chatgptd_node::config::{LogFormat, LogOptions};

/// What tansu may log unless a filter says otherwise.
const QUIET_TANSU: &str = "tansu=warn";

/// Installs the global subscriber. `quiet` (for `produce`/`tail`, whose stdout is the
/// output) lowers the default to warnings.
pub fn init(options: &LogOptions, quiet: bool) {
    let default = if quiet {
        "warn,librdkafka=error,rdkafka=error"
    } else {
        options.filter.as_str()
    };
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|spec| !spec.trim().is_empty() && EnvFilter::try_new(spec).is_ok())
        .unwrap_or_else(|| default.to_string());
    let mut filter = EnvFilter::new(&spec);
    // The embedded broker (tansu) logs every decoded field of every request at info: far too
    // much for anyone but its own developers, unless a filter names it.
    if !spec.contains("tansu") {
        filter = filter.add_directive(QUIET_TANSU.parse().expect("a valid directive"));
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match options.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
