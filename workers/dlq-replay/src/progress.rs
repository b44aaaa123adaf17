//! Knowing when the replayer has caught up: the end of each partition is taken when the run
//! starts, and the run is over when every partition's processed offset reaches it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Offsets still to reach, per partition.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Partition → the offset one past the last record to replay. Removed once reached.
    remaining: Mutex<HashMap<i32, i64>>,
}

impl Progress {
    /// Reads the topic's end offsets and where `group` will start, so partitions with nothing
    /// to do are done already.
    pub fn start(
        config: &ClientConfig,
        topic: &str,
        group: &str,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let timeout = Duration::from_secs(10);
        let mut config = config.clone();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false");
        let consumer: BaseConsumer = config.create()?;
        let watermarks = chatgptd_runtime::admin::watermarks(&consumer, topic, timeout)?;
        let mut list = TopicPartitionList::new();
        for (partition, _, _) in &watermarks {
            list.add_partition(topic, *partition);
        }
        let committed = consumer.committed_offsets(list, timeout)?;
        let mut remaining = HashMap::new();
        for (partition, low, high) in watermarks {
            let start = committed
                .find_partition(topic, partition)
                .and_then(|e| match e.offset() {
                    Offset::Offset(offset) => Some(offset),
                    _ => None,
                })
                .unwrap_or(low)
                .max(low);
            if start < high {
                remaining.insert(partition, high);
            }
        }
        Ok(Progress {
            remaining: Mutex::new(remaining),
        })
    }

    /// Records that the record at `offset` of `partition` was handled.
    pub fn handled(&self, partition: i32, offset: i64) {
        let mut remaining = self.remaining.lock().unwrap_or_else(|p| p.into_inner());
        if remaining
            .get(&partition)
            .is_some_and(|end| offset + 1 >= *end)
        {
            remaining.remove(&partition);
        }
    }

    /// Whether every partition reached its end.
    pub fn caught_up(&self) -> bool {
        self.remaining
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}
