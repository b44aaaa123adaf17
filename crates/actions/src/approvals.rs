//! Approval requests and their one decision, in the memory backend.
//!
//! An action that needs a person's approval parks its conversation and files an
//! [`ApprovalRequest`] here (and on the approvals topic). Exactly one decision wins:
//! approve, deny, or expire, whichever comes first; any later one is
//! [`Error::AlreadyDecided`], which the API answers with 409.

use std::sync::Arc;
use std::time::Duration;

use chatgptd_memory::Memory;
use chatgptd_types::records::{ApprovalRequest, ApprovalState};

use crate::error::{Error, decode, encode};

/// A decision on an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
    /// Nobody decided in time.
    Expire,
}

impl Decision {
    /// The state the decision leaves the approval in.
    pub fn state(self) -> ApprovalState {
        match self {
            Decision::Approve => ApprovalState::Approved,
            Decision::Deny => ApprovalState::Denied,
            Decision::Expire => ApprovalState::Expired,
        }
    }
}

/// The approvals in `memory`.
#[derive(Debug, Clone)]
pub struct Approvals {
    memory: Arc<dyn Memory>,
    ttl: Duration,
}

/// Approval ids are listed from one set per day of request, each expiring a day after the
/// approvals it lists: a set of every id ever requested would only grow.
const DAY_MS: i64 = 24 * 3600 * 1000;

fn index(day: i64) -> String {
    format!("act:approvals:{day}")
}

impl Approvals {
    /// Approvals in `memory`, remembered for `ttl` after they are requested.
    pub fn new(memory: Arc<dyn Memory>, ttl: Duration) -> Self {
        Approvals { memory, ttl }
    }

    /// Files `request` unless an approval of its id exists; returns the stored one (so a
    /// redelivery re-files nothing and sees the current state).
    pub async fn request(&self, request: &ApprovalRequest) -> Result<ApprovalRequest, Error> {
        let key = key(&request.id);
        let filed = self
            .memory
            .put_if_absent(&key, &encode(request), Some(self.ttl))
            .await?;
        let day = request.requested_at_ms.div_euclid(DAY_MS);
        let keep = self.ttl + std::time::Duration::from_millis(DAY_MS as u64);
        self.memory
            .join(&index(day), &request.id, Some(keep))
            .await?;
        if filed {
            return Ok(request.clone());
        }
        Ok(self
            .get(&request.id)
            .await?
            .unwrap_or_else(|| request.clone()))
    }

    /// The approval `id`.
    pub async fn get(&self, id: &str) -> Result<Option<ApprovalRequest>, Error> {
        match self.memory.get(&key(id)).await? {
            Some(bytes) => decode("approval", &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The approvals in `state` (all if `None`), oldest request first.
    pub async fn list(&self, state: Option<&str>) -> Result<Vec<ApprovalRequest>, Error> {
        let today = chatgptd_types::now_ms().div_euclid(DAY_MS);
        let days = (self.ttl.as_millis() as i64).div_euclid(DAY_MS) + 1;
        let mut ids = Vec::new();
        for day in (today - days)..=today {
            ids.extend(self.memory.join_members(&index(day)).await?);
        }
        let mut found = Vec::new();
        for id in ids {
            if let Some(approval) = self.get(&id).await?
                && state.is_none_or(|state| approval.state == state)
            {
                found.push(approval);
            }
        }
        found.sort_by(|a, b| (a.requested_at_ms, &a.id).cmp(&(b.requested_at_ms, &b.id)));
        Ok(found)
    }

    /// Decides approval `id`. Only the first decision counts: a second one, or approving
    /// or denying after the approval's expiry, fails with [`Error::AlreadyDecided`].
    pub async fn decide(
        &self,
        id: &str,
        decision: Decision,
        by: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<ApprovalRequest, Error> {
        let mut approval = self
            .get(id)
            .await?
            .ok_or_else(|| Error::UnknownApproval(id.to_string()))?;
        if approval.state != ApprovalState::Pending.as_str() {
            return Err(Error::AlreadyDecided {
                id: id.to_string(),
                state: approval.state,
            });
        }
        if decision != Decision::Expire && now_ms >= approval.expires_at_ms {
            // The expiry sweep has not run yet, but the window is closed all the same.
            return Err(Error::AlreadyDecided {
                id: id.to_string(),
                state: ApprovalState::Expired.as_str().to_string(),
            });
        }
        approval.state = decision.state().as_str().to_string();
        approval.decided_by = Some(by.to_string());
        approval.decision_reason = Some(reason.to_string());
        approval.decided_at_ms = Some(now_ms);
        // One winner across API replicas and the expiry sweep. The marker holds the whole
        // decided approval, so a crash before the record below is rewritten loses nothing:
        // the next one to try finds the marker and finishes the winner's write.
        let marker = format!("{}:decided", key(id));
        let won = self
            .memory
            .put_if_absent(&marker, &encode(&approval), Some(self.ttl))
            .await?;
        if !won {
            let decided: ApprovalRequest = match self.memory.get(&marker).await? {
                Some(bytes) => decode("approval decision", &bytes)?,
                None => return Err(Error::UnknownApproval(id.to_string())),
            };
            if self
                .get(id)
                .await?
                .is_some_and(|stored| stored.state == ApprovalState::Pending.as_str())
            {
                self.memory
                    .put(&key(id), &encode(&decided), Some(self.ttl))
                    .await?;
            }
            return Err(Error::AlreadyDecided {
                id: id.to_string(),
                state: decided.state,
            });
        }
        self.memory
            .put(&key(id), &encode(&approval), Some(self.ttl))
            .await?;
        Ok(approval)
    }
}

fn key(id: &str) -> String {
    format!("act:approval:{id}")
}
