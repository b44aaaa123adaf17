//! The model client's configuration: one struct, every layer (timeout, retries, limits,
//! cache, prices) configured from it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How chatgptd talks to a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelOptions {
    /// Which model answers. `auto` (the default) uses `openai` when a base URL or an API key
    /// is configured, here or in the environment (`OPENAI_BASE_URL`, the variable named by
    /// `api_key_env`), and `offline` otherwise. `openai` is any OpenAI-compatible endpoint
    /// (OpenAI, Azure OpenAI, vLLM, Ollama, llama.cpp server, LiteLLM). `offline` is a
    /// deterministic local model that uses no network, for the embedded stack and demos.
    pub provider: ProviderKind,

    /// The API base URL, up to and including the version (`https://api.openai.com/v1`,
    /// `http://localhost:11434/v1` for Ollama, `https://NAME.openai.azure.com/openai/v1`).
    /// Empty means `OPENAI_BASE_URL` from the environment, then the OpenAI API. Requests go to
    /// `{base_url}/chat/completions`.
    pub base_url: String,

    /// The environment variable holding the API key, sent as `Authorization: Bearer <key>`.
    /// The key itself is never part of the configuration and never logged. When the variable
    /// is unset or empty, no `Authorization` header is sent (local servers need none).
    pub api_key_env: String,

    /// The model (or Azure deployment) used when a request names none.
    pub model: String,

    /// Extra HTTP headers sent with every request (non-secret ones, e.g.
    /// `OpenAI-Organization`, `OpenAI-Project`).
    pub extra_headers: BTreeMap<String, String>,

    /// Secret HTTP headers: header name to the environment variable holding its value, e.g.
    /// `api-key = "AZURE_OPENAI_API_KEY"` for Azure. Values are never logged.
    pub secret_headers: BTreeMap<String, String>,

    /// Query parameters added to every request, e.g. `api-version` for Azure deployments
    /// that predate the v1 API.
    pub extra_query: BTreeMap<String, String>,

    /// How long one HTTP attempt may take, from connecting to the last byte of the reply.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,

    /// Which failures are retried, how often, and how far apart.
    pub retry: RetryOptions,

    /// Limits of models not listed in `limits`.
    pub default_limits: LimitOptions,

    /// Limits per model (or Azure deployment) name, as the provider enforces them.
    pub limits: BTreeMap<String, LimitOptions>,

    /// The window the `*_per_minute` limits are counted over: a minute, as providers count.
    /// The limiter keeps every sliding window of this length within the limits.
    #[serde(with = "humantime_serde")]
    pub limit_window: Duration,

    /// Redis URL of the shared limiter. When set, the limiter's buckets live in Redis, so all
    /// replicas together stay within one provider quota. Empty means an in-process limiter
    /// per replica (right for a single replica, or a local model).
    pub shared_limits_redis_url: String,

    /// The environment variable holding the shared limiter's Redis password, if any.
    pub shared_limits_redis_password_env: String,

    /// How long a reply is kept in the memory backend, so a redelivered record or a retry
    /// after a crash does not pay for the same call twice. `0s` disables the cache.
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,

    /// How many times a reply that does not match the requested JSON schema is asked for
    /// again (quoting the validation error) before the call fails permanently.
    pub repair_attempts: u32,

    /// The completion budget sent when a request sets none. It bounds the cost of a call and
    /// is what the token limiter reserves for the reply.
    pub default_max_completion_tokens: u32,

    /// The request field that carries the completion budget: `max_completion_tokens` (OpenAI,
    /// Azure, recent vLLM) or `max_tokens` for servers that predate it.
    pub max_tokens_parameter: MaxTokensParameter,

    /// Prices per model in USD per million tokens, for the estimated-cost metric. Models not
    /// listed count no cost.
    pub prices: BTreeMap<String, Price>,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            provider: ProviderKind::Auto,
            base_url: String::new(),
            api_key_env: default_api_key_env(),
            model: "gpt-4o-mini".to_string(),
            extra_headers: BTreeMap::new(),
            secret_headers: BTreeMap::new(),
            extra_query: BTreeMap::new(),
            request_timeout: Duration::from_secs(60),
            retry: RetryOptions::default(),
            default_limits: LimitOptions::default(),
            limits: BTreeMap::new(),
            limit_window: Duration::from_secs(60),
            shared_limits_redis_url: String::new(),
            shared_limits_redis_password_env: String::new(),
            cache_ttl: Duration::from_secs(24 * 3600),
            repair_attempts: 2,
            default_max_completion_tokens: 1024,
            max_tokens_parameter: MaxTokensParameter::MaxCompletionTokens,
            prices: BTreeMap::new(),
        }
    }
}

/// The API key variable of the OpenAI SDKs.
pub(crate) fn default_api_key_env() -> String {
    "OPENAI_API_KEY".to_string()
}

impl ModelOptions {
    /// The limits of `model`: its own entry, or `default_limits`.
    pub fn limits_for(&self, model: &str) -> &LimitOptions {
        self.limits.get(model).unwrap_or(&self.default_limits)
    }

    /// Rejects settings that cannot work, with a message naming the field.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.limit_window.is_zero() {
            return Err("limit_window must be longer than 0s".into());
        }
        if self.model.trim().is_empty() {
            return Err("model must name a model".into());
        }
        if self.retry.max_attempts == 0 {
            return Err("retry.max_attempts must be at least 1".into());
        }
        if self.request_timeout.is_zero() {
            return Err("request_timeout must be longer than 0s".into());
        }
        let all_limits = std::iter::once(("default_limits", &self.default_limits))
            .chain(self.limits.iter().map(|(model, l)| (model.as_str(), l)));
        for (name, limits) in all_limits {
            if !(limits.burst_fraction > 0.0 && limits.burst_fraction <= 1.0) {
                return Err(format!("{name}: burst_fraction must be in (0, 1]"));
            }
        }
        Ok(())
    }
}

/// Which model answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// `openai` when a base URL or API key is configured, else `offline`.
    Auto,
    /// Any OpenAI-compatible endpoint.
    #[serde(rename = "openai")]
    OpenAi,
    /// The deterministic local model.
    Offline,
}

/// The request field that carries the completion budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensParameter {
    /// `max_completion_tokens`, the current OpenAI name.
    MaxCompletionTokens,
    /// `max_tokens`, for servers that predate `max_completion_tokens`.
    MaxTokens,
}

/// Which failures are retried, how often, and how far apart.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryOptions {
    /// Attempts per call, the first included. 408, 409, 429 (except `insufficient_quota`),
    /// 5xx, timeouts and refused connections are retried; other errors are not.
    pub max_attempts: u32,

    /// The delay before the second attempt; it doubles per attempt, with jitter.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,

    /// The longest delay between attempts (before a provider's `retry-after`).
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,

    /// The longest `retry-after` (and `x-ratelimit-reset-*` pause) honoured; a provider
    /// asking for longer waits this long.
    #[serde(with = "humantime_serde")]
    pub retry_after_cap: Duration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions {
            max_attempts: 4,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(20),
            retry_after_cap: Duration::from_secs(60),
        }
    }
}

/// A provider's limits for one model (or deployment).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitOptions {
    /// Requests per `limit_window` (a minute by default). 0 means no limit.
    pub requests_per_minute: u32,

    /// Tokens per `limit_window`, counted as providers count them: the prompt plus the
    /// completion budget. 0 means no limit.
    pub tokens_per_minute: u32,

    /// Calls in flight at once. 0 means no cap.
    pub max_concurrency: u32,

    /// The share of a limit that may be spent at once after a quiet period. The rest is
    /// paced evenly, so that no sliding window ever exceeds the limit: a burst of 2% leaves
    /// a steady rate of 98%. The token bucket's burst is raised to fit one call with the
    /// default completion budget (up to half the limit).
    pub burst_fraction: f64,
}

impl Default for LimitOptions {
    fn default() -> Self {
        // OpenAI's first usage tier for small models.
        LimitOptions {
            requests_per_minute: 500,
            tokens_per_minute: 200_000,
            max_concurrency: 16,
            burst_fraction: 0.02,
        }
    }
}

/// A model's price in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Price {
    /// Prompt tokens not served from the provider's prompt cache.
    pub input_per_million: f64,
    /// Completion tokens (reasoning tokens included).
    pub output_per_million: f64,
    /// Prompt tokens served from the provider's prompt cache.
    pub cached_input_per_million: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserializes_with_defaults_and_rejects_unknown_fields() {
        let options: ModelOptions = serde_json::from_value(serde_json::json!({
            "provider": "openai",
            "limit_window": "2s",
            "limits": {"gpt-4o": {"requests_per_minute": 10}},
        }))
        .unwrap();
        assert_eq!(options.provider, ProviderKind::OpenAi);
        assert_eq!(options.limit_window, Duration::from_secs(2));
        assert_eq!(options.limits_for("gpt-4o").requests_per_minute, 10);
        assert_eq!(options.limits_for("gpt-4o").tokens_per_minute, 200_000);
        assert_eq!(options.limits_for("other").requests_per_minute, 500);
        assert_eq!(options.api_key_env, "OPENAI_API_KEY");

        let unknown = serde_json::from_value::<ModelOptions>(serde_json::json!({"api_key": "x"}));
        assert!(unknown.is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let options = ModelOptions {
            limit_window: Duration::ZERO,
            ..ModelOptions::default()
        };
        assert!(options.validate().unwrap_err().contains("limit_window"));
    }
}
