//! How `produce`, `tail` and friends find a running `chatgptd up`: it writes
//! `<data_dir>/embedded.json` with its broker and HTTP addresses, and removes it on exit.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a running embedded stack publishes about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddedInfo {
    /// Bootstrap servers of the embedded broker.
    pub brokers: String,
    /// Base URL of the HTTP server.
    pub http: String,
    /// Process id of `chatgptd up`.
    pub pid: u32,
}

/// The file in `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("embedded.json")
}

/// Publishes `info`.
pub fn write(data_dir: &Path, info: &EmbeddedInfo) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(info).map_err(std::io::Error::other)?;
    std::fs::write(path(data_dir), text)
}

/// Reads what a running `chatgptd up` published, if its process is still alive.
pub fn read(data_dir: &Path) -> Option<EmbeddedInfo> {
    let text = std::fs::read_to_string(path(data_dir)).ok()?;
    let info: EmbeddedInfo = serde_json::from_str(&text).ok()?;
    // A stale file from a killed process would point at a dead port.
    let alive =
        Path::new("/proc").join(info.pid.to_string()).exists() || !Path::new("/proc").exists();
    alive.then_some(info)
}

/// Removes the file (on a clean exit).
pub fn remove(data_dir: &Path) {
    let _ = std::fs::remove_file(path(data_dir));
}
