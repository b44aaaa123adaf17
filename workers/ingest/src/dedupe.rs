//! Redelivery detection, in the memory backend so every gateway replica shares it.
//!
//! One key per delivery, `dedupe:<source>:<delivery id>`, in two states:
//!
//! - `pending:<token>`: claimed by a request that is producing the event; the token is that
//!   request's own. It expires after the ack timeout plus a margin, so a gateway that crashed
//!   mid-request does not block the sender's retries for the whole dedupe TTL.
//! - `done`: the broker acknowledged the event. Kept for `dedupe_ttl`.
//!
//! A duplicate that finds `done` gets 200 `duplicate`; one that finds `pending` gets 503 with
//! `Retry-After` (its twin may still fail, and a 2xx would then lose the event). A request
//! whose produce fails deletes its `pending` claim, so the sender's retry is not taken for a
//! duplicate; only if the claim is still its own (compare-and-delete on the token): a request
//! slower than its claim's expiry must not delete the claim a retry took meanwhile, or a third
//! delivery would be produced beside the retry.

use std::sync::Arc;
use std::time::Duration;

use chatgptd_memory::{Error, Memory};

use crate::source::Source;

/// The prefix of a claimed, not yet acknowledged delivery's value.
const PENDING: &str = "pending:";
/// The value of an acknowledged delivery.
const DONE: &[u8] = b"done";
/// Added to the ack timeout for a claim's expiry: covers the memory calls around the produce.
const CLAIM_MARGIN: Duration = Duration::from_secs(10);

/// What claiming a delivery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Claim {
    /// This request owns the delivery: produce it, then confirm or release this claim.
    Claimed(Owned),
    /// Already acknowledged: a redelivery.
    Done,
    /// Another request is producing it right now.
    InFlight,
}

/// A claim this request holds: the key and the value only it wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owned {
    pub(crate) key: String,
    value: Vec<u8>,
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
        format!("dedupe:{}:{delivery_id}", source.as_str())
    }

    /// Claims `key`, atomically across replicas.
    pub(crate) async fn claim(&self, key: &str) -> Result<Claim, Error> {
        let value = format!("{PENDING}{}", uuid::Uuid::new_v4()).into_bytes();
        // Two rounds: a claim can be released or expire between our put and our get.
        for _ in 0..2 {
            if self
                .memory
                .put_if_absent(key, &value, Some(self.claim_ttl))
                .await?
            {
                return Ok(Claim::Claimed(Owned {
                    key: key.to_string(),
                    value,
                }));
            }
            match self.memory.get(key).await? {
                Some(value) if value == DONE => return Ok(Claim::Done),
                Some(_) => return Ok(Claim::InFlight),
                None => continue,
            }
        }
        Ok(Claim::InFlight)
    }

    /// Marks a claimed delivery as acknowledged. Unconditional: the event is persisted, so
    /// `done` is true whoever holds the claim now.
    pub(crate) async fn confirm(&self, claim: &Owned) -> Result<(), Error> {
        self.memory.put(&claim.key, DONE, Some(self.done_ttl)).await
    }

    /// Gives a claim up after a failed produce, if it is still this request's. Returns whether
    /// it was (false: it expired, and maybe another request holds the key now).
    pub(crate) async fn release(&self, claim: &Owned) -> Result<bool, Error> {
        self.memory.delete_if_equals(&claim.key, &claim.value).await
    }
}

#[cfg(test)]
mod tests {
    use chatgptd_memory::SqliteMemory;

    use super::*;

    async fn dedupe() -> (Dedupe, Arc<dyn Memory>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let memory: Arc<dyn Memory> = Arc::new(
            SqliteMemory::open(&dir.path().join("memory.db"), "test")
                .await
                .unwrap(),
        );
        let dedupe = Dedupe::new(
            memory.clone(),
            Duration::from_secs(60),
            Duration::from_secs(1),
        );
        (dedupe, memory, dir)
    }

    #[tokio::test]
    async fn a_release_keeps_a_claim_another_request_took_after_ours_expired() {
        let (dedupe, memory, _dir) = dedupe().await;
        let key = Dedupe::key(Source::GitHub, "d-1");
        let Claim::Claimed(ours) = dedupe.claim(&key).await.unwrap() else {
            panic!("the first claim is ours");
        };
        // Our claim expired mid-produce and the sender's retry claimed the delivery (the
        // expiry is simulated by deleting it: the state a real expiry leaves).
        memory.delete(&key).await.unwrap();
        let Claim::Claimed(theirs) = dedupe.claim(&key).await.unwrap() else {
            panic!("the retry claims the expired delivery");
        };
        assert!(!dedupe.release(&ours).await.unwrap());
        assert_eq!(dedupe.claim(&key).await.unwrap(), Claim::InFlight);
        // Its owner can still release it.
        assert!(dedupe.release(&theirs).await.unwrap());
        assert!(matches!(
            dedupe.claim(&key).await.unwrap(),
            Claim::Claimed(_)
        ));
    }

    #[tokio::test]
    async fn a_confirmed_delivery_is_done_and_its_release_is_a_no_op() {
        let (dedupe, _memory, _dir) = dedupe().await;
        let key = Dedupe::key(Source::Jira, "d-2");
        let Claim::Claimed(ours) = dedupe.claim(&key).await.unwrap() else {
            panic!("the first claim is ours");
        };
        dedupe.confirm(&ours).await.unwrap();
        assert!(!dedupe.release(&ours).await.unwrap());
        assert_eq!(dedupe.claim(&key).await.unwrap(), Claim::Done);
    }
}
