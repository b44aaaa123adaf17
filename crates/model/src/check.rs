//! `chatgptd model check`: what one tiny request tells about the configured provider.

use std::fmt;
use std::time::{Duration, Instant};

use crate::client::{ModelClient, Provider};
use crate::error::Error;
use crate::offline;
use crate::openai::headers::RateLimitHeaders;
use crate::options::LimitOptions;
use crate::request::{ChatMessage, ChatRequest};
use crate::tokens::estimate_prompt_tokens;

/// The completion budget of the check's tiny request.
const CHECK_MAX_TOKENS: u32 = 16;

/// The outcome of [`ModelClient::check`](crate::ModelClient::check).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// `openai` or `offline`.
    pub provider: String,
    /// The model that answered.
    pub model: String,
    /// The endpoint; `None` for the offline model.
    pub base_url: Option<String>,
    /// Whether the check used the network (false for the offline model).
    pub network: bool,
    /// How long the request took.
    pub latency: Duration,
    /// The provider's request id.
    pub request_id: Option<String>,
    /// `finish_reason` of the reply.
    pub finish_reason: String,
    /// The limits configured for the model.
    pub configured_limits: LimitOptions,
    /// Whether the limiter is shared through Redis.
    pub shared_limiter: bool,
    /// `x-ratelimit-limit-requests`.
    pub limit_requests: Option<u64>,
    /// `x-ratelimit-limit-tokens`.
    pub limit_tokens: Option<u64>,
    /// `x-ratelimit-remaining-requests`.
    pub remaining_requests: Option<u64>,
    /// `x-ratelimit-remaining-tokens`.
    pub remaining_tokens: Option<u64>,
    /// `x-ratelimit-reset-requests`.
    pub reset_requests: Option<Duration>,
    /// `x-ratelimit-reset-tokens`.
    pub reset_tokens: Option<Duration>,
}

impl CheckReport {
    /// Copies the advertised limits from a reply's headers.
    pub(crate) fn with_headers(mut self, headers: &RateLimitHeaders) -> Self {
        self.limit_requests = headers.limit_requests;
        self.limit_tokens = headers.limit_tokens;
        self.remaining_requests = headers.remaining_requests;
        self.remaining_tokens = headers.remaining_tokens;
        self.reset_requests = headers.reset_requests;
        self.reset_tokens = headers.reset_tokens;
        self
    }

    /// Whether the provider advertises lower limits than the configured ones (calls will
    /// then meet 429s the limiter could have avoided).
    pub fn limits_above_advertised(&self) -> bool {
        let above = |configured: u32, advertised: Option<u64>| {
            configured > 0
                && advertised.is_some_and(|advertised| u64::from(configured) > advertised)
        };
        above(
            self.configured_limits.requests_per_minute,
            self.limit_requests,
        ) || above(self.configured_limits.tokens_per_minute, self.limit_tokens)
    }
}

impl ModelClient {
    /// Sends one tiny request (through the limiter, not retried, not cached) and reports
    /// the provider, latency, request id and the limits it advertises. The offline model
    /// answers locally and says so.
    pub async fn check(&self) -> Result<CheckReport, Error> {
        let options = &self.inner.options;
        let model = match &self.inner.provider {
            Provider::Offline => offline::MODEL.to_string(),
            Provider::OpenAi(_) => options.model.clone(),
        };
        let configured_limits = *options.limits_for(&model);
        let messages = [ChatMessage::user("Reply with the single word OK.")];
        let started = Instant::now();
        let report = CheckReport {
            provider: self.provider_name().to_string(),
            model: model.clone(),
            base_url: None,
            network: false,
            latency: started.elapsed(),
            request_id: None,
            finish_reason: "stop".to_string(),
            configured_limits,
            shared_limiter: self.inner.limiters.is_shared(),
            limit_requests: None,
            limit_tokens: None,
            remaining_requests: None,
            remaining_tokens: None,
            reset_requests: None,
            reset_tokens: None,
        };
        let provider = match &self.inner.provider {
            Provider::OpenAi(provider) => provider,
            Provider::Offline => {
                let request = ChatRequest::new("check", messages.to_vec());
                let answer = offline::answer(&request);
                return Ok(CheckReport {
                    request_id: Some(answer.request_id),
                    latency: started.elapsed(),
                    ..report
                });
            }
        };
        let request = ChatRequest::new("check", messages.to_vec());
        let body = self.wire_request(&model, &messages, &request, CHECK_MAX_TOKENS);
        let reserved = estimate_prompt_tokens(&messages) + u64::from(CHECK_MAX_TOKENS);
        let limiter = self.inner.limiters.for_model(&model);
        let permit = limiter.acquire(reserved).await?;
        let started = Instant::now();
        let outcome = provider.send(&body).await;
        drop(permit);
        let served = outcome.map_err(|failed| failed.error)?;
        let finish_reason = served
            .response
            .choices
            .first()
            .and_then(|choice| choice.finish_reason.clone())
            .unwrap_or_else(|| "stop".to_string());
        Ok(CheckReport {
            model: served.response.model.clone().unwrap_or(model),
            base_url: Some(provider.base_url().to_string()),
            network: true,
            latency: started.elapsed(),
            request_id: served.request_id.clone(),
            finish_reason,
            ..report
        }
        .with_headers(&served.limits))
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let number = |value: Option<u64>| value.map_or("-".to_string(), |v| v.to_string());
        let duration =
            |value: Option<Duration>| value.map_or("-".to_string(), |v| format!("{v:?}"));
        writeln!(f, "provider:   {}", self.provider)?;
        writeln!(f, "model:      {}", self.model)?;
        match &self.base_url {
            Some(url) => writeln!(f, "endpoint:   {url}")?,
            None => writeln!(f, "endpoint:   none (offline model, no network used)")?,
        }
        writeln!(f, "latency:    {:?}", self.latency)?;
        writeln!(
            f,
            "request id: {}",
            self.request_id.as_deref().unwrap_or("-")
        )?;
        writeln!(f, "finish:     {}", self.finish_reason)?;
        let limiter = if self.shared_limiter {
            "shared (redis)"
        } else {
            "in-process"
        };
        writeln!(
            f,
            "configured: {} requests, {} tokens per window, {} concurrent ({limiter})",
            self.configured_limits.requests_per_minute,
            self.configured_limits.tokens_per_minute,
            self.configured_limits.max_concurrency,
        )?;
        if self.network {
            writeln!(
                f,
                "advertised: requests {} (remaining {}, reset {}), tokens {} (remaining {}, reset {})",
                number(self.limit_requests),
                number(self.remaining_requests),
                duration(self.reset_requests),
                number(self.limit_tokens),
                number(self.remaining_tokens),
                duration(self.reset_tokens),
            )?;
        }
        if self.limits_above_advertised() {
            writeln!(
                f,
                "warning:    configured limits are above what the provider advertises"
            )?;
        }
        Ok(())
    }
}
