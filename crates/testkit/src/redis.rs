//! A real `redis-server` on a free loopback port, which a test can stop (kill, as a crash
//! would) and restart on the same port. Nothing is persisted (`--save "" --appendonly no`), so
//! a restart comes back empty, like a cache node that lost its memory.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::process::{ServerProcess, find_binary};

/// How long a starting server may take to answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Fresh ports tried by [`RedisServer::start`]: a free port can be taken by another test
/// between our probe and the server's bind.
const START_ATTEMPTS: usize = 3;

/// A `redis-server` process owned by one test, killed on drop.
pub struct RedisServer {
    /// The running process; `None` while stopped.
    process: Option<ServerProcess>,
    /// The port, kept across restarts so clients can reconnect to the same URL.
    port: u16,
    /// Working directory and log file; removed on drop.
    dir: tempfile::TempDir,
    /// The `redis-server` executable.
    binary: PathBuf,
    /// Processes launched so far: each gets its own log file, so a restart's readiness is not
    /// read from the previous process's output.
    launches: usize,
}

impl RedisServer {
    /// The `redis-server` binary: `$REDIS_SERVER_BIN`, then `PATH`, then
    /// `/usr/bin/redis-server`; a panic that says how to install it otherwise.
    pub fn binary() -> PathBuf {
        find_binary("redis-server", "REDIS_SERVER_BIN")
            .or_else(|| {
                let system = PathBuf::from("/usr/bin/redis-server");
                system.is_file().then_some(system)
            })
            .unwrap_or_else(|| {
                panic!(
                    "redis-server is not installed: run .ci/run, or apt-get install -y redis-server"
                )
            })
    }

    /// Starts a server on a free 127.0.0.1 port and waits until it answers PING.
    pub async fn start() -> RedisServer {
        let mut server = RedisServer {
            process: None,
            port: 0,
            dir: tempfile::tempdir().expect("redis-server dir"),
            binary: Self::binary(),
            launches: 0,
        };
        let mut attempt = 1;
        loop {
            server.port = crate::free_port();
            match server.launch().await {
                Ok(()) => return server,
                Err(message) if attempt == START_ATTEMPTS => panic!("{message}"),
                Err(_) => {
                    server.stop();
                    attempt += 1;
                }
            }
        }
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The port the server listens on (the same after a restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server, as a crash would. Clients see refused connections until
    /// [`restart`](Self::restart).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Stops the server if it runs, then starts it again on the same port (empty).
    pub async fn restart(&mut self) {
        self.stop();
        if let Err(message) = self.launch().await {
            panic!("{message}");
        }
    }

    /// Makes the server require `password` from now on (`CONFIG SET requirepass`), as a
    /// deployment's Redis does. A restart forgets it.
    pub async fn require_password(&self, password: &str) {
        let args = ["CONFIG", "SET", "requirepass", password];
        let mut command = format!("*{}\r\n", args.len());
        for arg in args {
            command.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connecting to redis-server");
        stream.write_all(command.as_bytes()).await.unwrap();
        let mut reply = [0u8; 5];
        stream.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"+OK\r\n", "CONFIG SET requirepass");
    }

    /// The server's output so far, for failure messages.
    pub fn log_tail(&self) -> String {
        self.process
            .as_ref()
            .map(|p| p.log_tail())
            .unwrap_or_default()
    }

    /// Spawns the process on `self.port` and waits until it answers; on failure the error
    /// carries the server's log.
    async fn launch(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let mut command = Command::new(&self.binary);
        command
            .current_dir(self.dir.path())
            .args(["--save", "", "--appendonly", "no"])
            .args(["--bind", "127.0.0.1", "--port", &port])
            .arg("--dir")
            .arg(self.dir.path());
        self.launches += 1;
        let log = self
            .dir
            .path()
            .join(format!("redis-server-{}.log", self.launches));
        let process = ServerProcess::spawn(command, &log)
            .map_err(|err| format!("spawning {}: {err}", self.binary.display()))?;
        self.process = Some(process);
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let port = self.port;
            let Some(process) = self.process.as_mut() else {
                return Err("redis-server is not running".to_string());
            };
            // The log line proves that *our* process bound the port: a PONG alone could come
            // from another test's server that took the port first.
            let bound = process.log_tail().contains("Ready to accept connections");
            if bound && process.is_running() && answers_ping(port).await {
                return Ok(());
            }
            if !process.is_running() || started.elapsed() > READY_TIMEOUT {
                return Err(format!(
                    "redis-server did not become ready on 127.0.0.1:{port}:\n{}",
                    process.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Whether something on `port` answers an inline `PING` with `+PONG`.
async fn answers_ping(port: u16) -> bool {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(b"PING\r\n").await?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).await?;
        Ok::<bool, std::io::Error>(&reply == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), exchange).await,
        Ok(Ok(true))
    )
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
