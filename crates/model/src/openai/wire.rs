//! The chat completions wire format, as much of it as we send and read. Reading is lenient
//! (every field optional) because compatible servers omit different parts.

use serde::{Deserialize, Serialize};

use crate::request::{ChatMessage, Role};
use crate::tool::{Tool, ToolCall, ToolChoice};

/// `POST /chat/completions` body.
#[derive(Debug, Serialize)]
pub struct WireRequest<'a> {
    pub model: &'a str,
    pub messages: Vec<WireMessageOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<WireTool<'a>>,
    /// Only with tools: OpenAI refuses `tool_choice` and `parallel_tool_calls` without them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<&'a ToolChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
}

/// A message as sent.
#[derive(Debug, Serialize)]
pub struct WireMessageOut<'a> {
    pub role: Role,
    /// `null` for an assistant turn that only calls tools, as OpenAI writes it back.
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<WireToolCallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<&'a str>,
}

impl<'a> From<&'a ChatMessage> for WireMessageOut<'a> {
    fn from(message: &'a ChatMessage) -> Self {
        let calls_only = !message.tool_calls.is_empty() && message.content.is_empty();
        WireMessageOut {
            role: message.role,
            content: (!calls_only).then_some(message.content.as_str()),
            tool_calls: message
                .tool_calls
                .iter()
                .map(WireToolCallOut::from)
                .collect(),
            tool_call_id: message.tool_call_id.as_deref(),
        }
    }
}

/// `tool_calls[]` of an assistant turn sent back.
#[derive(Debug, Serialize)]
pub struct WireToolCallOut<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: WireFunctionOut<'a>,
}

impl<'a> From<&'a ToolCall> for WireToolCallOut<'a> {
    fn from(call: &'a ToolCall) -> Self {
        WireToolCallOut {
            id: &call.id,
            kind: "function",
            function: WireFunctionOut {
                name: &call.name,
                arguments: &call.arguments,
            },
        }
    }
}

/// A call's function: its arguments are a JSON *string*.
#[derive(Debug, Serialize)]
pub struct WireFunctionOut<'a> {
    pub name: &'a str,
    pub arguments: &'a str,
}

/// `tools[]`: `{"type": "function", "function": {...}}`.
#[derive(Debug, Serialize)]
pub struct WireTool<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: WireFunction<'a>,
}

#[derive(Debug, Serialize)]
pub struct WireFunction<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub description: &'a str,
    pub parameters: &'a serde_json::Value,
    pub strict: bool,
}

impl<'a> From<&'a Tool> for WireTool<'a> {
    fn from(tool: &'a Tool) -> Self {
        WireTool {
            kind: "function",
            function: WireFunction {
                name: &tool.name,
                description: &tool.description,
                parameters: &tool.parameters,
                strict: tool.strict,
            },
        }
    }
}

/// `response_format`: structured outputs.
#[derive(Debug, Serialize)]
pub struct ResponseFormat<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub json_schema: JsonSchemaFormat<'a>,
}

/// `response_format.json_schema`.
#[derive(Debug, Serialize)]
pub struct JsonSchemaFormat<'a> {
    pub name: &'a str,
    pub schema: &'a serde_json::Value,
    pub strict: bool,
}

/// A chat completion.
#[derive(Debug, Deserialize)]
pub struct WireResponse {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    pub choices: Vec<WireChoice>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
    #[serde(default)]
    pub system_fingerprint: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct WireChoice {
    pub message: WireMessage,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct WireMessage {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub refusal: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<WireToolCall>>,
}

/// A call as a reply carries it.
#[derive(Debug, Deserialize)]
pub struct WireToolCall {
    #[serde(default)]
    pub id: Option<String>,
    pub function: WireCalledFunction,
}

#[derive(Debug, Deserialize)]
pub struct WireCalledFunction {
    pub name: String,
    /// A JSON string for OpenAI; some compatible servers send the object itself.
    #[serde(default)]
    pub arguments: Option<serde_json::Value>,
}

impl WireMessage {
    /// The calls, with ids for servers that send none (`call_<position>`, unique within the
    /// turn, which is all a tool message needs to answer it).
    pub fn tool_calls(&mut self) -> Vec<ToolCall> {
        let calls = self.tool_calls.take().unwrap_or_default();
        calls
            .into_iter()
            .enumerate()
            .map(|(i, call)| ToolCall {
                id: call
                    .id
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| format!("call_{i}")),
                name: call.function.name,
                arguments: match call.function.arguments {
                    Some(serde_json::Value::String(text)) => text,
                    None | Some(serde_json::Value::Null) => String::new(),
                    Some(other) => other.to_string(),
                },
            })
            .collect()
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct WireUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    pub completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CompletionDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

/// An error body: `{"error": {"message", "type", "code"}}`.
#[derive(Debug, Deserialize)]
pub struct WireErrorBody {
    pub error: WireError,
}

#[derive(Debug, Deserialize)]
pub struct WireError {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// A string for OpenAI, sometimes a number for proxies.
    #[serde(default)]
    pub code: Option<serde_json::Value>,
}

impl WireError {
    /// The code as text.
    pub fn code(&self) -> Option<String> {
        match &self.code {
            Some(serde_json::Value::String(code)) => Some(code.clone()),
            Some(serde_json::Value::Number(code)) => Some(code.to_string()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tool_turns_are_written_as_openai_reads_them() {
        let calls = vec![ToolCall::new("call_a", "search_memory", r#"{"query":"x"}"#)];
        let turn = ChatMessage::assistant_calls("", calls);
        assert_eq!(
            serde_json::to_value(WireMessageOut::from(&turn)).unwrap(),
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_a", "type": "function",
                "function": {"name": "search_memory", "arguments": "{\"query\":\"x\"}"}
            }]})
        );
        let result = ChatMessage::tool("call_a", "no hits");
        assert_eq!(
            serde_json::to_value(WireMessageOut::from(&result)).unwrap(),
            json!({"role": "tool", "content": "no hits", "tool_call_id": "call_a"})
        );
        let plain = ChatMessage::user("");
        assert_eq!(
            serde_json::to_value(WireMessageOut::from(&plain)).unwrap(),
            json!({"role": "user", "content": ""})
        );
    }

    #[test]
    fn calls_are_read_leniently() {
        let mut message: WireMessage = serde_json::from_value(json!({
            "content": null,
            "tool_calls": [
                {"id": "call_a", "type": "function",
                 "function": {"name": "f", "arguments": "{\"a\":1}"}},
                {"type": "function", "function": {"name": "g", "arguments": {"b": 2}}},
                {"id": "", "function": {"name": "h"}}
            ]
        }))
        .unwrap();
        assert_eq!(
            message.tool_calls(),
            vec![
                ToolCall::new("call_a", "f", r#"{"a":1}"#),
                ToolCall::new("call_1", "g", r#"{"b":2}"#),
                ToolCall::new("call_2", "h", ""),
            ]
        );
        assert_eq!(message.content, None);
    }
}
