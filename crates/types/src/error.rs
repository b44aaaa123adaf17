/// Errors of the types crate: schemas, the codec and topics.yaml.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A schema file does not parse or does not resolve.
    #[error("schema {name}: {message}")]
    Schema { name: String, message: String },

    /// The bytes do not start with an Avro single-object header.
    #[error("not an Avro single-object record: {0}")]
    Framing(String),

    /// The header names a schema this build does not know.
    #[error("unknown schema fingerprint {fingerprint}")]
    UnknownSchema { fingerprint: String },

    /// The record is valid Avro but of another type than the one asked for.
    #[error("record is a {found}, expected a {expected}")]
    WrongType { found: String, expected: String },

    /// The body does not decode with the writer's schema.
    #[error("malformed {schema} body: {message}")]
    Malformed { schema: String, message: String },

    /// A value does not fit its schema (a bug in the caller, or a missing field).
    #[error("cannot encode {schema}: {message}")]
    Encode { schema: String, message: String },

    /// topics.yaml is not what it should be.
    #[error("{path}: {message}")]
    Topics { path: String, message: String },
}

impl Error {
    /// A short, bounded label for metrics and dead-letter headers.
    pub fn class(&self) -> &'static str {
        match self {
            Error::Framing(_) | Error::Malformed { .. } => "decode",
            Error::UnknownSchema { .. } | Error::WrongType { .. } => "unknown_schema",
            Error::Encode { .. } => "encode",
            Error::Schema { .. } | Error::Topics { .. } => "config",
        }
    }
}
