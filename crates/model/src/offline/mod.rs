//! The `offline` provider: a deterministic local model for the embedded stack and demos. It
//! uses no network, answers the same input with the same output, and answers every schema
//! the workers ask for with plausible content derived from the input:
//!
//! - enums: keyword classification for category-, priority-, sentiment- and language-like
//!   fields (`refund, invoice` → billing; `outage, down, urgent` → high or critical; ...);
//! - strings by field name: an extractive summary, a templated polite draft naming the
//!   ticket, a language guess, the title, an explanation of the signals found;
//! - numbers: a confidence from 0.5 to 0.9 by the number of signals; arrays of labels: the
//!   top keywords; booleans: false; objects: recursively, every declared property.
//!
//! Without a schema it answers with a short templated text quoting the question.
//!
//! Offered tools, it calls one when the user's message asks for it in words it knows
//! ("search memory for ...", "ask <agent>: ...", [`phrases`] has the table), and once the
//! results come back it answers with what they said.

mod lexicon;
pub mod phrases;
mod schema;
mod text;
mod tools;

use sha2::{Digest, Sha256};

use crate::request::{ChatRequest, Role};
use crate::tool::ToolCall;
pub use text::Analysis;

/// The provider name in provenance.
pub const PROVIDER: &str = "offline";

/// The model name in provenance.
pub const MODEL: &str = "offline-1";

/// The offline model's answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct OfflineAnswer {
    /// Empty when the answer is tool calls.
    pub content: String,
    /// The calls of offered tools the request asks for.
    pub tool_calls: Vec<ToolCall>,
    /// A stable id derived from the request, so logs can correlate repeated answers.
    pub request_id: String,
}

/// Answers `request`.
pub fn answer(request: &ChatRequest) -> OfflineAnswer {
    let question = question(request);
    let analysis = Analysis::of(question);
    let tool_calls = tools::calls(request);
    let content = match &request.response_schema {
        _ if !tool_calls.is_empty() => String::new(),
        Some(schema) => {
            let value = schema::generate(&schema.schema, &schema.schema, &schema.name, &analysis);
            value.to_string()
        }
        None => tools::summary(&request.messages).unwrap_or_else(|| free_text(request, question)),
    };
    let mut hasher = Sha256::new();
    for message in &request.messages {
        hasher.update(message.content.as_bytes());
        hasher.update([0]);
    }
    let digest = hex::encode(hasher.finalize());
    OfflineAnswer {
        content,
        tool_calls,
        request_id: format!("offline-{}", &digest[..16]),
    }
}

/// A plain-text answer: in the voice of the persona the system prompt names (`You are X,`),
/// about the question without the sender line workers put first (`From <sender>:`).
fn free_text(request: &ChatRequest, question: &str) -> String {
    let (sender, body) = match question.split_once('\n') {
        Some((first, rest)) if first.starts_with("From ") && first.ends_with(':') => (
            Some(first.trim_start_matches("From ").trim_end_matches(':')),
            rest.trim(),
        ),
        _ => (None, question.trim()),
    };
    let analysis = Analysis::of(body);
    let speaker = persona(request).unwrap_or("The assistant");
    let asked = text::truncate_words(text::first_sentence(body), 120);
    let mut answer = format!("{speaker} here (offline model, no network used).\n\n");
    match sender {
        Some(sender) => answer.push_str(&format!("To {sender}, on \"{asked}\": ")),
        None => answer.push_str(&format!("On \"{asked}\": ")),
    }
    answer.push_str(&analysis.summary(240));
    let keywords = analysis.keywords(5);
    if !keywords.is_empty() {
        answer.push_str(&format!("\n\nKey points: {}.", keywords.join(", ")));
    }
    let next = match analysis.level() {
        3.. => "treat this as urgent: confirm who owns it and what is affected now.",
        2 => "schedule it soon, and say which outcome matters most.",
        _ => "tell me more about the goal and the constraints for a fuller answer.",
    };
    answer.push_str(&format!("\nNext step: {next}"));
    answer
}

/// The persona a system prompt gives (`You are Wanderweave, ...`).
fn persona(request: &ChatRequest) -> Option<&str> {
    let system = request.messages.iter().find(|m| m.role == Role::System)?;
    let rest = system.content.split("You are ").nth(1)?;
    let name = rest.split([',', '.', '\n']).next()?.trim();
    (!name.is_empty() && name.split_whitespace().count() <= 5).then_some(name)
}

/// The text the answer is about: the last user message (system prompts hold instructions,
/// whose words would skew the keyword heuristics), or all text when there is none.
fn question(request: &ChatRequest) -> &str {
    request
        .messages
        .iter()
        .rev()
        .find(|message| message.role == Role::User)
        .or(request.messages.last())
        .map_or("", |message| message.content.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::ChatMessage;
    use serde_json::json;

    #[test]
    fn free_text_speaks_as_the_persona_to_the_sender() {
        let request = ChatRequest::new(
            "v1",
            vec![
                ChatMessage::system("You are Wanderweave, the travel storyteller."),
                ChatMessage::user(
                    "From user:cli:\nA rainy weekend in Lisbon, on foot. Where do we start?",
                ),
            ],
        );
        let content = answer(&request).content;
        assert!(content.starts_with("Wanderweave here"), "{content}");
        assert!(
            content.contains("To user:cli, on \"A rainy weekend in Lisbon, on foot.\""),
            "{content}"
        );
        assert!(
            content.contains("Key points:") && content.contains("lisbon"),
            "{content}"
        );
        assert!(!content.contains("From user:cli"), "{content}");
    }

    #[test]
    fn deterministic_and_quotes_the_question() {
        let request = ChatRequest::new(
            "v1",
            vec![
                ChatMessage::system("Be brief."),
                ChatMessage::user("Why is the sky blue?"),
            ],
        );
        let first = answer(&request);
        assert_eq!(first, answer(&request));
        assert!(
            first.content.contains("Why is the sky blue?")
                && first.content.starts_with("The assistant here"),
            "{}",
            first.content
        );
        assert!(first.request_id.starts_with("offline-"));
    }

    #[test]
    fn answers_schemas_from_the_user_message() {
        let schema = json!({
            "type": "object",
            "properties": {"category": {"type": "string", "enum": ["bug", "billing", "access"]}},
            "required": ["category"],
            "additionalProperties": false
        });
        let request = ChatRequest::new(
            "v1",
            vec![
                ChatMessage::system("Classify as bug, billing or access."),
                ChatMessage::user("I cannot login, my password reset email never arrives"),
            ],
        )
        .with_schema("triage", schema);
        let content = answer(&request).content;
        let value: serde_json::Value = serde_json::from_str(&content).unwrap();
        assert_eq!(value, json!({"category": "access"}));
    }
}
