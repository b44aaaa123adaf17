//! Model calls: one client for every worker that thinks.
//!
//! [`ModelClient::chat`] sends a [`ChatRequest`] to an OpenAI-compatible endpoint (OpenAI,
//! Azure OpenAI, vLLM, Ollama, llama.cpp server, LiteLLM) or answers it with the deterministic
//! [`offline`] model, and returns a [`ChatReply`] that carries its
//! [`Provenance`](chatgptd_types::records::Provenance).
//!
//! A call goes through these layers, each configured from [`ModelOptions`]:
//!
//! 1. the result cache (memory backend): a hit costs nothing;
//! 2. per attempt: the concurrency cap, then the RPM/TPM limiter ([`limiter`]), in-process or
//!    shared by every replica through Redis;
//! 3. the HTTP attempt with its timeout;
//! 4. retry classification ([`retry`]): 408, 409, 429 and 5xx, timeouts and refused
//!    connections are retried with backoff, honouring `retry-after` (and the gateway styles
//!    `retry-after-ms`, `llm_provider-retry-after`); the limiter adapts to the provider's
//!    `x-ratelimit-*` headers, adopting an advertised limit below its own;
//! 5. reply checks: refusal, `length`, `content_filter`, and schema validation with a bounded
//!    number of repair attempts.
//!
//! Tools (function calling): a request may offer [`Tool`]s (a name, a description, a JSON
//! schema of the arguments) with a [`ToolChoice`]; the reply then carries the model's
//! [`ToolCall`]s (`finish_reason` [`FinishReason::ToolCalls`], often with empty content) instead
//! of an answer, and is not held to the response schema. The caller checks each call's
//! arguments ([`Tool::check_arguments`], whose error is written for the model to read), runs
//! it, and asks again with the assistant turn ([`ChatMessage::assistant_calls`]) and a
//! [`ChatMessage::tool`] result per call: each turn of that loop is one cached call, so a
//! redelivered message replays the turns already paid for. Tool definitions and calls count
//! in the token estimate; the offline model calls a tool when the user's words ask for one
//! ([`offline::phrases`]).
//!
//! Errors say what a worker should do with the record ([`Classify::kind`]). Time spent
//! waiting on the limiter or a provider's `retry-after` is reported as waiting
//! (`chatgptd_types::waiting`), which a record's processing timeout does not count.
//!
//! Which layer retries: this client retries an attempt within one call (4 attempts by
//! default); what it still cannot get through is returned once, and the runtime's retries
//! (`max_attempts`) apply to it only when it is `Retryable`. A rate limit or an outage is
//! `Unavailable`: the runtime waits for it without spending attempts.

mod cache;
mod call;
mod check;
mod client;
mod error;
pub mod limiter;
pub mod metric;
pub mod offline;
mod openai;
mod options;
pub mod prompt;
mod request;
mod resolve;
pub mod retry;
mod tokens;
mod tool;
mod validate;

pub use chatgptd_types::{Classify, ErrorKind};
pub use check::CheckReport;
pub use client::ModelClient;
pub use error::Error;
pub use options::{
    LimitOptions, MaxTokensParameter, ModelOptions, Price, ProviderKind, RetryOptions,
};
pub use prompt::{Prompt, PromptError};
pub use request::{ChatMessage, ChatReply, ChatRequest, FinishReason, ResponseSchema, Role, Usage};
pub use tokens::{estimate_prompt_tokens, estimate_request_tokens, estimate_tools_tokens};
pub use tool::{Tool, ToolCall, ToolChoice};

/// Installs rustls' ring crypto provider for the process, once. reqwest is built without a
/// provider of its own, so a client cannot be built before this runs; [`ModelClient::new`]
/// calls it, and so can anything else that builds a reqwest client (benches, tests).
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error means another provider is already installed, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
