//! What every test needs: options pointing at a fake, a client holding a test key.

use std::time::Duration;

use chatgptd_model::{LimitOptions, ModelClient, ModelOptions, ProviderKind, RetryOptions};
use chatgptd_testkit::fake_openai::{FakeOpenAi, LoggedRequest};
use chatgptd_types::Secrets;
use serde_json::{Value, json};

/// The API key the tests' secrets hold.
pub const KEY: &str = "sk-test-4f9c2a7e1b";

/// Secrets holding [`KEY`] as `OPENAI_API_KEY`, and nothing else.
pub fn secrets() -> Secrets {
    Secrets::from_map([("OPENAI_API_KEY", KEY)])
}

/// No secrets at all (and not the environment's).
pub fn no_secrets() -> Secrets {
    Secrets::from_map::<&str, &str>([])
}

/// No limits, quick retries, a short timeout: tests opt into what they exercise.
pub fn options(fake: &FakeOpenAi) -> ModelOptions {
    ModelOptions {
        provider: ProviderKind::OpenAi,
        base_url: fake.base_url(),
        model: "gpt-test".to_string(),
        request_timeout: Duration::from_secs(5),
        retry: RetryOptions {
            max_attempts: 3,
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(100),
            retry_after_cap: Duration::from_secs(5),
        },
        default_limits: LimitOptions {
            requests_per_minute: 0,
            tokens_per_minute: 0,
            max_concurrency: 0,
            burst_fraction: 0.02,
        },
        cache_ttl: Duration::ZERO,
        ..ModelOptions::default()
    }
}

/// A client for `options` with [`KEY`] in its secrets and no cache.
pub async fn client(options: &ModelOptions) -> ModelClient {
    ModelClient::new(options, None, &secrets())
        .await
        .expect("model client")
}

/// The schema of a ticket triage.
pub fn triage_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "category": {"type": "string", "enum": ["bug", "billing", "access", "other"]},
            "priority": {"type": "string", "enum": ["low", "medium", "high", "critical"]},
            "summary": {"type": "string"},
            "labels": {"type": "array", "items": {"type": "string"}},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1}
        },
        "required": ["category", "priority", "summary", "labels", "confidence"],
        "additionalProperties": false
    })
}

/// The statuses of the fake's logged requests, in arrival order.
pub fn statuses(log: &[LoggedRequest]) -> Vec<u16> {
    log.iter().map(|request| request.status).collect()
}
