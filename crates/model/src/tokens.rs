//! A cheap token estimate: what the limiter reserves before a call, and the offline model's
//! usage. Real tokenizers are per model and heavy; four characters per token is the usual rule
//! of thumb for English, and the limiter settles to the reported usage afterwards anyway.

use crate::request::ChatMessage;

/// Tokens a message costs beyond its text (role, separators), as OpenAI counts them.
const PER_MESSAGE_TOKENS: u64 = 4;

/// Tokens priming the reply.
const REPLY_PRIMING_TOKENS: u64 = 3;

/// Tokens of `text`: characters / 4, rounded up.
pub(crate) fn estimate_text_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// Estimated prompt tokens of `messages`.
pub fn estimate_prompt_tokens(messages: &[ChatMessage]) -> u64 {
    let text: u64 = messages
        .iter()
        .map(|message| estimate_text_tokens(&message.content) + PER_MESSAGE_TOKENS)
        .sum();
    text + REPLY_PRIMING_TOKENS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_characters_per_token_plus_overhead() {
        assert_eq!(estimate_text_tokens(""), 0);
        assert_eq!(estimate_text_tokens("abcde"), 2);
        let messages = [ChatMessage::system("abcd"), ChatMessage::user("abcdefgh")];
        assert_eq!(estimate_prompt_tokens(&messages), 1 + 4 + 2 + 4 + 3);
    }
}
