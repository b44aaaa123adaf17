/// Errors of the write-back worker's set-up. Processing errors are the runtime's
/// [`ProcessError`](chatgptd_runtime::ProcessError), classified where they happen.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot work.
    #[error("writeback configuration: {0}")]
    Config(String),

    /// The HTTP client could not be built (TLS set-up).
    #[error("building the HTTP client for {source_name}: {message}")]
    HttpClient {
        source_name: &'static str,
        message: String,
    },

    /// The consumer runtime refused its options.
    #[error(transparent)]
    Runtime(#[from] chatgptd_runtime::Error),
}
