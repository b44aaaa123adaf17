//! Action ids: the same action has the same id on every replica and every redelivery.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The namespace of action ids (v5 UUIDs).
const NAMESPACE: Uuid = Uuid::from_u128(0x6368_6174_6770_7464_0000_0000_0000_00a1);

/// The id of one tool call: the `index`-th call of the `step`-th model turn of `agent`
/// answering message `message`. Approvals, audit records, claims and the messages an action
/// sends all derive from it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActionId(String);

impl ActionId {
    /// The id of call `index` of turn `step` of `agent` answering `message`.
    pub fn new(message: &str, agent: &str, step: u32, index: usize) -> Self {
        let name = format!("{message}\u{1f}{agent}\u{1f}{step}\u{1f}{index}");
        ActionId(format!(
            "act-{}",
            Uuid::new_v5(&NAMESPACE, name.as_bytes()).simple()
        ))
    }

    /// An id read back from a record or a URL.
    pub fn parse(id: &str) -> Option<Self> {
        let hex = id.strip_prefix("act-")?;
        (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| ActionId(id.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_derive_from_message_agent_and_position() {
        let id = ActionId::new("m1", "atlas", 0, 1);
        assert_eq!(id, ActionId::new("m1", "atlas", 0, 1));
        assert_ne!(id, ActionId::new("m1", "atlas", 1, 0));
        assert_ne!(id, ActionId::new("m1", "aegis", 0, 1));
        assert_ne!(id, ActionId::new("m2", "atlas", 0, 1));
        // The separator keeps ("m1", "0") and ("m", "10")-style splits apart.
        assert_ne!(
            ActionId::new("a:b", "c", 0, 0),
            ActionId::new("a", "b:c", 0, 0)
        );
        assert_eq!(ActionId::parse(id.as_str()), Some(id));
        assert_eq!(ActionId::parse("act-nothex"), None);
        assert_eq!(ActionId::parse("m1"), None);
    }
}
