//! Why a model call failed, and what a worker should do about it.

use std::time::Duration;

use chatgptd_types::{Classify, ErrorKind};

/// Errors of the model client. Every variant has a bounded [`class`](Classify::class) for
/// metrics and a [`kind`](Classify::kind) for workers.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The model declined to answer (`message.refusal`).
    #[error("the model refused: {0}")]
    Refusal(String),

    /// The reply was cut off at the completion budget (`finish_reason: length`).
    #[error("the reply was cut off at the completion token limit")]
    Length,

    /// The provider withheld the reply (`finish_reason: content_filter`).
    #[error("the reply was withheld by the provider's content filter")]
    ContentFilter,

    /// The reply did not match the requested schema, after every repair attempt.
    #[error("the reply did not match the schema after {attempts} attempts: {detail}")]
    InvalidOutput { attempts: u32, detail: String },

    /// A model kept calling a tool with arguments that do not match its schema, after every
    /// repair the caller's tool loop allowed (the model is told what is wrong each time).
    #[error("the arguments of tool {tool} were invalid after {attempts} attempts: {detail}")]
    ToolArguments {
        tool: String,
        attempts: u32,
        detail: String,
    },

    /// The account's quota or credit is spent (429 `insufficient_quota`); not retried.
    #[error("the provider's quota is exhausted: {0}")]
    InsufficientQuota(String),

    /// Still rate limited (429) when the client's attempts ran out: the worker waits (for
    /// `retry_after`, when the provider said) and tries again, spending no attempt.
    #[error("rate limited after {attempts} attempts: {message}")]
    RateLimited {
        attempts: u32,
        message: String,
        retry_after: Option<Duration>,
    },

    /// A 4xx the request itself causes (400 bad request, 401, 403, 404 unknown model, ...).
    #[error("HTTP {status}: {message}")]
    Http4xx { status: u16, message: String },

    /// A 5xx (or 409 conflict) still failing when the attempts ran out.
    #[error("HTTP {status} after {attempts} attempts: {message}")]
    ServerError {
        status: u16,
        attempts: u32,
        message: String,
    },

    /// No reply within `request_timeout` (or a 408), on every attempt.
    #[error("timed out after {attempts} attempts")]
    Timeout { attempts: u32 },

    /// A 2xx whose body is not a chat completion.
    #[error("malformed reply: {0}")]
    Malformed(String),

    /// The provider (or the shared limiter's Redis) cannot be reached.
    #[error("model provider unavailable: {0}")]
    Unavailable(String),

    /// The result cache's memory backend failed.
    #[error("model cache: {0}")]
    Cache(#[source] chatgptd_memory::Error),

    /// The configuration (or a request's schema) cannot work.
    #[error("model configuration: {0}")]
    Config(String),
}

impl Classify for Error {
    fn class(&self) -> &'static str {
        match self {
            Error::Refusal(_) => "model_refusal",
            Error::Length => "model_length",
            Error::ContentFilter => "model_content_filter",
            Error::InvalidOutput { .. } => "model_invalid_output",
            Error::ToolArguments { .. } => "model_tool_arguments",
            Error::InsufficientQuota(_) => "model_quota",
            Error::RateLimited { .. } => "model_rate_limited",
            Error::Http4xx { .. } => "model_http_4xx",
            Error::ServerError { status: 409, .. } => "model_conflict",
            Error::ServerError { .. } => "model_5xx",
            Error::Timeout { .. } => "model_timeout",
            Error::Malformed(_) => "model_malformed",
            Error::Unavailable(_) => "model_unavailable",
            Error::Cache(err) if err.is_unavailable() => "model_cache_unavailable",
            Error::Cache(_) => "model_cache",
            Error::Config(_) => "model_config",
        }
    }

    /// What a worker should do with the record:
    ///
    /// - `Permanent`: refusal, `length`, content filter, invalid output or tool arguments after
    ///   repairs, other 4xx, configuration. The same prompt gets the same answer: dead-letter it.
    /// - `Retryable`: 5xx after the client's own retries, timeout, malformed reply. The
    ///   provider is struggling; the worker's bounded retries may get through.
    /// - `Unavailable`: a rate limit (429), refused connection, `insufficient_quota`, the
    ///   cache backend or the shared limiter down. Nothing is wrong with the record: a limit
    ///   is a queue, not a failure, so the worker waits (honouring `retry_after`) instead of
    ///   spending attempts and dead-lettering healthy records.
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Refusal(_)
            | Error::Length
            | Error::ContentFilter
            | Error::InvalidOutput { .. }
            | Error::ToolArguments { .. }
            | Error::Http4xx { .. }
            | Error::Config(_) => ErrorKind::Permanent,
            Error::ServerError { .. } | Error::Timeout { .. } | Error::Malformed(_) => {
                ErrorKind::Retryable
            }
            Error::RateLimited { .. } | Error::InsufficientQuota(_) | Error::Unavailable(_) => {
                ErrorKind::Unavailable
            }
            Error::Cache(err) => err.kind(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl Error {
    /// The same error, counting `attempts` when it is one that retries exhaust, and carrying
    /// the provider's last `retry_after` for a rate limit.
    pub(crate) fn after_attempts(self, attempts: u32, asked: Option<Duration>) -> Error {
        match self {
            Error::RateLimited {
                message,
                retry_after,
                ..
            } => Error::RateLimited {
                attempts,
                message,
                retry_after: asked.or(retry_after),
            },
            Error::ServerError {
                status, message, ..
            } => Error::ServerError {
                status,
                attempts,
                message,
            },
            Error::Timeout { .. } => Error::Timeout { attempts },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_limits_and_outages_wait_instead_of_dead_lettering() {
        assert_eq!(
            Error::InsufficientQuota("x".into()).kind(),
            ErrorKind::Unavailable
        );
        assert_eq!(
            Error::Unavailable("refused".into()).kind(),
            ErrorKind::Unavailable
        );
        let limited = Error::RateLimited {
            attempts: 4,
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(60)),
        };
        assert_eq!(limited.kind(), ErrorKind::Unavailable);
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(60)));
        let down = Error::Cache(chatgptd_memory::Error::Unavailable("down".into()));
        assert_eq!(down.kind(), ErrorKind::Unavailable);
        assert_eq!(down.class(), "model_cache_unavailable");
    }

    #[test]
    fn content_problems_are_permanent_and_provider_trouble_retries() {
        assert_eq!(Error::Length.kind(), ErrorKind::Permanent);
        let arguments = Error::ToolArguments {
            tool: "search_memory".into(),
            attempts: 3,
            detail: "at /: \"query\" is a required property".into(),
        };
        assert_eq!(arguments.kind(), ErrorKind::Permanent);
        assert_eq!(arguments.class(), "model_tool_arguments");
        assert_eq!(Error::Refusal("no".into()).class(), "model_refusal");
        let server = Error::ServerError {
            status: 503,
            attempts: 4,
            message: String::new(),
        };
        assert_eq!(server.kind(), ErrorKind::Retryable);
        assert_eq!(
            Error::Timeout { attempts: 1 }
                .after_attempts(3, None)
                .to_string(),
            "timed out after 3 attempts"
        );
    }
}
