//! What a worker asks a model, and what it gets back.

use chatgptd_types::records::Provenance;
use serde::{Deserialize, Serialize};

/// Who says a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
}

/// One message of a conversation. Tool calls, when they come, add optional fields here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::System,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// A JSON schema the reply must match (structured outputs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseSchema {
    /// The schema's name, as the provider wants it (`[a-zA-Z0-9_-]`, at most 64 chars).
    pub name: String,
    /// The JSON schema.
    pub schema: serde_json::Value,
    /// Strict structured outputs: the provider constrains decoding to the schema.
    pub strict: bool,
}

/// One chat completion request. Tools, when workers need them, become optional fields here
/// and in the wire request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation, oldest first.
    pub messages: Vec<ChatMessage>,
    /// The model, when not the configured one.
    pub model: Option<String>,
    /// Sampling temperature; the provider's default when unset.
    pub temperature: Option<f32>,
    /// Completion budget; `default_max_completion_tokens` when unset.
    pub max_completion_tokens: Option<u32>,
    /// Sampling seed, for providers that support reproducible sampling.
    pub seed: Option<i64>,
    /// The JSON schema the reply must match; the reply's `json` is then set.
    pub response_schema: Option<ResponseSchema>,
    /// The worker's prompt version, part of the cache key and the provenance.
    pub prompt_version: String,
    /// Whether the reply may come from (and goes to) the result cache.
    pub cache: bool,
}

impl ChatRequest {
    /// A request with the given prompt version and messages, cached, provider defaults
    /// otherwise.
    pub fn new(prompt_version: impl Into<String>, messages: Vec<ChatMessage>) -> Self {
        ChatRequest {
            messages,
            model: None,
            temperature: None,
            max_completion_tokens: None,
            seed: None,
            response_schema: None,
            prompt_version: prompt_version.into(),
            cache: true,
        }
    }

    /// The same request, asking for a reply that matches `schema`.
    pub fn with_schema(mut self, name: impl Into<String>, schema: serde_json::Value) -> Self {
        self.response_schema = Some(ResponseSchema {
            name: name.into(),
            schema,
            strict: true,
        });
        self
    }
}

/// Token counts of a call, as the provider reports them (estimated for the offline model).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
    pub total: u64,
    /// Prompt tokens served from the provider's prompt cache.
    pub cached: u64,
    /// Completion tokens spent on reasoning.
    pub reasoning: u64,
}

/// The sum of two calls' usage (a reply and its repairs).
impl std::ops::Add for Usage {
    type Output = Usage;

    fn add(self, other: Usage) -> Usage {
        Usage {
            prompt: self.prompt + other.prompt,
            completion: self.completion + other.completion,
            total: self.total + other.total,
            cached: self.cached + other.cached,
            reasoning: self.reasoning + other.reasoning,
        }
    }
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatReply {
    /// `choices[0].message.content`.
    pub content: String,
    /// The content parsed and validated, when a schema was requested.
    pub json: Option<serde_json::Value>,
    /// Where the answer came from. `source_*` are left for the worker to fill.
    pub provenance: Provenance,
    /// Tokens used, repairs included.
    pub usage: Usage,
    /// The provider's backend configuration fingerprint, when it reports one.
    pub system_fingerprint: Option<String>,
}
