//! The replies the fake writes: chat completions (text, refusals, tool calls), errors, and
//! content valid for a requested schema.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::script::{Scripted, last_user_message};
use super::{Behaviour, header_value};

/// The completion budget assumed when a request sets none.
const DEFAULT_COMPLETION_BUDGET: u64 = 4096;

/// The reply `behaviour` gives to `request`: a normal reply is the `scripted` answer, when
/// there is one.
pub(super) fn reply(
    behaviour: &Behaviour,
    scripted: Option<&Scripted>,
    request: &Value,
    request_id: &str,
) -> Response {
    match behaviour {
        Behaviour::RateLimited { retry_after } => rate_limited(
            "Rate limit reached on requests per min.",
            "requests",
            *retry_after,
        ),
        Behaviour::InsufficientQuota => error(
            StatusCode::TOO_MANY_REQUESTS,
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            Some("insufficient_quota"),
        ),
        Behaviour::ServerError(status) => error(
            StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
        Behaviour::MalformedJson => (
            StatusCode::OK,
            [("content-type", "application/json")],
            "{\"id\": \"chatcmpl-broken\", \"choices\": [",
        )
            .into_response(),
        Behaviour::Refusal => completion(
            request,
            request_id,
            Message::new(None, Some("I'm sorry, but I can't help with that.")),
            "stop",
        ),
        Behaviour::ContentFilter => completion(
            request,
            request_id,
            Message::new(None, None),
            "content_filter",
        ),
        Behaviour::Length => {
            let budget = completion_budget(request) as usize;
            let cut: String = default_content(request)
                .chars()
                .take(budget.max(1))
                .collect();
            completion(
                request,
                request_id,
                Message::new(Some(&cut), None),
                "length",
            )
        }
        Behaviour::Content(content) => completion(
            request,
            request_id,
            Message::new(Some(content), None),
            "stop",
        ),
        Behaviour::Ok | Behaviour::Slow(_) => match scripted {
            Some(scripted) => {
                let (content, tool_calls) = scripted.message(request_id);
                let finish_reason = if tool_calls.is_some() {
                    "tool_calls"
                } else {
                    "stop"
                };
                let message = Message {
                    content: content.as_deref(),
                    refusal: None,
                    tool_calls,
                };
                completion(request, request_id, message, finish_reason)
            }
            None => {
                let content = default_content(request);
                completion(
                    request,
                    request_id,
                    Message::new(Some(&content), None),
                    "stop",
                )
            }
        },
    }
}

/// The assistant message of a reply.
struct Message<'a> {
    content: Option<&'a str>,
    refusal: Option<&'a str>,
    /// `tool_calls`, as written on the wire.
    tool_calls: Option<Value>,
}

impl<'a> Message<'a> {
    fn new(content: Option<&'a str>, refusal: Option<&'a str>) -> Self {
        Message {
            content,
            refusal,
            tool_calls: None,
        }
    }
}

/// A chat completion body.
fn completion(
    request: &Value,
    request_id: &str,
    message: Message<'_>,
    finish_reason: &str,
) -> Response {
    let prompt = prompt_tokens(request);
    let budget = completion_budget(request);
    let completion = if finish_reason == "length" {
        budget
    } else {
        let calls = message.tool_calls.as_ref().map_or(0, json_tokens);
        let text = message.content.map_or(0, text_tokens);
        (text + calls).min(budget)
    };
    let mut reply = json!({
        "role": "assistant",
        "content": message.content,
        "refusal": message.refusal,
    });
    if let Some(calls) = message.tool_calls {
        reply["tool_calls"] = calls;
    }
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let body = json!({
        "id": format!("chatcmpl-{}", request_id.trim_start_matches("req_")),
        "object": "chat.completion",
        "created": created,
        "model": request.get("model").and_then(Value::as_str).unwrap_or("fake-model"),
        "choices": [{
            "index": 0,
            "message": reply,
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
        "system_fingerprint": "fp_fake",
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// An OpenAI-style error body.
pub(super) fn error(status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    (status, axum::Json(body)).into_response()
}

/// A 429 `rate_limit_exceeded` on limit `kind` (`requests`, `tokens`) asking to wait `wait`.
pub(super) fn rate_limited(message: &str, kind: &str, wait: Duration) -> Response {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        message,
        kind,
        Some("rate_limit_exceeded"),
    );
    let headers = response.headers_mut();
    headers.insert(
        "retry-after",
        header_value(&wait.as_secs_f64().ceil().to_string()),
    );
    headers.insert(
        "retry-after-ms",
        header_value(&wait.as_millis().to_string()),
    );
    response
}

/// Prompt tokens as OpenAI-compatible servers roughly count them: the messages, the calls
/// they repeat and the tool definitions.
pub(super) fn prompt_tokens(request: &Value) -> u64 {
    let messages = request.get("messages").and_then(Value::as_array);
    let text: u64 = messages
        .into_iter()
        .flatten()
        .map(|m| {
            let content = m.get("content").and_then(Value::as_str).unwrap_or("");
            let calls = m.get("tool_calls").map_or(0, json_tokens);
            text_tokens(content) + calls + 4
        })
        .sum();
    let tools = request.get("tools").map_or(0, json_tokens);
    text + tools + 3
}

/// Four characters per token.
fn text_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// Tokens of a JSON value's text.
fn json_tokens(value: &Value) -> u64 {
    text_tokens(&value.to_string())
}

/// The request's completion budget.
pub(super) fn completion_budget(request: &Value) -> u64 {
    request
        .get("max_completion_tokens")
        .or_else(|| request.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_COMPLETION_BUDGET)
}

/// JSON valid for the requested schema, or an echo of the last user message.
fn default_content(request: &Value) -> String {
    let schema = request.pointer("/response_format/json_schema/schema");
    if let Some(schema) = schema {
        return example(schema, schema, 0).to_string();
    }
    let last_user = last_user_message(request).unwrap_or("");
    format!("echo: {last_user}")
}

/// A value valid for `schema`: the first enum value, every property, minimal arrays.
fn example(schema: &Value, root: &Value, depth: usize) -> Value {
    if depth > 16 {
        return Value::Null;
    }
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let target = reference.strip_prefix('#').and_then(|p| root.pointer(p));
        return target.map_or(Value::Null, |t| example(t, root, depth + 1));
    }
    if let Some(constant) = schema.get("const") {
        return constant.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|v| v.first())
    {
        return first.clone();
    }
    if let Some(branches) = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
    {
        let branch = branches
            .iter()
            .find(|b| b.get("type").and_then(Value::as_str) != Some("null"))
            .or(branches.first());
        return branch.map_or(Value::Null, |b| example(b, root, depth + 1));
    }
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    let number = |key: &str| schema.get(key).and_then(Value::as_f64);
    match kind {
        "object" => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let object = properties
                .into_iter()
                .flatten()
                .map(|(name, s)| (name.clone(), example(s, root, depth + 1)))
                .collect();
            Value::Object(object)
        }
        "array" => {
            let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
            let items = schema.get("items").unwrap_or(&Value::Null);
            Value::Array((0..min).map(|_| example(items, root, depth + 1)).collect())
        }
        "integer" => {
            let low = number("minimum")
                .or(number("exclusiveMinimum").map(|m| m + 1.0))
                .unwrap_or(0.0);
            json!(low.ceil() as i64)
        }
        "number" => {
            let low = number("minimum").unwrap_or(0.0);
            let high = number("maximum").unwrap_or(low + 1.0);
            json!((low + high) / 2.0)
        }
        "boolean" => Value::Bool(false),
        "null" => Value::Null,
        _ => {
            let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
            let max = schema
                .get("maxLength")
                .and_then(Value::as_u64)
                .map_or(usize::MAX, |m| m as usize);
            let mut text = "example".to_string();
            while text.len() < min {
                text.push('x');
            }
            Value::String(text.chars().take(max).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_follow_the_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "category": {"type": "string", "enum": ["bug", "billing"]},
                "labels": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "count": {"type": "integer", "exclusiveMinimum": 0}
            }
        });
        let value = example(&schema, &schema, 0);
        assert_eq!(
            value,
            json!({"category": "bug", "labels": ["example"], "confidence": 0.5, "count": 1})
        );
    }
}
