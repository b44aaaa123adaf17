use rdkafka::error::KafkaError;

/// Errors of the worker runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kafka client call failed.
    #[error("kafka {context}: {source}")]
    Kafka {
        context: String,
        #[source]
        source: KafkaError,
    },

    /// The topics a worker needs do not exist.
    #[error(
        "topics missing at {brokers}: {missing}. Create them with `chatgptd topics apply --brokers {brokers}`, \
         or run `chatgptd up` for the embedded stack, which creates them"
    )]
    MissingTopics { brokers: String, missing: String },

    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A secret's environment variable is not set.
    #[error(
        "{property} is configured to come from the environment variable {env}, which is not set"
    )]
    MissingSecret { property: String, env: String },

    /// Encoding or schemas.
    #[error(transparent)]
    Types(#[from] chatgptd_types::Error),

    /// The consumer's polling thread ended unexpectedly.
    #[error("consumer thread: {0}")]
    ConsumerThread(String),

    /// I/O, e.g. binding the HTTP listener.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Wraps a Kafka error with what was being done.
    pub fn kafka(context: impl Into<String>) -> impl FnOnce(KafkaError) -> Error {
        let context = context.into();
        move |source| Error::Kafka { context, source }
    }
}
