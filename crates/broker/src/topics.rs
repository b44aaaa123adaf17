//! The topics of `topics.yaml` in the embedded broker.

use std::time::Duration;

use chatgptd_types::topics::TopicsFile;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::Error;

const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates the topics of `topics` that `bootstrap_servers` does not hold yet, with one
/// replica (there is one broker). Topics that exist keep their records.
///
/// Records are kept until deleted by hand: the embedded broker applies no time retention,
/// so a backlog waits for its consumer however old it is. Compacted topics stay compacted,
/// which keeps the latest record of every key.
pub async fn create_topics(bootstrap_servers: &str, topics: &TopicsFile) -> Result<(), Error> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap_servers)
        .create()
        .map_err(kafka("creating an admin client"))?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .topics
        .iter()
        .map(|spec| {
            let topic = NewTopic::new(&spec.name, spec.partitions, TopicReplication::Fixed(1));
            if spec.cleanup_policy.contains("compact") {
                topic.set("cleanup.policy", "compact")
            } else {
                topic
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(kafka("creating topics"))?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(Error::Broker(format!("creating topic {name}: {code}")));
            }
        }
    }
    Ok(())
}

fn kafka(context: &str) -> impl FnOnce(rdkafka::error::KafkaError) -> Error + '_ {
    move |source| Error::Kafka {
        context: context.to_string(),
        source,
    }
}
