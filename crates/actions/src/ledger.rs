//! The ledger: a conversation's model turns and its actions' outcomes, in the memory backend.
//!
//! The agent worker's tool loop is a replay: each time it runs for a message (first
//! delivery, redelivery, or resumption after a reply or a decision) it walks the same steps,
//! reading recorded turns instead of asking the model again and recorded outcomes instead of
//! acting again. Everything is first-writer-wins, so two replicas racing on one message
//! settle on one history.

use std::sync::Arc;
use std::time::Duration;

use chatgptd_memory::Memory;
use chatgptd_model::{ChatMessage, ChatReply};
use serde::{Deserialize, Serialize};

use crate::error::{Error, decode, encode};
use crate::{ActionId, Outcome};

/// An outcome as recorded, with where it was first recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub outcome: Outcome,
    /// The record (`topic/partition/offset`) whose processing recorded it. A redelivery of
    /// that same record emits the outcome's audit again (its first outputs may have been
    /// lost in a crash); any later record replays it silently.
    pub origin: String,
}

/// Whether this worker may perform an effect now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The claim is ours: act, then record the outcome.
    Mine,
    /// Someone claimed it before and recorded nothing: either it is acting right now, or it
    /// crashed between the effect and the record. Look before acting again.
    Held,
}

/// Turns and outcomes in `memory`, kept for `ttl`.
#[derive(Debug, Clone)]
pub struct Ledger {
    memory: Arc<dyn Memory>,
    ttl: Duration,
}

impl Ledger {
    /// A ledger in `memory` whose entries live for `ttl`: at least as long as a conversation
    /// may wait (the longest approval expiry).
    pub fn new(memory: Arc<dyn Memory>, ttl: Duration) -> Self {
        Ledger { memory, ttl }
    }

    /// How long entries are kept.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The memory backend, for the stores that share it.
    pub fn memory(&self) -> &Arc<dyn Memory> {
        &self.memory
    }

    /// The prompt the conversation `run` started from: the first one kept wins, so a
    /// resumption continues the very conversation it left (memory search and history may
    /// have moved on since).
    pub async fn keep_base(
        &self,
        run: &str,
        messages: Vec<ChatMessage>,
    ) -> Result<Vec<ChatMessage>, Error> {
        let key = format!("act:base:{run}");
        self.first_wins(&key, "conversation base", messages).await
    }

    /// The prompt the conversation `run` started from, if it has started.
    pub async fn base(&self, run: &str) -> Result<Option<Vec<ChatMessage>>, Error> {
        self.read(&format!("act:base:{run}"), "conversation base")
            .await
    }

    /// The recorded reply of turn `step` of `run`, if any.
    pub async fn turn(&self, run: &str, step: u32) -> Result<Option<ChatReply>, Error> {
        self.read(&format!("act:turn:{run}:{step}"), "model turn")
            .await
    }

    /// Records turn `step` of `run`; returns the recorded one (another replica's, if it was
    /// first), so every replica acts on the same tool calls.
    pub async fn record_turn(
        &self,
        run: &str,
        step: u32,
        reply: ChatReply,
    ) -> Result<ChatReply, Error> {
        let key = format!("act:turn:{run}:{step}");
        self.first_wins(&key, "model turn", reply).await
    }

    /// The recorded outcome of `action`, if any.
    pub async fn outcome(&self, action: &ActionId) -> Result<Option<Recorded>, Error> {
        self.read(&format!("act:done:{action}"), "action outcome")
            .await
    }

    /// Records the outcome of `action`, first writer wins; returns the recorded one.
    pub async fn record(
        &self,
        action: &ActionId,
        outcome: Outcome,
        origin: &str,
    ) -> Result<Recorded, Error> {
        let recorded = Recorded {
            outcome,
            origin: origin.to_string(),
        };
        let key = format!("act:done:{action}");
        self.first_wins(&key, "action outcome", recorded).await
    }

    /// Claims the effect of `action` for `holder` for `lease`.
    pub async fn claim(
        &self,
        action: &ActionId,
        holder: &str,
        lease: Duration,
    ) -> Result<Claim, Error> {
        let key = format!("act:claim:{action}");
        let mine = self
            .memory
            .put_if_absent(&key, holder.as_bytes(), Some(lease))
            .await?;
        Ok(if mine { Claim::Mine } else { Claim::Held })
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        what: &'static str,
    ) -> Result<Option<T>, Error> {
        match self.memory.get(key).await? {
            Some(bytes) => decode(what, &bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn first_wins<T: Serialize + serde::de::DeserializeOwned>(
        &self,
        key: &str,
        what: &'static str,
        value: T,
    ) -> Result<T, Error> {
        if self
            .memory
            .put_if_absent(key, &encode(&value), Some(self.ttl))
            .await?
        {
            return Ok(value);
        }
        // Lost the race, or a replay: what is stored is the truth. It can only be missing if
        // it expired in between, in which case ours is as good as any.
        Ok(self.read(key, what).await?.unwrap_or(value))
    }
}
