//! The action system's errors.

use chatgptd_types::{Classify, ErrorKind};

/// Errors of the ledger, waits and approvals.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The memory backend failed or is unreachable.
    #[error(transparent)]
    Memory(#[from] chatgptd_memory::Error),

    /// A stored value does not read back (written by an incompatible version).
    #[error("stored {what} does not read: {message}")]
    Corrupt { what: &'static str, message: String },

    /// No approval has this id (or it expired from memory).
    #[error("no approval `{0}`")]
    UnknownApproval(String),

    /// The approval was decided already: a second decision is refused, never applied.
    #[error("approval `{id}` is already {state}")]
    AlreadyDecided { id: String, state: String },
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Memory(err) => err.kind(),
            Error::Corrupt { .. } => ErrorKind::Permanent,
            Error::UnknownApproval(_) | Error::AlreadyDecided { .. } => ErrorKind::Permanent,
        }
    }

    fn class(&self) -> &'static str {
        match self {
            Error::Memory(err) => err.class(),
            Error::Corrupt { .. } => "action_state_corrupt",
            Error::UnknownApproval(_) => "unknown_approval",
            Error::AlreadyDecided { .. } => "approval_decided",
        }
    }
}

/// Decodes a stored JSON value.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|err| Error::Corrupt {
        what,
        message: err.to_string(),
    })
}

/// Encodes a value for storage. Our own types always serialize.
pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}
