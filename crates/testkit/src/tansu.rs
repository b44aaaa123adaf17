//! tansu: a real Kafka-protocol broker process, for the tests that must not rely on
//! librdkafka's own mock. `.ci/run` installs it (`cargo install tansu`) when it is missing.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::process::{ServerProcess, find_binary};

/// Where tansu keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// In memory: gone when the process stops.
    Memory,
    /// A SQLite file in the broker's directory: survives a restart.
    Sqlite,
}

/// A tansu broker on a free loopback port.
pub struct Tansu {
    process: Option<ServerProcess>,
    port: u16,
    storage: Storage,
    dir: tempfile::TempDir,
    binary: PathBuf,
}

impl Tansu {
    /// The tansu binary, or a panic that says how to install it.
    pub fn binary() -> PathBuf {
        find_binary("tansu", "TANSU_BIN").unwrap_or_else(|| {
            panic!(
                "tansu is not installed: run .ci/run (it installs tansu), or \
                 `cargo install tansu --features dynostore,libsql`, or set TANSU_BIN"
            )
        })
    }

    /// Starts a broker and waits until it answers metadata requests.
    pub async fn start(storage: Storage) -> Tansu {
        let mut tansu = Tansu {
            process: None,
            port: crate::free_port(),
            storage,
            dir: tempfile::tempdir().expect("tansu dir"),
            binary: Self::binary(),
        };
        tansu.launch().await;
        tansu
    }

    /// `127.0.0.1:port`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn launch(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let storage = match self.storage {
            Storage::Memory => "memory://tansu/".to_string(),
            Storage::Sqlite => "sqlite://tansu.db".to_string(),
        };
        let mut command = Command::new(&self.binary);
        command
            .current_dir(self.dir.path())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", &storage]);
        let process =
            ServerProcess::spawn(command, &self.dir.path().join("tansu.log")).expect("spawn tansu");
        self.process = Some(process);
        self.wait_ready(Duration::from_secs(30)).await;
    }

    async fn wait_ready(&mut self, timeout: Duration) {
        let brokers = self.brokers();
        let started = Instant::now();
        loop {
            let brokers = brokers.clone();
            let answered = tokio::task::spawn_blocking(move || {
                let client: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", &brokers)
                    .create()
                    .expect("metadata client");
                client.fetch_metadata(None, Duration::from_secs(2)).is_ok()
            })
            .await
            .unwrap_or(false);
            if answered {
                return;
            }
            let port = self.port;
            let process = self.process.as_mut().expect("started");
            if !process.is_running() || started.elapsed() > timeout {
                panic!(
                    "tansu did not become ready on 127.0.0.1:{port}:\n{}",
                    process.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the broker (kill, as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts the broker again on the same port with the same storage.
    pub async fn restart(&mut self) {
        self.stop();
        self.launch().await;
    }

    /// The broker's output so far.
    pub fn log_tail(&self) -> String {
        self.process
            .as_ref()
            .map(|p| p.log_tail())
            .unwrap_or_default()
    }
}
