use chatgptd_types::{Classify, ErrorKind};

/// Errors of the memory backends.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The backend cannot be reached (connection refused, timeout, server loading). Retrying
    /// later will work; workers retry without limit and store no offsets meanwhile.
    #[error("memory backend unavailable: {0}")]
    Unavailable(String),

    /// The backend answered with an error (wrong type at a key, a corrupt value, a script
    /// or SQL error). Usually retrying will not fix it, but it says nothing certain about
    /// the record either: workers retry it a bounded number of times, then dead-letter the
    /// record with this reason, where it can be replayed once the store is mended.
    #[error("memory backend error: {0}")]
    Backend(String),
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Unavailable(_) => ErrorKind::Unavailable,
            // Bounded, not endless: a corrupt value must not stall its partition forever,
            // and not permanent: one failed script says little about the record.
            Error::Backend(_) => ErrorKind::Retryable,
        }
    }

    fn class(&self) -> &'static str {
        match self {
            Error::Unavailable(_) => "memory_unavailable",
            Error::Backend(_) => "memory_error",
        }
    }
}

impl Error {
    /// True when the backend could not be reached.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}
