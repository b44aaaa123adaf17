//! Conversations parked on something that arrives later: another agent's reply, a fleet's
//! replies, or a person's decision. A wait holds no worker: its record completes, and the
//! arrival (a record of its own) finds the wait by the action's id and resumes it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chatgptd_memory::Memory;
use chatgptd_types::records::AgentMessage;
use serde::{Deserialize, Serialize};

use crate::ActionId;
use crate::error::{Error, decode, encode};

const DAY_MS: i64 = 24 * 3600 * 1000;

/// What a conversation waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "on", rename_all = "snake_case")]
pub enum WaitOn {
    /// Replies from these agents (one for `message_agent`, a fleet's for `broadcast_fleet`).
    Replies { from: Vec<String> },
    /// A person's decision on the approval of this id.
    Approval { approval: String },
}

/// A parked conversation: enough to run its tool loop again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wait {
    /// The call that waits.
    pub action: ActionId,
    /// Its action (`message_agent`, ...) and arguments (JSON text), for the audit of how it
    /// ended when the sweep ends it.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub arguments: String,
    /// The agent whose conversation it is.
    pub agent: String,
    /// The message the agent was answering.
    pub message: AgentMessage,
    /// Where that message was read (`topic/partition/offset`), for provenance.
    pub source: Source,
    /// The record (`topic/partition/offset`) whose processing parked it: a redelivery of that
    /// record sends what the wait waits on again; any other record finds it parked.
    pub origin: String,
    pub on: WaitOn,
    pub since_ms: i64,
}

/// Where a record was read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.topic, self.partition, self.offset)
    }
}

/// Parked conversations in the memory backend.
#[derive(Debug, Clone)]
pub struct Waits {
    memory: Arc<dyn Memory>,
    ttl: Duration,
}

impl Waits {
    /// Waits in `memory`, kept for `ttl` (a wait older than that is forgotten: its replies
    /// are then answered as new requests).
    pub fn new(memory: Arc<dyn Memory>, ttl: Duration) -> Self {
        Waits { memory, ttl }
    }

    /// Parks `wait`. Parking the same call again (a redelivery) keeps the first.
    pub async fn park(&self, wait: &Wait) -> Result<(), Error> {
        let key = format!("act:wait:{}", wait.action);
        self.memory
            .put_if_absent(&key, &encode(wait), Some(self.ttl))
            .await?;
        // Listed by the day it was parked, for the sweep that ends replies never coming.
        let day = wait.since_ms.div_euclid(DAY_MS);
        let keep = self.ttl + Duration::from_millis(DAY_MS as u64);
        self.memory
            .join(
                &format!("act:waits:{day}"),
                wait.action.as_str(),
                Some(keep),
            )
            .await?;
        Ok(())
    }

    /// Every wait parked within the last `ttl`, oldest day first.
    pub async fn parked(&self) -> Result<Vec<Wait>, Error> {
        let today = chatgptd_types::now_ms().div_euclid(DAY_MS);
        let days = (self.ttl.as_millis() as i64).div_euclid(DAY_MS) + 1;
        let mut waits = Vec::new();
        for day in (today - days)..=today {
            for action in self
                .memory
                .join_members(&format!("act:waits:{day}"))
                .await?
            {
                waits.extend(self.get(&action).await?);
            }
        }
        Ok(waits)
    }

    /// The wait of the call `action`, if it is parked.
    pub async fn get(&self, action: &str) -> Result<Option<Wait>, Error> {
        match self.memory.get(&format!("act:wait:{action}")).await? {
            Some(bytes) => decode("wait", &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Notes `from`'s reply `text` to the call `action`. Returns every expected reply, in
    /// the order of `expected`, once all have arrived; `None` while some are missing. Safe
    /// to call again for a redelivered reply.
    pub async fn arrived(
        &self,
        action: &ActionId,
        expected: &[String],
        from: &str,
        text: &str,
    ) -> Result<Option<Vec<(String, String)>>, Error> {
        self.memory
            .put(
                &format!("act:reply:{action}:{from}"),
                text.as_bytes(),
                Some(self.ttl),
            )
            .await?;
        let arrived = self
            .memory
            .join(&format!("act:replies:{action}"), from, Some(self.ttl))
            .await?;
        if arrived < expected.len() {
            return Ok(None);
        }
        let mut replies = BTreeMap::new();
        for agent in expected {
            let text = self
                .memory
                .get(&format!("act:reply:{action}:{agent}"))
                .await?
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
            match text {
                Some(text) => replies.insert(agent.clone(), text),
                // A sender outside `expected` made up the count.
                None => return Ok(None),
            };
        }
        Ok(Some(
            expected
                .iter()
                .map(|agent| (agent.clone(), replies.remove(agent).unwrap_or_default()))
                .collect(),
        ))
    }
}
