/// Errors of the search index.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The query does not parse; `position` is the byte offset of the problem.
    #[error("query syntax error at position {position}: {message}")]
    Syntax { position: usize, message: String },

    /// The query parses but cannot run (an unknown field, a bad value, a bad filter).
    #[error("invalid query: {0}")]
    Query(String),

    /// The index failed (disk, corruption, a lock held by another writer).
    #[error("index: {0}")]
    Index(String),

    /// A record arrived for a partition whose shard is not open on this member.
    #[error("no shard open for partition {0}")]
    NotOpen(i32),
}

impl Error {
    /// True when the caller's input is at fault (HTTP 400), not the index.
    pub fn is_bad_request(&self) -> bool {
        matches!(self, Error::Syntax { .. } | Error::Query(_))
    }
}

impl From<tantivy::TantivyError> for Error {
    fn from(err: tantivy::TantivyError) -> Self {
        Error::Index(err.to_string())
    }
}
