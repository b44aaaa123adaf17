/// Errors of the memory backends.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The backend cannot be reached (connection refused, timeout, server loading). Retrying
    /// later will work; workers retry without limit and store no offsets meanwhile.
    #[error("memory backend unavailable: {0}")]
    Unavailable(String),

    /// The backend answered with an error retrying will not fix (wrong type at a key, a
    /// corrupt value, a bad configuration).
    #[error("memory backend error: {0}")]
    Backend(String),
}

impl Error {
    /// True when the backend could not be reached.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}
