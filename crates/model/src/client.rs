//! [`ModelClient`]: the one way workers call a model.

use chatgptd_memory::Memory;
use chatgptd_types::records::Provenance;
use chatgptd_types::{Classify, Secrets};
use std::sync::Arc;

use crate::cache::{CacheKeyParts, ResultCache};
use crate::call::{self, Attempts};
use crate::error::Error;
use crate::limiter::Limiters;
use crate::metric;
use crate::offline;
use crate::openai::OpenAiProvider;
use crate::openai::wire::{JsonSchemaFormat, ResponseFormat, WireRequest, WireTool};
use crate::options::{MaxTokensParameter, ModelOptions};
use crate::request::{ChatMessage, ChatReply, ChatRequest, FinishReason, Usage};
use crate::resolve::{Resolved, resolve};
use crate::retry::Backoff;
use crate::tokens::{estimate_prompt_tokens, estimate_text_tokens, estimate_tools_tokens};
use crate::tool::ToolCall;
use crate::validate::{Validators, parse_and_validate};

/// Calls models. Cheap to clone: clones share limiters, connections and caches.
#[derive(Debug, Clone)]
pub struct ModelClient {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) options: ModelOptions,
    pub(crate) provider: Provider,
    pub(crate) limiters: Limiters,
    cache: Option<ResultCache>,
    validators: Validators,
    attempts: Attempts,
}

#[derive(Debug)]
pub(crate) enum Provider {
    OpenAi(Box<OpenAiProvider>),
    Offline,
}

/// One answer of a provider, before the reply checks.
struct Completion {
    content: String,
    refusal: Option<String>,
    tool_calls: Vec<ToolCall>,
    finish_reason: String,
    usage: Usage,
    request_id: Option<String>,
    model: String,
    system_fingerprint: Option<String>,
}

impl ModelClient {
    /// A client for `options`. The API key, the base URL (`OPENAI_BASE_URL`), secret headers
    /// and the shared limits' Redis password are looked up in `secrets` (the process
    /// environment in production, a map in tests). `cache` is the memory backend of the
    /// result cache (`None`: no cache).
    pub async fn new(
        options: &ModelOptions,
        cache: Option<Arc<dyn Memory>>,
        secrets: &Secrets,
    ) -> Result<Self, Error> {
        options.validate().map_err(Error::Config)?;
        let (provider, endpoint) = match resolve(options, secrets)? {
            Resolved::OpenAi(endpoint) => (
                Provider::OpenAi(Box::new(OpenAiProvider::new(&endpoint)?)),
                endpoint.base_url.clone(),
            ),
            Resolved::Offline => (Provider::Offline, "offline".to_string()),
        };
        let password_env = options.shared_limits_redis_password_env.trim();
        let redis_password = if password_env.is_empty() {
            None
        } else {
            secrets.get(password_env)
        };
        let limiters = Limiters::new(options, &endpoint, redis_password)?;
        let cache = cache
            .filter(|_| !options.cache_ttl.is_zero())
            .map(|memory| ResultCache::new(memory, options.cache_ttl));
        tracing::info!(
            provider = provider_name(&provider),
            model = %options.model,
            shared_limits = limiters.is_shared(),
            cache = cache.is_some(),
            "model client ready"
        );
        Ok(ModelClient {
            inner: Arc::new(Inner {
                options: options.clone(),
                provider,
                limiters,
                cache,
                validators: Validators::default(),
                attempts: Attempts {
                    max: options.retry.max_attempts.max(1),
                    backoff: Backoff::new(&options.retry),
                },
            }),
        })
    }

    /// `openai` or `offline`.
    pub fn provider_name(&self) -> &str {
        provider_name(&self.inner.provider)
    }

    /// Whether answers come from the offline model.
    pub fn is_offline(&self) -> bool {
        matches!(self.inner.provider, Provider::Offline)
    }

    /// The options the client was built from.
    pub fn options(&self) -> &ModelOptions {
        &self.inner.options
    }

    /// Answers `request`: from the cache, or from the model (retrying and repairing as
    /// configured). See [`Classify::kind`](chatgptd_types::Classify::kind) for what to do with a failure.
    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatReply, Error> {
        let model = self.model_for(request);
        let result = self.answer(request, &model).await;
        let outcome = match &result {
            Ok(reply) if reply.provenance.cached => "cached",
            Ok(_) => "ok",
            Err(err) => err.class(),
        };
        metrics::counter!(metric::REQUESTS, "model" => model.clone(), "outcome" => outcome)
            .increment(1);
        if let Err(err) = &result {
            tracing::debug!(%model, error = %err, class = err.class(), "model call failed");
        }
        result
    }

    async fn answer(&self, request: &ChatRequest, model: &str) -> Result<ChatReply, Error> {
        let options = &self.inner.options;
        let validator = match &request.response_schema {
            Some(schema) => Some(self.inner.validators.get(&schema.schema)?),
            None => None,
        };
        let max_completion = request
            .max_completion_tokens
            .unwrap_or(options.default_max_completion_tokens);
        // The offline model is deterministic and cheaper to recompute than to look up.
        let cache = self
            .inner
            .cache
            .as_ref()
            .filter(|_| request.cache && !self.is_offline());
        let cache_key = cache.map(|_| self.cache_key(request, model, max_completion));
        if let (Some(cache), Some(key)) = (cache, &cache_key)
            && let Some(hit) = cache.get(key, model).await?
        {
            return Ok(hit);
        }

        let mut messages = request.messages.clone();
        let mut usage = Usage::default();
        let mut round = 0;
        loop {
            round += 1;
            let completion = self
                .complete(model, &messages, request, max_completion)
                .await?;
            usage = usage + completion.usage;
            if let Some(refusal) = completion.refusal.filter(|text| !text.trim().is_empty()) {
                return Err(Error::Refusal(refusal));
            }
            match completion.finish_reason.as_str() {
                "length" => return Err(Error::Length),
                "content_filter" => return Err(Error::ContentFilter),
                "tool_calls" if completion.tool_calls.is_empty() => {
                    return Err(Error::Malformed(
                        "finish_reason tool_calls without any tool call".into(),
                    ));
                }
                _ => {}
            }
            // Calls are an answer of their own, empty content included: the schema is for
            // the text answer that comes after their results.
            let calls = !completion.tool_calls.is_empty();
            let finish_reason = if calls {
                FinishReason::ToolCalls
            } else {
                FinishReason::from(completion.finish_reason.as_str())
            };
            let json = match &validator {
                _ if calls => None,
                None => None,
                Some(validator) => match parse_and_validate(validator, &completion.content) {
                    Ok(json) => Some(json),
                    Err(detail) if round > options.repair_attempts => {
                        return Err(Error::InvalidOutput {
                            attempts: round,
                            detail,
                        });
                    }
                    Err(detail) => {
                        metrics::counter!(metric::REPAIRS, "model" => model.to_string())
                            .increment(1);
                        tracing::debug!(%model, round, %detail, "reply does not match its schema: asking again");
                        messages.push(ChatMessage::assistant(completion.content));
                        messages.push(ChatMessage::user(repair_prompt(&detail)));
                        continue;
                    }
                },
            };
            let reply = ChatReply {
                provenance: Provenance {
                    provider: self.provider_name().to_string(),
                    model: completion.model,
                    prompt_version: request.prompt_version.clone(),
                    request_id: completion.request_id,
                    prompt_tokens: usage.prompt as i64,
                    completion_tokens: usage.completion as i64,
                    total_tokens: usage.total as i64,
                    finish_reason: completion.finish_reason,
                    cached: false,
                    ..Provenance::default()
                },
                content: completion.content,
                json,
                usage,
                system_fingerprint: completion.system_fingerprint,
                tool_calls: completion.tool_calls,
                finish_reason,
            };
            if let (Some(cache), Some(key)) = (cache, &cache_key) {
                cache.put(key, &reply).await;
            }
            return Ok(reply);
        }
    }

    /// One completion of `messages` by the provider.
    async fn complete(
        &self,
        model: &str,
        messages: &[ChatMessage],
        request: &ChatRequest,
        max_completion: u32,
    ) -> Result<Completion, Error> {
        let provider = match &self.inner.provider {
            Provider::OpenAi(provider) => provider,
            Provider::Offline => return Ok(offline_completion(messages, request)),
        };
        let body = self.wire_request(model, messages, request, max_completion);
        let reserved = prompt_estimate(messages, request) + u64::from(max_completion);
        let limiter = self.inner.limiters.for_model(model);
        let served = call::send_with_retries(
            provider,
            &limiter,
            model,
            &body,
            reserved,
            self.inner.attempts,
        )
        .await?;
        let usage = call::usage_of(&served);
        call::account(model, &usage, self.inner.options.prices.get(model));
        let response = served.response;
        let Some(mut choice) = response.choices.into_iter().next() else {
            return Err(Error::Malformed("a chat completion without choices".into()));
        };
        Ok(Completion {
            tool_calls: choice.message.tool_calls(),
            content: choice.message.content.unwrap_or_default(),
            refusal: choice.message.refusal,
            finish_reason: choice.finish_reason.unwrap_or_else(|| "stop".to_string()),
            usage,
            request_id: served.request_id,
            model: response.model.unwrap_or_else(|| model.to_string()),
            system_fingerprint: response.system_fingerprint,
        })
    }

    pub(crate) fn wire_request<'a>(
        &self,
        model: &'a str,
        messages: &'a [ChatMessage],
        request: &'a ChatRequest,
        max_completion: u32,
    ) -> WireRequest<'a> {
        let (max_completion_tokens, max_tokens) = match self.inner.options.max_tokens_parameter {
            MaxTokensParameter::MaxCompletionTokens => (Some(max_completion), None),
            MaxTokensParameter::MaxTokens => (None, Some(max_completion)),
        };
        let tools = &request.tools;
        WireRequest {
            model,
            messages: messages.iter().map(Into::into).collect(),
            temperature: request.temperature,
            max_completion_tokens,
            max_tokens,
            seed: request.seed,
            response_format: request
                .response_schema
                .as_ref()
                .map(|schema| ResponseFormat {
                    kind: "json_schema",
                    json_schema: JsonSchemaFormat {
                        name: &schema.name,
                        schema: &schema.schema,
                        strict: schema.strict,
                    },
                }),
            tools: tools.iter().map(WireTool::from).collect(),
            tool_choice: request.tool_choice.as_ref().filter(|_| !tools.is_empty()),
            parallel_tool_calls: request.parallel_tool_calls.filter(|_| !tools.is_empty()),
        }
    }

    /// The model `request` goes to: the name limits and prices are keyed by (the provider may
    /// answer with a dated variant of it).
    pub fn model_for(&self, request: &ChatRequest) -> String {
        match &self.inner.provider {
            Provider::Offline => offline::MODEL.to_string(),
            Provider::OpenAi(_) => request
                .model
                .clone()
                .filter(|model| !model.trim().is_empty())
                .unwrap_or_else(|| self.inner.options.model.clone()),
        }
    }

    fn cache_key(&self, request: &ChatRequest, model: &str, max_completion: u32) -> String {
        let endpoint = match &self.inner.provider {
            Provider::OpenAi(provider) => provider.base_url(),
            Provider::Offline => offline::PROVIDER,
        };
        let schema = request.response_schema.as_ref();
        CacheKeyParts {
            endpoint,
            model,
            prompt_version: &request.prompt_version,
            messages: &request.messages,
            temperature: request.temperature,
            max_completion_tokens: max_completion,
            seed: request.seed,
            schema_name: schema.map(|s| s.name.as_str()),
            schema: schema.map(|s| &s.schema),
            schema_strict: schema.map(|s| s.strict),
            tools: &request.tools,
            tool_choice: request.tool_choice.as_ref(),
            parallel_tool_calls: request.parallel_tool_calls,
        }
        .key()
    }
}

fn provider_name(provider: &Provider) -> &'static str {
    match provider {
        Provider::OpenAi(_) => "openai",
        Provider::Offline => offline::PROVIDER,
    }
}

/// The prompt of `messages` (a request's, or with repairs) and the tools `request` offers.
fn prompt_estimate(messages: &[ChatMessage], request: &ChatRequest) -> u64 {
    estimate_prompt_tokens(messages) + estimate_tools_tokens(&request.tools)
}

/// The offline model's completion, with estimated usage.
fn offline_completion(messages: &[ChatMessage], request: &ChatRequest) -> Completion {
    let request = ChatRequest {
        messages: messages.to_vec(),
        ..request.clone()
    };
    let answer = offline::answer(&request);
    let prompt = prompt_estimate(messages, &request);
    let completion = estimate_text_tokens(&answer.content)
        + answer
            .tool_calls
            .iter()
            .map(|call| estimate_text_tokens(&call.arguments))
            .sum::<u64>();
    let finish_reason = if answer.tool_calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    Completion {
        content: answer.content,
        refusal: None,
        tool_calls: answer.tool_calls,
        finish_reason: finish_reason.to_string(),
        usage: Usage {
            prompt,
            completion,
            total: prompt + completion,
            cached: 0,
            reasoning: 0,
        },
        request_id: Some(answer.request_id),
        model: offline::MODEL.to_string(),
        system_fingerprint: None,
    }
}

/// What the model is told after a reply that does not match its schema.
fn repair_prompt(detail: &str) -> String {
    format!(
        "Your previous reply did not match the required JSON schema: {detail}. Reply again with \
         only a JSON value that matches the schema, and nothing else."
    )
}
