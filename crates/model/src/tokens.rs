//! A cheap token estimate: what the limiter reserves before a call, and the offline model's
//! usage. Real tokenizers are per model and heavy; four characters per token is the usual rule
//! of thumb for English, and the limiter settles to the reported usage afterwards anyway.

use crate::cache::canonical_json;
use crate::request::{ChatMessage, ChatRequest};
use crate::tool::Tool;

/// Tokens a message costs beyond its text (role, separators), as OpenAI counts them.
const PER_MESSAGE_TOKENS: u64 = 4;

/// Tokens priming the reply.
const REPLY_PRIMING_TOKENS: u64 = 3;

/// Tokens a tool definition or a call costs beyond its text (the framing the provider adds
/// around functions). Providers do not document it; this errs on the side of reserving more.
const PER_TOOL_TOKENS: u64 = 8;

/// Tokens of `text`: characters / 4, rounded up.
pub(crate) fn estimate_text_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// Estimated prompt tokens of `messages`, tool calls and results included.
pub fn estimate_prompt_tokens(messages: &[ChatMessage]) -> u64 {
    let text: u64 = messages
        .iter()
        .map(|message| {
            let calls: u64 = message
                .tool_calls
                .iter()
                .map(|call| {
                    estimate_text_tokens(&call.name)
                        + estimate_text_tokens(&call.arguments)
                        + PER_TOOL_TOKENS
                })
                .sum();
            estimate_text_tokens(&message.content) + calls + PER_MESSAGE_TOKENS
        })
        .sum();
    text + REPLY_PRIMING_TOKENS
}

/// Estimated prompt tokens of the tool definitions a request offers: the provider puts their
/// names, descriptions and schemas into the prompt.
pub fn estimate_tools_tokens(tools: &[Tool]) -> u64 {
    tools
        .iter()
        .map(|tool| {
            estimate_text_tokens(&tool.name)
                + estimate_text_tokens(&tool.description)
                + estimate_text_tokens(&canonical_json(&tool.parameters))
                + PER_TOOL_TOKENS
        })
        .sum()
}

/// Estimated prompt tokens of `request`: its messages and the tools it offers.
pub fn estimate_request_tokens(request: &ChatRequest) -> u64 {
    estimate_prompt_tokens(&request.messages) + estimate_tools_tokens(&request.tools)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tool::ToolCall;
    use serde_json::json;

    #[test]
    fn four_characters_per_token_plus_overhead() {
        assert_eq!(estimate_text_tokens(""), 0);
        assert_eq!(estimate_text_tokens("abcde"), 2);
        let messages = [ChatMessage::system("abcd"), ChatMessage::user("abcdefgh")];
        assert_eq!(estimate_prompt_tokens(&messages), 1 + 4 + 2 + 4 + 3);
    }

    #[test]
    fn tools_and_calls_count() {
        let call = ToolCall::new("call_1", "abcd", r#"{"q":"x"}"#);
        let messages = [ChatMessage::assistant_calls("", vec![call])];
        assert_eq!(estimate_prompt_tokens(&messages), (1 + 3 + 8) + 4 + 3);
        // `{"type":"object"}` is 17 characters: 5 tokens.
        let tool = Tool::new("abcd", "abcdefgh", json!({"type": "object"}));
        assert_eq!(
            estimate_tools_tokens(std::slice::from_ref(&tool)),
            1 + 2 + 5 + 8
        );
        let request = crate::ChatRequest::new("v1", messages.to_vec()).with_tools(vec![tool]);
        assert_eq!(estimate_request_tokens(&request), 19 + 16);
    }
}
