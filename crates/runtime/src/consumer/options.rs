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

    /// Extra librdkafka properties for this worker's consumer only (after `kafka.properties`).
    pub properties: BTreeMap<String, String>,
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
