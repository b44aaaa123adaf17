//! The embedded Kafka of `chatgptd up`: librdkafka's mock cluster, a real Kafka-protocol
//! broker inside the process, which the workers reach over TCP through the same rdkafka code
//! as production (and `kcat` or `chatgptd tail` from another terminal).
//!
//! The mock cluster does not implement the CreateTopics API, so topics are created through
//! its own API. Its data lives in memory: it is gone when the process exits.

use std::sync::mpsc;
use std::thread::JoinHandle;

use chatgptd_types::topics::TopicsFile;
use rdkafka::mocking::MockCluster;

use crate::Error;

enum Command {
    CreateTopic {
        name: String,
        partitions: i32,
        replication: i32,
        reply: mpsc::Sender<Result<(), String>>,
    },
    SetBrokersUp {
        up: bool,
        reply: mpsc::Sender<Result<(), String>>,
    },
    Stop,
}

/// `fetch.wait.max.ms` for clients of the embedded broker, unless configured. The mock
/// broker holds an empty fetch for the whole wait instead of answering when a record
/// arrives, as Kafka does, so librdkafka's 500 ms default added half a second to every hop
/// (an agent's answer took 470 ms; 9 ms with this).
pub const FETCH_WAIT_MS: &str = "25";

/// A running mock cluster. It lives on its own thread (the mock cluster handle is not
/// `Send`), so this handle can be kept anywhere; dropping it stops the brokers.
pub struct EmbeddedKafka {
    bootstrap_servers: String,
    broker_count: i32,
    commands: mpsc::Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EmbeddedKafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedKafka")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .finish()
    }
}

impl EmbeddedKafka {
    /// Starts `broker_count` brokers on loopback ports.
    pub fn start(broker_count: i32) -> Result<Self, Error> {
        let (commands, receiver) = mpsc::channel::<Command>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
        let thread = std::thread::Builder::new()
            .name("embedded-kafka".into())
            .spawn(move || {
                let cluster = match MockCluster::new(broker_count) {
                    Ok(cluster) => cluster,
                    Err(err) => {
                        let _ = ready_tx.send(Err(err.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                while let Ok(command) = receiver.recv() {
                    match command {
                        Command::CreateTopic {
                            name,
                            partitions,
                            replication,
                            reply,
                        } => {
                            let result = cluster
                                .create_topic(&name, partitions, replication)
                                .map_err(|err| err.to_string());
                            let _ = reply.send(result);
                        }
                        Command::SetBrokersUp { up, reply } => {
                            let result = if up {
                                cluster.broker_up(-1)
                            } else {
                                cluster.broker_down(-1)
                            };
                            let _ = reply.send(result.map_err(|err| err.to_string()));
                        }
                        Command::Stop => break,
                    }
                }
            })?;
        let bootstrap_servers = ready_rx
            .recv()
            .map_err(|_| Error::Config("the embedded broker thread died".into()))?
            .map_err(|err| Error::Config(format!("starting the embedded broker: {err}")))?;
        Ok(EmbeddedKafka {
            bootstrap_servers,
            broker_count,
            commands,
            thread: Some(thread),
        })
    }

    /// `host:port,...` of the brokers.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// Creates a topic; the replication factor is capped at the broker count.
    pub fn create_topic(&self, name: &str, partitions: i32, replication: i32) -> Result<(), Error> {
        let (reply, answer) = mpsc::channel();
        let command = Command::CreateTopic {
            name: name.to_string(),
            partitions,
            replication: replication.clamp(1, self.broker_count),
            reply,
        };
        self.commands
            .send(command)
            .map_err(|_| Error::Config("the embedded broker stopped".into()))?;
        answer
            .recv()
            .map_err(|_| Error::Config("the embedded broker stopped".into()))?
            .map_err(|err| Error::Config(format!("creating topic {name}: {err}")))
    }

    /// Takes every broker down (connections dropped, new ones refused) or brings them back
    /// up, keeping their data: an outage and its end, for tests.
    pub fn set_brokers_up(&self, up: bool) -> Result<(), Error> {
        let (reply, answer) = mpsc::channel();
        self.commands
            .send(Command::SetBrokersUp { up, reply })
            .map_err(|_| Error::Config("the embedded broker stopped".into()))?;
        answer
            .recv()
            .map_err(|_| Error::Config("the embedded broker stopped".into()))?
            .map_err(|err| Error::Config(format!("setting the brokers up={up}: {err}")))
    }

    /// Creates every topic of `topics`.
    pub fn create_topics(&self, topics: &TopicsFile) -> Result<(), Error> {
        for topic in &topics.topics {
            self.create_topic(&topic.name, topic.partitions, topic.replication_factor)?;
        }
        Ok(())
    }
}

impl Drop for EmbeddedKafka {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
