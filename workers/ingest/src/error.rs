/// Errors building the gateway. Request-time failures are HTTP answers, not errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A source's `secret_env` names an environment variable that is not set: a deployment
    /// mistake, caught at start rather than as a stream of refused webhooks.
    #[error(
        "ingest.{source_name}.secret_env names the environment variable {env}, which is not set \
         (or is empty); set it (or clear secret_env, and set allow_unsigned = true to accept \
         unsigned webhooks)"
    )]
    MissingSecret {
        source_name: &'static str,
        env: String,
    },

    /// The configuration is inconsistent.
    #[error("invalid ingest configuration: {0}")]
    Config(String),

    /// The gateway's producer could not be created.
    #[error("creating the gateway's producer: {0}")]
    Producer(#[from] chatgptd_runtime::Error),
}
