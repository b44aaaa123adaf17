use std::collections::BTreeMap;
use std::time::Duration;

use chatgptd_types::topics::names;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::retry::Backoff;

/// How a worker consumes: concurrency, retries, deadlines, dead letters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerOptions {
    /// Consumer group. Replicas of a worker share it and split the partitions between them;
    /// empty means `chatgptd-<worker kind>`.
    pub group_id: String,

    /// Records of one partition that may be in flight at once (running, or waiting behind an
    /// earlier record with the same key). At this bound the partition is paused, so memory
    /// stays bounded whatever the input rate. One partition with a slow model and many keys
    /// runs this many model calls concurrently.
    pub max_in_flight_per_partition: usize,

    /// Tries per record (the first included) before a retryable error becomes permanent and
    /// the record goes to the dead-letter topic.
    pub max_attempts: u32,

    /// Spacing of retries.
    pub backoff: Backoff,

    /// How long one try of one record may work (processing plus producing its outputs).
    /// Time spent waiting on a rate limiter, a concurrency cap or a `Retry-After` does not
    /// count: a backlog behind a limit waits, it does not time out.
    #[serde(with = "humantime_serde")]
    pub process_timeout: Duration,

    /// On rebalance or shutdown, how long in-flight records get to finish before they are
    /// abandoned (not committed, so redelivered). Must be below `session_timeout`.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,

    /// `session.timeout.ms`: how long the group waits for a silent member before
    /// reassigning its partitions.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,

    /// `max.poll.interval.ms`. The runtime polls continuously (processing runs elsewhere),
    /// but a start-up warning compares this with the worst case a record can take.
    #[serde(with = "humantime_serde")]
    pub max_poll_interval: Duration,

    /// Where records that fail permanently go.
    pub dead_letter_topic: String,

    /// What to do when the group's committed offset of a partition is out of range (the
    /// broker's retention deleted records never processed, or the topic was recreated):
    /// `error` (the default) stops that partition, reports it on `/readyz` and in the logs,
    /// and commits nothing past it, so no record is skipped without someone deciding to;
    /// `earliest` or `latest` let librdkafka move the group to the first or the next record,
    /// skipping what lies between, and also say where a partition without a committed offset
    /// starts. With `error`, such a partition starts at its first record. librdkafka's
    /// `auto.offset.reset` is this option, and may not be set in `properties`.
    pub offset_reset: OffsetReset,

    /// Extra librdkafka properties for this worker's consumer only (after `kafka.properties`).
    pub properties: BTreeMap<String, String>,
}

/// See [`ConsumerOptions::offset_reset`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// Stop the partition and say so.
    #[default]
    Error,
    /// Move to the first record still in the partition.
    Earliest,
    /// Move to the end of the partition.
    Latest,
}

impl OffsetReset {
    /// The value of librdkafka's `auto.offset.reset`.
    pub fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Error => "error",
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            group_id: String::new(),
            max_in_flight_per_partition: 64,
            max_attempts: 5,
            backoff: Backoff::default(),
            process_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(20),
            session_timeout: Duration::from_secs(45),
            max_poll_interval: Duration::from_secs(600),
            dead_letter_topic: names::DEAD_LETTER.to_string(),
            offset_reset: OffsetReset::Error,
            properties: BTreeMap::new(),
        }
    }
}

impl ConsumerOptions {
    /// Refuses settings that would break the delivery guarantee.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_in_flight_per_partition == 0 {
            return Err(Error::Config(
                "max_in_flight_per_partition must be at least 1".into(),
            ));
        }
        if self.max_attempts == 0 {
            return Err(Error::Config("max_attempts must be at least 1".into()));
        }
        if self.drain_timeout >= self.session_timeout {
            return Err(Error::Config(format!(
                "drain_timeout ({}) must be shorter than session_timeout ({}): a drain that \
                 outlives the session lets another member take the partitions mid-drain",
                humantime::format_duration(self.drain_timeout),
                humantime::format_duration(self.session_timeout)
            )));
        }
        if self.dead_letter_topic.is_empty() {
            return Err(Error::Config("dead_letter_topic must be set".into()));
        }
        if self.properties.contains_key(AUTO_OFFSET_RESET) {
            return Err(auto_offset_reset_is_an_option());
        }
        Ok(())
    }

    /// The longest one record can take: every try timing out, plus the waits between tries.
    pub fn worst_case_processing(&self) -> Duration {
        self.process_timeout.saturating_mul(self.max_attempts)
            + self.backoff.worst_case_total(self.max_attempts)
    }

    /// A warning if `max.poll.interval` is below the worst case a record can take.
    pub fn poll_interval_warning(&self) -> Option<String> {
        let worst = self.worst_case_processing();
        (self.max_poll_interval < worst).then(|| {
            format!(
                "max_poll_interval ({}) is below the worst-case processing time of one record \
                 ({} = {} tries x process_timeout {} + backoff): raise max_poll_interval, or \
                 lower process_timeout or max_attempts",
                humantime::format_duration(self.max_poll_interval),
                humantime::format_duration(worst),
                self.max_attempts,
                humantime::format_duration(self.process_timeout),
            )
        })
    }
}

/// librdkafka's name for [`ConsumerOptions::offset_reset`].
pub(crate) const AUTO_OFFSET_RESET: &str = "auto.offset.reset";

/// Two settings for one choice would leave it unclear which one wins.
pub(crate) fn auto_offset_reset_is_an_option() -> Error {
    Error::Config(format!(
        "{AUTO_OFFSET_RESET} may not be set in properties: set the consumer's offset_reset \
         (\"error\", the default, \"earliest\" or \"latest\") instead"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_quiet() {
        let options = ConsumerOptions::default();
        options.validate().unwrap();
        assert_eq!(options.poll_interval_warning(), None);
    }

    #[test]
    fn offset_reset_is_an_option_not_a_property() {
        let parsed: ConsumerOptions =
            serde_json::from_str(r#"{"offset_reset": "earliest"}"#).unwrap();
        assert_eq!(parsed.offset_reset, OffsetReset::Earliest);
        assert_eq!(ConsumerOptions::default().offset_reset, OffsetReset::Error);
        let mut options = ConsumerOptions::default();
        options
            .properties
            .insert(AUTO_OFFSET_RESET.into(), "earliest".into());
        let err = options.validate().unwrap_err().to_string();
        assert!(err.contains("offset_reset"), "{err}");
    }

    #[test]
    fn a_drain_longer_than_the_session_is_refused() {
        let options = ConsumerOptions {
            drain_timeout: Duration::from_secs(60),
            ..Default::default()
        };
        assert!(
            options
                .validate()
                .unwrap_err()
                .to_string()
                .contains("drain_timeout")
        );
    }

    #[test]
    fn warns_when_retries_can_outlast_max_poll_interval() {
        let options = ConsumerOptions {
            process_timeout: Duration::from_secs(120),
            max_attempts: 5,
            max_poll_interval: Duration::from_secs(300),
            ..Default::default()
        };
        let warning = options.poll_interval_warning().unwrap();
        assert!(warning.contains("max_poll_interval (5m)"), "{warning}");
    }
}
