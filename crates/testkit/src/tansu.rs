//! tansu: a real Kafka-protocol broker, for the tests that must not rely on librdkafka's own
//! mock. It is the broker `chatgptd up` embeds (`chatgptd-broker`), run inside the test
//! process on a free loopback port with its SQLite storage in a temporary directory; clients
//! reach it over TCP as they would a broker process, and `stop` closes every connection.
//! (tansu's `memory://` storage stalls on fetches that start mid-batch, so every test broker
//! keeps SQLite.)

use std::net::SocketAddr;

use chatgptd_broker::{Broker, Members};

/// A tansu broker on a free loopback port.
pub struct Tansu {
    broker: Option<Broker>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Tansu {
    /// Starts a broker and waits until it accepts connections.
    pub async fn start() -> Tansu {
        let dir = tempfile::tempdir().expect("tansu dir");
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let broker = Broker::start(dir.path(), listen, Members::Forget)
            .await
            .expect("tansu starts");
        let port = broker
            .bootstrap_servers()
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .expect("tansu's port");
        Tansu {
            broker: Some(broker),
            port,
            dir,
        }
    }

    /// `127.0.0.1:port`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the broker, as a crash would: connections drop, nothing more is answered.
    /// What it acknowledged stays in its storage.
    pub async fn stop(&mut self) {
        if let Some(broker) = self.broker.take() {
            broker.stop().await;
        }
    }

    /// Starts the broker again on the same port with the same storage. Clients keep their
    /// group memberships, as with a broker process that restarts.
    pub async fn restart(&mut self) {
        self.stop().await;
        let listen = SocketAddr::from(([127, 0, 0, 1], self.port));
        let broker = Broker::start(self.dir.path(), listen, Members::Keep)
            .await
            .expect("tansu restarts");
        self.broker = Some(broker);
    }
}
