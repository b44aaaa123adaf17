//! Scripted answers: what the model says to the next requests, text or tool calls, in order,
//! optionally only to a request whose last user message contains some text (one script can
//! then serve several agents or conversations at once).

use serde_json::{Value, json};

use super::LoggedRequest;

/// One scripted answer of the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Scripted {
    /// This text, `finish_reason: stop`.
    Text(String),
    /// These calls, `content: null`, `finish_reason: tool_calls`.
    ToolCalls(Vec<ScriptedCall>),
    /// `reply`, to the first request whose last user message contains `needle`; requests
    /// that do not match pass it by for the next entry that fits them.
    WhenUserContains {
        needle: String,
        reply: Box<Scripted>,
    },
}

/// One scripted call.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedCall {
    pub name: String,
    /// The arguments text, sent as the JSON *string* OpenAI sends.
    pub arguments: String,
}

impl ScriptedCall {
    /// A call of `name` with `arguments`.
    pub fn new(name: impl Into<String>, arguments: Value) -> Self {
        ScriptedCall {
            name: name.into(),
            arguments: arguments.to_string(),
        }
    }

    /// A call whose arguments text is exactly `arguments`, valid JSON or not.
    pub fn raw(name: impl Into<String>, arguments: impl Into<String>) -> Self {
        ScriptedCall {
            name: name.into(),
            arguments: arguments.into(),
        }
    }
}

impl<N: Into<String>> From<(N, Value)> for ScriptedCall {
    fn from((name, arguments): (N, Value)) -> Self {
        ScriptedCall::new(name, arguments)
    }
}

impl Scripted {
    /// A text answer.
    pub fn text(text: impl Into<String>) -> Self {
        Scripted::Text(text.into())
    }

    /// One call of `name` with `arguments`.
    pub fn tool_call(name: impl Into<String>, arguments: Value) -> Self {
        Scripted::ToolCalls(vec![ScriptedCall::new(name, arguments)])
    }

    /// Several calls in one turn: `Scripted::tool_calls([("search_memory", json!({...}))])`.
    pub fn tool_calls<C: Into<ScriptedCall>>(calls: impl IntoIterator<Item = C>) -> Self {
        Scripted::ToolCalls(calls.into_iter().map(Into::into).collect())
    }

    /// `reply`, only for a request whose last user message contains `needle`.
    pub fn when_user_contains(needle: impl Into<String>, reply: Scripted) -> Self {
        Scripted::WhenUserContains {
            needle: needle.into(),
            reply: Box::new(reply),
        }
    }

    /// Whether this entry answers `request` (a chat completion body).
    pub(super) fn applies(&self, request: &Value) -> bool {
        match self {
            Scripted::WhenUserContains { needle, reply } => {
                last_user_message(request).is_some_and(|text| text.contains(needle.as_str()))
                    && reply.applies(request)
            }
            _ => true,
        }
    }

    /// The answer itself, conditions taken off.
    pub(super) fn answer(&self) -> &Scripted {
        match self {
            Scripted::WhenUserContains { reply, .. } => reply.answer(),
            answer => answer,
        }
    }

    /// `content` and `tool_calls` of the reply message; ids are `call_<request>_<n>`.
    pub(super) fn message(&self, request_id: &str) -> (Option<String>, Option<Value>) {
        match self.answer() {
            Scripted::Text(text) => (Some(text.clone()), None),
            Scripted::ToolCalls(calls) => {
                let number = request_id.trim_start_matches("req_");
                let calls = calls
                    .iter()
                    .enumerate()
                    .map(|(i, call)| {
                        json!({
                            "id": format!("call_{number}{i:02}"),
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments},
                        })
                    })
                    .collect();
                (None, Some(Value::Array(calls)))
            }
            Scripted::WhenUserContains { .. } => unreachable!("answer() takes conditions off"),
        }
    }
}

/// The text of the last `user` message of a chat completion body.
pub(super) fn last_user_message(request: &Value) -> Option<&str> {
    messages(request)
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content").and_then(Value::as_str))
}

fn messages(request: &Value) -> &[Value] {
    request
        .get("messages")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// What tests read about tools in a logged request.
impl LoggedRequest {
    /// The request's `messages`.
    pub fn messages(&self) -> &[Value] {
        messages(&self.body)
    }

    /// The request's `tools`, as sent (`{"type": "function", "function": {...}}`).
    pub fn tools(&self) -> &[Value] {
        self.body
            .get("tools")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// The names of the offered functions.
    pub fn tool_names(&self) -> Vec<&str> {
        self.tools()
            .iter()
            .filter_map(|tool| tool.pointer("/function/name").and_then(Value::as_str))
            .collect()
    }

    /// The request's `tool_choice`.
    pub fn tool_choice(&self) -> Option<&Value> {
        self.body.get("tool_choice")
    }

    /// The `tool` messages: the call each answers (`tool_call_id`) and its content.
    pub fn tool_results(&self) -> Vec<(&str, &str)> {
        self.messages()
            .iter()
            .filter(|m| m.get("role").and_then(Value::as_str) == Some("tool"))
            .map(|m| {
                let text = |key| m.get(key).and_then(Value::as_str).unwrap_or_default();
                (text("tool_call_id"), text("content"))
            })
            .collect()
    }

    /// The text of the last `user` message.
    pub fn last_user_message(&self) -> Option<&str> {
        last_user_message(&self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asking(text: &str) -> Value {
        json!({"messages": [
            {"role": "system", "content": "You are Atlas."},
            {"role": "user", "content": text},
            {"role": "assistant", "content": null, "tool_calls": []},
            {"role": "tool", "tool_call_id": "call_1", "content": "ok"}
        ]})
    }

    #[test]
    fn conditions_match_the_last_user_message() {
        let scripted = Scripted::when_user_contains(
            "rail",
            Scripted::tool_call("search_memory", json!({"query": "rail"})),
        );
        assert!(scripted.applies(&asking("From user:a:\nrail passes?")));
        assert!(!scripted.applies(&asking("flights?")));
        assert!(Scripted::text("hi").applies(&asking("anything")));
    }

    #[test]
    fn calls_are_written_as_openai_writes_them() {
        let scripted = Scripted::tool_calls([
            ScriptedCall::new("search_memory", json!({"query": "rail"})),
            ScriptedCall::raw("escalate_to_human", "{not json"),
        ]);
        let (content, calls) = scripted.message("req_00000000000000a1");
        assert_eq!(content, None);
        assert_eq!(
            calls.unwrap(),
            json!([
                {"id": "call_00000000000000a100", "type": "function",
                 "function": {"name": "search_memory", "arguments": "{\"query\":\"rail\"}"}},
                {"id": "call_00000000000000a101", "type": "function",
                 "function": {"name": "escalate_to_human", "arguments": "{not json"}}
            ])
        );
    }
}
