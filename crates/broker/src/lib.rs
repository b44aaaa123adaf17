//! The durable embedded broker of `chatgptd up`.
//!
//! tansu, a Kafka-protocol broker written in Rust, runs inside the process with its storage
//! in a SQLite file under the data directory. What the topics held and the groups' committed
//! offsets survive a restart, and nothing is dropped for size. librdkafka's mock cluster, the
//! alternative, keeps records in memory and at most about 5 MiB per partition. The workers
//! reach this broker over loopback TCP through the same rdkafka code as production, and so
//! can `kcat` or `chatgptd tail` from another terminal.

mod topics;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tansu_broker::coordinator::group::administrator::Controller;
use tansu_storage::StorageContainer;
use tokio::task::JoinHandle;
use url::Url;

pub use topics::create_topics;

/// The name of the broker's storage file in its directory.
pub const STORAGE_FILE: &str = "broker.db";

/// How long a start waits for another broker of this process to let go of the storage.
const LOCKED_PATIENCE: Duration = Duration::from_secs(15);

/// How long the broker may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of the embedded broker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data directory or the listening address.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// tansu refused to start or stopped.
    #[error("the embedded broker: {0}")]
    Broker(String),

    /// A Kafka request to the broker failed.
    #[error("kafka {context}: {source}")]
    Kafka {
        context: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
}

impl Error {
    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

/// What a start does with the consumer groups' members of the broker's last run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Members {
    /// They ended with the process that ran the broker (`chatgptd up`): forget them, so
    /// the groups form at once instead of waiting out their session timeouts.
    Forget,
    /// They may still be alive and reconnect, as clients do when a broker restarts.
    Keep,
}

/// A running broker. Dropping it stops it; what it stored stays in its directory.
pub struct Broker {
    bootstrap_servers: String,
    storage: PathBuf,
    task: JoinHandle<Result<(), tansu_broker::Error>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("storage", &self.storage)
            .finish()
    }
}

impl Broker {
    /// Starts a broker keeping its data in `dir` (created if missing), listening on
    /// `listen` (port 0 picks a free port), and waits until it accepts connections.
    pub async fn start(dir: &Path, listen: SocketAddr, members: Members) -> Result<Broker, Error> {
        std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        let storage = dir.join(STORAGE_FILE);
        let address = resolve_port(listen)?;
        let url = Url::parse(&format!("tcp://{address}"))
            .map_err(|err| Error::Broker(format!("listener address {address}: {err}")))?;
        let storage_url = storage_url(&storage)?;
        // A broker stopped earlier in this process (a test's restart) may still be letting go
        // of its connections to the file for a moment: forgetting its members and opening the
        // storage both wait for it.
        let deadline = Instant::now() + LOCKED_PATIENCE;
        let started = loop {
            let attempt = async {
                if members == Members::Forget {
                    forget_members(&storage).await?;
                }
                Self::serve(&storage, address, &url, &storage_url).await
            };
            match attempt.await {
                Err(err) if err.to_string().contains("database is locked") => {
                    if Instant::now() > deadline {
                        return Err(err);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => break other?,
            }
        };
        tracing::info!(
            brokers = %started.bootstrap_servers,
            storage = %started.storage.display(),
            "embedded broker started"
        );
        Ok(started)
    }

    /// Opens the storage, serves on `address` and waits until it accepts connections.
    async fn serve(
        storage: &Path,
        address: SocketAddr,
        url: &Url,
        storage_url: &Url,
    ) -> Result<Broker, Error> {
        let mut broker = tansu_broker::broker::Broker::<
            Controller<StorageContainer>,
            StorageContainer,
        >::builder()
        .node_id(tansu_broker::NODE_ID)
        .cluster_id("chatgptd")
        .incarnation_id(uuid::Uuid::new_v4())
        .advertised_listener(url.clone())
        .storage(storage_url.clone())
        .listener(url.clone())
        .silent(true)
        .build()
        .await
        .map_err(|err| Error::Broker(format!("opening {}: {err}", storage.display())))?;
        let task = tokio::spawn(async move { broker.serve(tokio::time::Instant::now()).await });
        let mut started = Broker {
            bootstrap_servers: address.to_string(),
            storage: storage.to_path_buf(),
            task,
        };
        started.wait_listening(address).await?;
        Ok(started)
    }

    /// `host:port` of the broker.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// The SQLite file holding the topics and the groups' offsets.
    pub fn storage(&self) -> &Path {
        &self.storage
    }

    /// Stops the broker and waits until its port is closed, so that a broker started
    /// next on the same port can bind it.
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }

    async fn wait_listening(&mut self, address: SocketAddr) -> Result<(), Error> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.task.is_finished() {
                let outcome = (&mut self.task).await;
                let why = match outcome {
                    Ok(Ok(())) => "it stopped at once".to_string(),
                    Ok(Err(err)) => err.to_string(),
                    Err(err) => err.to_string(),
                };
                return Err(Error::Broker(format!("did not start on {address}: {why}")));
            }
            if tokio::net::TcpStream::connect(address).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Broker(format!(
                    "not listening on {address} after {START_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Every write is a committed SQLite transaction: stopping between requests or in
        // the middle of one loses nothing the broker acknowledged.
        self.task.abort();
    }
}

/// Forgets the consumer groups' members of the broker's last run, keeping their offsets.
///
/// Every member of the last run lived in a process that has ended with it (the broker runs
/// inside `chatgptd up`), but tansu keeps a group's membership in its storage: after a kill,
/// the restarted workers' groups would wait out the dead members' session timeout (45 s)
/// before anyone got a partition. Committed offsets live in another table and stay.
async fn forget_members(storage: &Path) -> Result<(), Error> {
    if !storage.exists() {
        return Ok(());
    }
    let failed = |err: libsql::Error| {
        Error::Broker(format!(
            "forgetting the last run's group members in {}: {err}",
            storage.display()
        ))
    };
    let db = libsql::Builder::new_local(storage)
        .build()
        .await
        .map_err(failed)?;
    let connection = db.connect().map_err(failed)?;
    let mut tables = connection
        .query(
            "select 1 from sqlite_master where type = 'table' and name = 'consumer_group_detail'",
            (),
        )
        .await
        .map_err(failed)?;
    if tables.next().await.map_err(failed)?.is_some() {
        let forgotten = connection
            .execute("delete from consumer_group_detail", ())
            .await
            .map_err(failed)?;
        tracing::debug!(groups = forgotten, "forgot the last run's group members");
    }
    Ok(())
}

/// The `sqlite:` URL of `file` for tansu. tansu joins the URL's path to the current
/// directory, unless it stays absolute once its first `/` is taken off: hence `sqlite:///`
/// followed by the absolute path.
fn storage_url(file: &Path) -> Result<Url, Error> {
    let absolute =
        std::path::absolute(file).map_err(Error::io(format!("resolving {}", file.display())))?;
    let text = absolute.to_string_lossy();
    let url = Url::parse(&format!("sqlite:///{text}"))
        .map_err(|err| Error::Broker(format!("storage path {text}: {err}")))?;
    // The URL must carry the path unchanged: tansu does not decode it.
    if url.path().strip_prefix('/') != Some(text.as_ref()) {
        return Err(Error::Broker(format!(
            "the storage path {text} has characters a URL would escape (spaces, `%`, `#`, `?`): \
             choose a data directory with a plain path"
        )));
    }
    Ok(url)
}

/// `listen` with a concrete port: tansu binds the address it is given and advertises the
/// same, so port 0 is resolved here first.
fn resolve_port(listen: SocketAddr) -> Result<SocketAddr, Error> {
    if listen.port() != 0 {
        return Ok(listen);
    }
    let probe = std::net::TcpListener::bind(listen)
        .map_err(Error::io(format!("finding a free port on {}", listen.ip())))?;
    probe
        .local_addr()
        .map_err(Error::io("reading the free port"))
}
