//! Heartbeats: a worker registers the agents it serves and beats for them, in the memory
//! backend, so `GET /agents` can tell active, standby and stale agents apart.

use std::sync::Arc;
use std::time::Duration;

use chatgptd_memory::Memory;
use chatgptd_registry::{AgentStatus, status_of};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How long a beat is kept: long enough that a dead worker's agents show as stale, not
/// standby, for a day.
const BEAT_TTL: Duration = Duration::from_secs(24 * 3600);

fn key(agent: &str) -> String {
    format!("agent-heartbeat:{agent}")
}

/// One beat.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Beat {
    worker: String,
    at_ms: i64,
}

/// The agents a worker serves, asked before each beat: agents registered at run time join
/// (and disabled ones leave) without a restart.
pub type Served = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// Beats for the agents one worker serves.
pub struct Heartbeats {
    memory: Arc<dyn Memory>,
    agents: Served,
    interval: Duration,
    worker: String,
}

impl std::fmt::Debug for Heartbeats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heartbeats")
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

impl Heartbeats {
    /// Beats every `interval` for the agents `agents` names, as worker `worker`.
    pub fn new(
        memory: Arc<dyn Memory>,
        agents: Served,
        interval: Duration,
        worker: String,
    ) -> Self {
        Heartbeats {
            memory,
            agents,
            interval,
            worker,
        }
    }

    /// Registers (the first beat) and beats until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            self.beat().await;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    async fn beat(&self) {
        let beat = Beat {
            worker: self.worker.clone(),
            at_ms: chatgptd_types::now_ms(),
        };
        let value = serde_json::to_vec(&beat).unwrap_or_default();
        for agent in &(self.agents)() {
            if let Err(err) = self.memory.put(&key(agent), &value, Some(BEAT_TTL)).await {
                warn!(%err, agent, "heartbeat not recorded");
                return;
            }
        }
    }
}

/// What the memory backend says about an agent's workers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentHealth {
    /// Active, standby or stale.
    pub status: AgentStatus,
    /// The last beat of a worker serving it.
    pub last_heartbeat_ms: Option<i64>,
    /// The worker that beat last.
    pub worker: Option<String>,
}

/// The health of `agent` (see `chatgptd_registry::status`): a beat means a worker registered to
/// serve it, its age tells active from stale; no beat means standby.
pub async fn agent_health(
    memory: &dyn Memory,
    agent: &str,
    interval: Duration,
) -> Result<AgentHealth, chatgptd_memory::Error> {
    let beat: Option<Beat> = memory
        .get(&key(agent))
        .await?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let last = beat.as_ref().map(|b| b.at_ms);
    Ok(AgentHealth {
        status: status_of(last, beat.is_some(), chatgptd_types::now_ms(), interval),
        last_heartbeat_ms: last,
        worker: beat.map(|b| b.worker),
    })
}
