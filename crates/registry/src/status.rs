//! Agent status from heartbeats: the pure rule, for the memory backend's records.
//!
//! Agent workers register the agents they serve when they start and beat every
//! `heartbeat_interval`; registration counts as the first beat. From the last beat of the
//! workers serving an agent, its status is:
//!
//! | serving | last beat                                   | status    |
//! |---------|---------------------------------------------|-----------|
//! | no      | any                                         | `standby` |
//! | yes     | within [`STALE_AFTER_INTERVALS`] intervals  | `active`  |
//! | yes     | older, or none                              | `stale`   |
//!
//! Three intervals tolerate two lost or late beats (a GC pause, a busy broker) before a
//! worker that died without deregistering shows as stale. A beat stamped in the future (a
//! worker's clock ahead of ours) counts as fresh rather than as stale.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How many heartbeat intervals may pass without a beat before an agent is stale.
pub const STALE_AFTER_INTERVALS: u32 = 3;

/// An agent's status, as `chatgptd agents list` and `GET /agents` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    /// A worker serving it beat recently: messages to it are answered.
    Active,
    /// In the registry, but no worker serves it: messages wait in Kafka until one does.
    Standby,
    /// A worker registered to serve it stopped beating: probably dead without
    /// deregistering. Messages wait until the partition moves to a live worker.
    Stale,
}

impl AgentStatus {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Active => "active",
            AgentStatus::Standby => "standby",
            AgentStatus::Stale => "stale",
        }
    }
}

/// How old a beat may be before it is stale: [`STALE_AFTER_INTERVALS`] intervals.
pub fn stale_after(heartbeat_interval: Duration) -> Duration {
    heartbeat_interval.saturating_mul(STALE_AFTER_INTERVALS)
}

/// The status of an agent: `last_heartbeat_ms` is the newest beat of the workers registered
/// to serve it (`None` if none ever beat), `serving` whether any worker is registered to
/// serve it. See the module docs for the rule.
pub fn status_of(
    last_heartbeat_ms: Option<i64>,
    serving: bool,
    now_ms: i64,
    heartbeat_interval: Duration,
) -> AgentStatus {
    if !serving {
        return AgentStatus::Standby;
    }
    let Some(last) = last_heartbeat_ms else {
        return AgentStatus::Stale;
    };
    let age_ms = now_ms.saturating_sub(last).max(0);
    let limit_ms = i64::try_from(stale_after(heartbeat_interval).as_millis()).unwrap_or(i64::MAX);
    if age_ms <= limit_ms {
        AgentStatus::Active
    } else {
        AgentStatus::Stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(10);
    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn not_served_is_standby_whatever_the_beat() {
        assert_eq!(status_of(None, false, NOW, INTERVAL), AgentStatus::Standby);
        assert_eq!(
            status_of(Some(NOW), false, NOW, INTERVAL),
            AgentStatus::Standby
        );
        assert_eq!(
            status_of(Some(0), false, NOW, INTERVAL),
            AgentStatus::Standby
        );
    }

    #[test]
    fn served_and_beating_within_three_intervals_is_active() {
        assert_eq!(
            status_of(Some(NOW), true, NOW, INTERVAL),
            AgentStatus::Active
        );
        assert_eq!(
            status_of(Some(NOW - 15_000), true, NOW, INTERVAL),
            AgentStatus::Active
        );
        // The boundary itself is still active.
        assert_eq!(
            status_of(Some(NOW - 30_000), true, NOW, INTERVAL),
            AgentStatus::Active
        );
    }

    #[test]
    fn served_with_an_old_or_no_beat_is_stale() {
        assert_eq!(
            status_of(Some(NOW - 30_001), true, NOW, INTERVAL),
            AgentStatus::Stale
        );
        assert_eq!(status_of(Some(0), true, NOW, INTERVAL), AgentStatus::Stale);
        assert_eq!(status_of(None, true, NOW, INTERVAL), AgentStatus::Stale);
    }

    #[test]
    fn a_beat_from_the_future_is_fresh() {
        assert_eq!(
            status_of(Some(NOW + 5_000), true, NOW, INTERVAL),
            AgentStatus::Active
        );
    }

    #[test]
    fn serializes_lowercase() {
        assert_eq!(
            serde_json::to_string(&AgentStatus::Stale).unwrap(),
            "\"stale\""
        );
        assert_eq!(AgentStatus::Standby.as_str(), "standby");
        assert_eq!(stale_after(INTERVAL), Duration::from_secs(30));
    }
}
