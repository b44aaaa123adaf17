//! Attempts of effects outside chatgptd that carry no idempotency key (an MCP tool call, an
//! HTTP call to a system that takes none): each is marked before it is made, so a retry can
//! tell an attempt that never reached the other side (it is forgotten, [`Ledger::forget`])
//! from one that may have (the mark stays until the outcome is recorded).
//!
//! Unlike [`Ledger::claim`], the mark does not expire with a lease: once an attempt may have
//! reached the other side, only its recorded outcome, or a decision by the caller that it
//! was lost, settles it. A lease that ran out would let a retry act a second time.

use serde::{Deserialize, Serialize};

use crate::error::{Error, decode, encode};
use crate::{ActionId, Ledger};

/// Whether an effect may be attempted now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Marked as ours, started now: attempt it, then record the outcome, or forget the mark
    /// if it surely never reached the other side.
    Go(Mark),
    /// An earlier attempt left its mark and no outcome: it is under way (another replica, or
    /// this record before a redelivery), or it was lost mid-call.
    Earlier(Mark),
}

/// The mark an attempt leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// The record (`topic/partition/offset`) whose processing made the attempt.
    pub origin: String,
    /// When it started (Unix ms).
    pub since_ms: i64,
}

impl Ledger {
    /// Marks an attempt of `action`'s effect by the processing of `origin`, unless one is
    /// marked already.
    pub async fn attempt(&self, action: &ActionId, origin: &str) -> Result<Attempt, Error> {
        let key = attempt_key(action);
        let mark = Mark {
            origin: origin.to_string(),
            since_ms: chatgptd_types::now_ms(),
        };
        if self
            .memory()
            .put_if_absent(&key, &encode(&mark), Some(self.ttl()))
            .await?
        {
            return Ok(Attempt::Go(mark));
        }
        match self.memory().get(&key).await? {
            Some(bytes) => Ok(Attempt::Earlier(decode("attempt mark", &bytes)?)),
            // Forgotten in between: whoever forgot it found it never reached; try again.
            None => Box::pin(self.attempt(action, origin)).await,
        }
    }

    /// Forgets the attempt `mark` of `action`: it surely never reached the other side (or
    /// the other side says repeating it is harmless), so the next attempt may go.
    pub async fn forget(&self, action: &ActionId, mark: &Mark) -> Result<(), Error> {
        self.memory()
            .delete_if_equals(&attempt_key(action), &encode(mark))
            .await?;
        Ok(())
    }
}

fn attempt_key(action: &ActionId) -> String {
    format!("act:attempt:{action}")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn an_attempt_is_marked_once_and_forgotten_only_by_its_own_mark() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.db");
        let memory: Arc<dyn chatgptd_memory::Memory> = Arc::new(
            chatgptd_memory::SqliteMemory::open(&path, "test")
                .await
                .unwrap(),
        );
        let ledger = Ledger::new(memory, Duration::from_secs(60));
        let id = ActionId::new("m1", "atlas", 0, 0);
        let Attempt::Go(mine) = ledger.attempt(&id, "t/0/1").await.unwrap() else {
            panic!("the first attempt goes");
        };
        let Attempt::Earlier(seen) = ledger.attempt(&id, "t/0/2").await.unwrap() else {
            panic!("a second attempt finds the first");
        };
        assert_eq!(seen, mine);
        let other = Mark {
            origin: "t/0/9".into(),
            since_ms: 1,
        };
        ledger.forget(&id, &other).await.unwrap();
        assert!(matches!(
            ledger.attempt(&id, "t/0/3").await.unwrap(),
            Attempt::Earlier(_)
        ));
        ledger.forget(&id, &mine).await.unwrap();
        assert!(matches!(
            ledger.attempt(&id, "t/0/4").await.unwrap(),
            Attempt::Go(_)
        ));
    }
}
