//! Metric names of the model client. Labels are bounded: `model` comes from configuration
//! and code, the others from fixed sets; never ids or error text.

/// Chat calls, by `model` and `outcome` (`ok`, `cached`, or the error's class).
pub const REQUESTS: &str = "chatgptd_model_requests_total";

/// HTTP attempts, by `model` and `status` (`2xx`, `408`, `409`, `429`, `4xx`, `5xx`,
/// `timeout`, `connect`, `error`).
pub const ATTEMPTS: &str = "chatgptd_model_attempts_total";

/// Tokens reported by the provider, by `model` and `kind` (`prompt`, `completion`, `cached`,
/// `reasoning`).
pub const TOKENS: &str = "chatgptd_model_tokens_total";

/// 429 replies, by `model` and `limit` (`requests`, `tokens`, `quota`, `unknown`).
pub const RATE_LIMITED: &str = "chatgptd_model_rate_limited_total";

/// Seconds a call waited on the concurrency cap and the RPM/TPM limiter, by `model`.
pub const LIMITER_WAIT_SECONDS: &str = "chatgptd_model_limiter_wait_seconds";

/// Seconds one HTTP attempt took, by `model`.
pub const LATENCY_SECONDS: &str = "chatgptd_model_latency_seconds";

/// Estimated cost in millionths of a USD (counters are integers), by `model`, from the
/// configured price table.
pub const COST_MICRO_USD: &str = "chatgptd_model_cost_micro_usd_total";

/// Result cache lookups, by `model` and `result` (`hit`, `miss`).
pub const CACHE: &str = "chatgptd_model_cache_total";

/// Retries, by `model` and `reason` (`rate_limited`, `server`, `timeout`, `connect`).
pub const RETRIES: &str = "chatgptd_model_retries_total";

/// Repair attempts after a reply that did not match its schema, by `model`.
pub const REPAIRS: &str = "chatgptd_model_repairs_total";
