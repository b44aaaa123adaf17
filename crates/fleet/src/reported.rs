//! Heartbeats an externally hosted GPT reports itself (`POST /agents/{id}/heartbeat`): its
//! own status with a time to live, shown beside the worker's heartbeat and as `stale` once
//! the TTL has passed.

use std::time::Duration;

use chatgptd_memory::Memory;
use serde::{Deserialize, Serialize};

/// The longest TTL a report may ask for.
pub const MAX_REPORT_TTL: Duration = Duration::from_secs(24 * 3600);

/// How long a report is kept after its TTL, so it shows as `stale` rather than vanishing.
const KEPT_AFTER_TTL: Duration = Duration::from_secs(24 * 3600);

fn key(agent: &str) -> String {
    format!("agent-reported:{agent}")
}

/// What an external GPT says it is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportedStatus {
    /// Answering.
    Active,
    /// Up, but not taking work.
    Standby,
    /// Deployed, not yet active.
    Deployed,
}

/// One report, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What the agent said.
    pub status: ReportedStatus,
    /// When it said it.
    pub at_ms: i64,
    /// How long it holds, in seconds.
    pub ttl_s: u64,
    /// The token that reported it.
    pub by: String,
}

/// What `GET /agents/{id}` shows of the latest report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportedHealth {
    /// The reported status, or `stale` once the TTL passed.
    pub status: String,
    /// What was reported, even when stale.
    pub reported: ReportedStatus,
    /// When it was reported.
    pub at_ms: i64,
    /// When it goes (or went) stale.
    pub expires_at_ms: i64,
    /// The token that reported it.
    pub by: String,
}

/// Stores `report` for `agent`.
pub async fn report(
    memory: &dyn Memory,
    agent: &str,
    report: &Report,
) -> Result<(), chatgptd_memory::Error> {
    let value = serde_json::to_vec(report).unwrap_or_default();
    let keep = Duration::from_secs(report.ttl_s) + KEPT_AFTER_TTL;
    memory.put(&key(agent), &value, Some(keep)).await
}

/// The latest report of `agent`, as of `now_ms`; `None` if it never reported (or long ago).
pub async fn reported_health(
    memory: &dyn Memory,
    agent: &str,
    now_ms: i64,
) -> Result<Option<ReportedHealth>, chatgptd_memory::Error> {
    let report: Option<Report> = memory
        .get(&key(agent))
        .await?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    Ok(report.map(|report| health_of(&report, now_ms)))
}

/// The pure rule: the reported status until `at_ms + ttl`, `stale` after.
pub fn health_of(report: &Report, now_ms: i64) -> ReportedHealth {
    let ttl_ms = i64::try_from(report.ttl_s.saturating_mul(1000)).unwrap_or(i64::MAX);
    let expires_at_ms = report.at_ms.saturating_add(ttl_ms);
    let status = if now_ms > expires_at_ms {
        "stale".to_string()
    } else {
        serde_json::to_value(report.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    ReportedHealth {
        status,
        reported: report.status,
        at_ms: report.at_ms,
        expires_at_ms,
        by: report.by.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_until_the_ttl_then_stale() {
        let report = Report {
            status: ReportedStatus::Deployed,
            at_ms: 1_000,
            ttl_s: 5,
            by: "gpt".into(),
        };
        assert_eq!(health_of(&report, 6_000).status, "deployed");
        assert_eq!(health_of(&report, 6_001).status, "stale");
        assert_eq!(health_of(&report, 6_001).reported, ReportedStatus::Deployed);
    }
}
