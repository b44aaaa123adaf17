//! One completion against the `openai` provider: attempts through the limiter, retries with
//! backoff, and the accounting of what came back.

use std::time::Duration;

use chatgptd_types::waiting;

use crate::error::Error;
use crate::limiter::ModelLimiter;
use crate::metric;
use crate::openai::wire::WireRequest;
use crate::openai::{Failed, OpenAiProvider, Served};
use crate::options::Price;
use crate::request::Usage;
use crate::retry::Backoff;

/// How attempts are made and spaced.
#[derive(Debug, Clone, Copy)]
pub struct Attempts {
    pub max: u32,
    pub backoff: Backoff,
}

/// Sends `body` until it is served, a failure is final, or the attempts run out. Each attempt
/// takes a permit and `reserved` tokens from `limiter`; the retry wait holds neither, so other
/// keys keep flowing meanwhile.
pub async fn send_with_retries(
    provider: &OpenAiProvider,
    limiter: &ModelLimiter,
    model: &str,
    body: &WireRequest<'_>,
    reserved: u64,
    attempts: Attempts,
) -> Result<Served, Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        // Queueing for the limiter is waiting, not working (see `chatgptd_types::waiting`).
        let permit = waiting::waiting(limiter.acquire(reserved)).await?;
        let outcome = provider.send(body).await;
        drop(permit);
        match outcome {
            Ok(served) => {
                record_attempt(model, "2xx", served.latency);
                limiter.adapt(&served.limits, reserved, attempts.backoff.retry_after_cap());
                let used = served
                    .response
                    .usage
                    .as_ref()
                    .map_or(0, |usage| usage.total_tokens);
                if let Err(err) = limiter.settle(reserved, used).await {
                    // The reply is paid for: losing it over bookkeeping would pay again.
                    tracing::warn!(%model, %err, "could not settle token usage with the limiter");
                }
                return Ok(served);
            }
            Err(failed) => {
                record_failure(model, &failed);
                if let Some(limits) = &failed.limits {
                    // A 429 that says the limit is spent but not when it resets (Azure,
                    // LiteLLM) still says when to come back: its retry-after.
                    let limits = limits.or_reset(failed.retry_after);
                    limiter.adapt(&limits, reserved, attempts.backoff.retry_after_cap());
                }
                if !failed.retryable || attempt >= attempts.max {
                    return Err(failed.error.after_attempts(attempt, failed.retry_after));
                }
                let delay = attempts.backoff.delay(attempt, failed.retry_after);
                metrics::counter!(metric::RETRIES, "model" => model.to_string(), "reason" => retry_reason(&failed))
                    .increment(1);
                tracing::debug!(%model, attempt, ?delay, error = %failed.error, "retrying model call");
                waiting::sleep(delay).await;
            }
        }
    }
}

fn record_attempt(model: &str, status: &'static str, latency: Duration) {
    metrics::counter!(metric::ATTEMPTS, "model" => model.to_string(), "status" => status)
        .increment(1);
    metrics::histogram!(metric::LATENCY_SECONDS, "model" => model.to_string())
        .record(latency.as_secs_f64());
}

fn record_failure(model: &str, failed: &Failed) {
    record_attempt(model, failed.status_label, failed.latency);
    if let Some(limit) = failed.limit_kind {
        metrics::counter!(metric::RATE_LIMITED, "model" => model.to_string(), "limit" => limit)
            .increment(1);
    }
}

fn retry_reason(failed: &Failed) -> &'static str {
    match failed.error {
        Error::RateLimited { .. } => "rate_limited",
        Error::Timeout { .. } => "timeout",
        Error::Unavailable(_) => "connect",
        _ => "server",
    }
}

/// The usage of a served reply.
pub fn usage_of(served: &Served) -> Usage {
    let Some(usage) = &served.response.usage else {
        return Usage::default();
    };
    Usage {
        prompt: usage.prompt_tokens,
        completion: usage.completion_tokens,
        total: usage
            .total_tokens
            .max(usage.prompt_tokens + usage.completion_tokens),
        cached: usage
            .prompt_tokens_details
            .as_ref()
            .and_then(|details| details.cached_tokens)
            .unwrap_or(0),
        reasoning: usage
            .completion_tokens_details
            .as_ref()
            .and_then(|details| details.reasoning_tokens)
            .unwrap_or(0),
    }
}

/// Counts tokens by kind and the estimated cost.
pub fn account(model: &str, usage: &Usage, price: Option<&Price>) {
    for (kind, tokens) in [
        ("prompt", usage.prompt),
        ("completion", usage.completion),
        ("cached", usage.cached),
        ("reasoning", usage.reasoning),
    ] {
        metrics::counter!(metric::TOKENS, "model" => model.to_string(), "kind" => kind)
            .increment(tokens);
    }
    if let Some(price) = price {
        metrics::counter!(metric::COST_MICRO_USD, "model" => model.to_string())
            .increment(cost_micro_usd(usage, price));
    }
}

/// Cost in millionths of a USD: with prices per million tokens, tokens × price is exactly that.
pub fn cost_micro_usd(usage: &Usage, price: &Price) -> u64 {
    let cached = usage.cached.min(usage.prompt);
    let uncached = usage.prompt - cached;
    let micro = uncached as f64 * price.input_per_million
        + cached as f64 * price.cached_input_per_million
        + usage.completion as f64 * price.output_per_million;
    micro.round().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_counts_cached_prompt_tokens_at_their_price() {
        let usage = Usage {
            prompt: 1000,
            completion: 500,
            total: 1500,
            cached: 400,
            reasoning: 0,
        };
        let price = Price {
            input_per_million: 0.15,
            output_per_million: 0.60,
            cached_input_per_million: 0.075,
        };
        // 600 × 0.15 + 400 × 0.075 + 500 × 0.60 = 90 + 30 + 300 µUSD.
        assert_eq!(cost_micro_usd(&usage, &price), 420);
    }
}
