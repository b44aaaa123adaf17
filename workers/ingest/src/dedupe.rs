//! Redelivery detection, in the memory backend so every gateway replica shares it.
//!
//! One key per delivery, `dedupe:<source>:<delivery id>`, in two states:
//!
//! - `pending`: claimed by a request that is producing the event. It expires after the ack
//!   timeout plus a margin, so a gateway that crashed mid-request does not block the sender's
//!   retries for the whole dedupe TTL.
//! - `done`: the broker acknowledged the event. Kept for `dedupe_ttl`.
//!
//! A duplicate that finds `done` gets 200 `duplicate`; one that finds `pending` gets 503 with
//! `Retry-After` (its twin may still fail, and a 2xx would then lose the event). A request
//! whose produce fails deletes its `pending` claim, so the sender's retry is not taken for a
//! duplicate.

use std::sync::Arc;
use std::time::Duration;

use chatgptd_memory::{Error, Memory};

use crate::source::Source;

/// The value of a claimed, not yet acknowledged delivery.
const PENDING: &[u8] = b"pending";
/// The value of an acknowledged delivery.
const DONE: &[u8] = b"done";
/// Added to the ack timeout for a claim's expiry: covers the memory calls around the produce.
const CLAIM_MARGIN: Duration = Duration::from_secs(10);

/// What claiming a delivery found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// This request owns the delivery: produce it, then confirm or release.
    Claimed,
    /// Already acknowledged: a redelivery.
    Done,
    /// Another request is producing it right now.
    InFlight,
}

/// The dedupe keys of one gateway.
pub(crate) struct Dedupe {
    memory: Arc<dyn Memory>,
    /// How long an acknowledged delivery is remembered.
    done_ttl: Duration,
    /// How long a claim lives without an acknowledgement.
    claim_ttl: Duration,
}

impl Dedupe {
    pub(crate) fn new(memory: Arc<dyn Memory>, done_ttl: Duration, ack_timeout: Duration) -> Self {
        Dedupe {
            memory,
            done_ttl,
            claim_ttl: ack_timeout + CLAIM_MARGIN,
        }
    }

    /// The memory key of a delivery.
    pub(crate) fn key(source: Source, delivery_id: &str) -> String {
        format!("dedupe:{}:{delivery_id}", source.name())
    }

    /// Claims `key`, atomically across replicas.
    pub(crate) async fn claim(&self, key: &str) -> Result<Claim, Error> {
        // Two rounds: a claim can be released or expire between our put and our get.
        for _ in 0..2 {
            if self
                .memory
                .put_if_absent(key, PENDING, Some(self.claim_ttl))
                .await?
            {
                return Ok(Claim::Claimed);
            }
            match self.memory.get(key).await? {
                Some(value) if value == DONE => return Ok(Claim::Done),
                Some(_) => return Ok(Claim::InFlight),
                None => continue,
            }
        }
        Ok(Claim::InFlight)
    }

    /// Marks a claimed delivery as acknowledged.
    pub(crate) async fn confirm(&self, key: &str) -> Result<(), Error> {
        self.memory.put(key, DONE, Some(self.done_ttl)).await
    }

    /// Gives a claim up after a failed produce.
    pub(crate) async fn release(&self, key: &str) -> Result<(), Error> {
        self.memory.delete(key).await
    }
}
