//! The consumer runtime against real Kafka protocol: librdkafka's mock cluster, and tansu.
//!
//! Each scenario is written once against [`TestCluster`] and run on both brokers
//! (`on_both_brokers!`); a module is one area of the runtime's guarantees.

use std::time::Duration;

use chatgptd_testkit::kafka::{TestCluster, committed};
use chatgptd_testkit::wait_until;
use chatgptd_types::avro::Codec;
use chatgptd_types::records::WorkflowStep;
use rdkafka::Message;

/// Runs each scenario (an `async fn(&impl TestCluster)` of the calling module) as two tests,
/// `mock::<scenario>` and `tansu::<scenario>`, each on a fresh broker with the default
/// dead-letter topic.
macro_rules! on_both_brokers {
    ($($scenario:ident),* $(,)?) => {
        mod mock {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $scenario() {
                    chatgptd_testkit::init_logging();
                    let cluster = chatgptd_testkit::kafka::MockKafka::start();
                    crate::with_dead_letter_topic(&cluster).await;
                    super::$scenario(&cluster).await;
                }
            )*
        }
        mod tansu {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $scenario() {
                    chatgptd_testkit::init_logging();
                    let cluster = chatgptd_testkit::tansu::Tansu::start().await;
                    crate::with_dead_letter_topic(&cluster).await;
                    super::$scenario(&cluster).await;
                }
            )*
        }
    };
}

mod delivery;
mod failures;
mod positions;
mod rebalance;

const WAIT: Duration = Duration::from_secs(30);

/// Waits until `group` has committed `offset` on partition 0 of `topic`; `what` names it.
async fn wait_committed(brokers: &str, group: &str, topic: &str, offset: i64, what: &str) {
    wait_until(WAIT, what, || {
        let offsets = committed(brokers, group, topic, 1);
        async move { (offsets.get(&0) == Some(&offset)).then_some(()) }
    })
    .await;
}

fn decode_step(message: &rdkafka::message::OwnedMessage) -> WorkflowStep {
    Codec::builtin().decode(message.payload().unwrap()).unwrap()
}

/// Creates the default dead-letter topic, which a consumer needs before it starts.
async fn with_dead_letter_topic(cluster: &impl TestCluster) {
    let default = chatgptd_runtime::ConsumerOptions::default().dead_letter_topic;
    cluster.create_topic(&default, 1).await;
}
