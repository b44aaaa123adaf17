//! What a worker asks a model, and what it gets back.

use chatgptd_types::records::Provenance;
use serde::{Deserialize, Deserializer, Serialize};

use crate::tool::{Tool, ToolCall, ToolChoice};

/// Who says a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    /// The result of a tool call, answering the assistant message that made it.
    Tool,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    /// The text; empty for an assistant turn that only calls tools (`null` reads as empty).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub content: String,
    /// The calls an assistant turn made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a tool turn answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A message of `role` without tool calls.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage::new(Role::System, content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage::new(Role::User, content)
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage::new(Role::Assistant, content)
    }

    /// An assistant turn that calls tools (`content` is often empty), as the model replied:
    /// the conversation must repeat it before the tool results.
    pub fn assistant_calls(content: impl Into<String>, calls: Vec<ToolCall>) -> Self {
        ChatMessage {
            tool_calls: calls,
            ..ChatMessage::new(Role::Assistant, content)
        }
    }

    /// The result of the call `call_id`.
    pub fn tool(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            tool_call_id: Some(call_id.into()),
            ..ChatMessage::new(Role::Tool, content)
        }
    }
}

/// `null` (an assistant turn with tool calls, as OpenAI writes it) reads as empty text.
fn null_as_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_default())
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

/// One chat completion request.
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
    /// The functions the model may call; none by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// Which tool the model must use; the provider's default (`auto`) when unset. Sent only
    /// with tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may make several calls in one turn; the provider's default (yes)
    /// when unset. Sent only with tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
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
            tools: Vec::new(),
            tool_choice: None,
            parallel_tool_calls: None,
        }
    }

    /// The same request, offering `tools`.
    pub fn with_tools(mut self, tools: Vec<Tool>) -> Self {
        self.tools = tools;
        self
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

/// Why the model stopped (`finish_reason`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum FinishReason {
    /// A complete answer.
    #[default]
    Stop,
    /// The model calls tools: their results are wanted before it goes on.
    ToolCalls,
    /// Cut off at the completion budget.
    Length,
    /// Withheld by the provider's filter.
    ContentFilter,
    /// Anything else a compatible server says.
    Other(String),
}

impl FinishReason {
    /// As the provider writes it.
    pub fn as_str(&self) -> &str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::Length => "length",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Other(other) => other,
        }
    }
}

impl From<&str> for FinishReason {
    fn from(text: &str) -> Self {
        match text {
            "stop" => FinishReason::Stop,
            "tool_calls" => FinishReason::ToolCalls,
            "length" => FinishReason::Length,
            "content_filter" => FinishReason::ContentFilter,
            other => FinishReason::Other(other.to_string()),
        }
    }
}

impl From<String> for FinishReason {
    fn from(text: String) -> Self {
        FinishReason::from(text.as_str())
    }
}

impl From<FinishReason> for String {
    fn from(reason: FinishReason) -> Self {
        reason.as_str().to_string()
    }
}

impl std::fmt::Display for FinishReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A model's answer: text (or, with a schema, JSON), or calls of the offered tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatReply {
    /// `choices[0].message.content`; often empty when the model calls tools.
    pub content: String,
    /// The content parsed and validated, when a schema was requested.
    pub json: Option<serde_json::Value>,
    /// Where the answer came from. `source_*` are left for the worker to fill.
    pub provenance: Provenance,
    /// Tokens used, repairs included.
    pub usage: Usage,
    /// The provider's backend configuration fingerprint, when it reports one.
    pub system_fingerprint: Option<String>,
    /// The tools the model calls, in its order; their arguments are not yet checked. A reply
    /// with calls is not validated against `response_schema`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// `ToolCalls` exactly when `tool_calls` is not empty; otherwise `Stop`, or `Other` for a
    /// compatible server's own word (the client turns `length` and `content_filter` into
    /// errors). Replies cached before tools read as `Stop`.
    #[serde(default)]
    pub finish_reason: FinishReason,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conversations_and_replies_stored_before_tools_still_read() {
        let message: ChatMessage =
            serde_json::from_value(json!({"role": "user", "content": "hi"})).unwrap();
        assert_eq!(message, ChatMessage::user("hi"));
        // And what is stored without tools is stored as before (cache keys stay the same).
        assert_eq!(
            serde_json::to_value(ChatMessage::user("hi")).unwrap(),
            json!({"role": "user", "content": "hi"})
        );
        let reply: ChatReply = serde_json::from_value(json!({
            "content": "ok", "json": null, "provenance": Provenance::default(),
            "usage": Usage::default(), "system_fingerprint": null
        }))
        .unwrap();
        assert!(reply.tool_calls.is_empty());
        assert_eq!(reply.finish_reason, FinishReason::Stop);
        let request: ChatRequest = serde_json::from_value(json!({
            "messages": [], "model": null, "temperature": null, "max_completion_tokens": null,
            "seed": null, "response_schema": null, "prompt_version": "v1", "cache": true
        }))
        .unwrap();
        assert_eq!(request, ChatRequest::new("v1", Vec::new()));
    }

    #[test]
    fn tool_turns_round_trip() {
        let calls = vec![ToolCall::new("call_1", "search_memory", r#"{"query":"x"}"#)];
        let turn = ChatMessage::assistant_calls("", calls);
        let result = ChatMessage::tool("call_1", "3 hits");
        for message in [turn, result] {
            let text = serde_json::to_string(&message).unwrap();
            assert_eq!(serde_json::from_str::<ChatMessage>(&text).unwrap(), message);
        }
        let null: ChatMessage = serde_json::from_value(json!({
            "role": "assistant", "content": null,
            "tool_calls": [{"id": "call_1", "name": "f", "arguments": "{}"}]
        }))
        .unwrap();
        assert_eq!(null.content, "");
        assert_eq!(null.tool_calls.len(), 1);
    }

    #[test]
    fn finish_reasons_keep_unknown_values() {
        for text in ["stop", "tool_calls", "length", "content_filter", "eos"] {
            let reason = FinishReason::from(text);
            assert_eq!(reason.as_str(), text);
            let json = serde_json::to_value(&reason).unwrap();
            assert_eq!(
                serde_json::from_value::<FinishReason>(json).unwrap(),
                reason
            );
        }
        assert_eq!(FinishReason::from("eos"), FinishReason::Other("eos".into()));
    }
}
