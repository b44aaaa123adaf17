//! The offline model's tool calls: which offered tool the request asks for ([`super::phrases`]),
//! with what arguments and id, and the answer once the results came back.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::phrases::intent;
use super::schema;
use super::text::Analysis;
use crate::request::{ChatMessage, ChatRequest, Role};
use crate::tool::{Tool, ToolCall, ToolChoice};

/// The most characters of one tool result quoted in the summary.
const MAX_RESULT_CHARS: usize = 200;

/// The calls the offline model makes for `request`: none without tools or with
/// `tool_choice: none`; a forced function or `required` always gets a call (arguments from
/// the phrase when one matches, else made up from the tool's schema); otherwise one call when
/// the last message is the user's and asks for an offered tool.
pub fn calls(request: &ChatRequest) -> Vec<ToolCall> {
    let offered = &request.tools;
    if offered.is_empty() {
        return Vec::new();
    }
    let last_user = request
        .messages
        .iter()
        .rev()
        .find(|message| message.role == Role::User);
    let text = last_user.map_or("", |message| message.content.as_str());
    let chosen = |name: &str| offered.iter().find(|tool| tool.name == name);
    let call = match &request.tool_choice {
        Some(ToolChoice::None) => None,
        Some(ToolChoice::Function(name)) => chosen(name).map(|tool| {
            let asked = intent(text, |name| name == tool.name);
            let arguments = asked.map_or_else(|| made_up(tool, text), |(_, arguments)| arguments);
            (tool.name.as_str(), arguments)
        }),
        Some(ToolChoice::Required) => intent(text, |name| chosen(name).is_some()).or_else(|| {
            offered
                .first()
                .map(|tool| (tool.name.as_str(), made_up(tool, text)))
        }),
        Some(ToolChoice::Auto) | None => {
            let answers_user = request
                .messages
                .last()
                .is_some_and(|m| m.role == Role::User);
            answers_user
                .then(|| intent(text, |name| chosen(name).is_some()))
                .flatten()
        }
    };
    call.map(|(name, arguments)| {
        let arguments = arguments.to_string();
        ToolCall::new(call_id(text, name, &arguments), name, arguments)
    })
    .into_iter()
    .collect()
}

/// The answer once tool results came back: what each call returned, shortened.
pub fn summary(messages: &[ChatMessage]) -> Option<String> {
    let results: Vec<&ChatMessage> = messages
        .iter()
        .rev()
        .take_while(|message| message.role == Role::Tool)
        .collect();
    if results.is_empty() {
        return None;
    }
    let lines: Vec<String> = results
        .iter()
        .rev()
        .map(|result| {
            let id = result.tool_call_id.as_deref().unwrap_or_default();
            let name = messages
                .iter()
                .flat_map(|message| &message.tool_calls)
                .find(|call| call.id == id)
                .map_or("tool", |call| call.name.as_str());
            let text = result
                .content
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            format!("{name}: {}", clip(&text, MAX_RESULT_CHARS))
        })
        .collect();
    Some(format!("Done. {}", lines.join("\n")))
}

/// Arguments for `tool` from its schema, as the offline model answers any schema.
fn made_up(tool: &Tool, text: &str) -> Value {
    schema::generate(
        &tool.parameters,
        &tool.parameters,
        &tool.name,
        &Analysis::of(text),
    )
}

/// `call_` and 24 hex digits of what the call is about: the same message asks the same call.
fn call_id(text: &str, name: &str, arguments: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [text, name, arguments] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    format!("call_{}", &hex::encode(hasher.finalize())[..24])
}

fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(messages: Vec<ChatMessage>, tools: &[&str]) -> ChatRequest {
        let tools = tools
            .iter()
            .map(|name| {
                let schema = json!({
                    "type": "object",
                    "properties": {"query": {"type": "string"}},
                    "required": ["query"]
                });
                Tool::new(*name, "", schema)
            })
            .collect();
        ChatRequest::new("v1", messages).with_tools(tools)
    }

    #[test]
    fn calls_only_offered_tools_and_only_in_answer_to_the_user() {
        let ask = ChatMessage::user("From user:alice:\nsearch memory for lisbon trams");
        let offered = request(vec![ask.clone()], &["search_memory"]);
        let calls = calls(&offered);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].name, "search_memory");
        assert_eq!(calls[0].arguments, r#"{"query":"lisbon trams"}"#);
        assert!(calls[0].id.starts_with("call_") && calls[0].id.len() == 29);
        assert_eq!(super::calls(&offered), calls, "deterministic");

        assert!(super::calls(&request(vec![ask.clone()], &["message_agent"])).is_empty());
        assert!(super::calls(&request(vec![ask.clone()], &[])).is_empty());
        let mut refused = offered.clone();
        refused.tool_choice = Some(ToolChoice::None);
        assert!(super::calls(&refused).is_empty());

        let answered = request(
            vec![
                ask,
                ChatMessage::assistant_calls("", calls.clone()),
                ChatMessage::tool(calls[0].id.clone(), "2 hits"),
            ],
            &["search_memory"],
        );
        assert!(super::calls(&answered).is_empty());
    }

    #[test]
    fn forced_choices_always_call() {
        let chat = vec![ChatMessage::user("hello there")];
        let mut forced = request(chat.clone(), &["search_memory", "lookup"]);
        forced.tool_choice = Some(ToolChoice::Function("lookup".into()));
        let calls = calls(&forced);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].name, "lookup");
        let arguments: Value = serde_json::from_str(&calls[0].arguments).unwrap();
        assert!(arguments["query"].is_string(), "{arguments}");

        let mut required = request(chat, &["lookup"]);
        required.tool_choice = Some(ToolChoice::Required);
        assert_eq!(super::calls(&required)[0].name, "lookup");
    }

    #[test]
    fn results_are_summarised_by_tool() {
        let call = ToolCall::new("call_1", "search_memory", "{}");
        let long = "word ".repeat(100);
        let messages = vec![
            ChatMessage::user("search memory for x"),
            ChatMessage::assistant_calls("", vec![call]),
            ChatMessage::tool("call_1", long.clone()),
        ];
        let text = summary(&messages).unwrap();
        assert!(text.starts_with("Done. search_memory: word word"), "{text}");
        assert!(text.len() < 240 && text.ends_with("..."), "{text}");
        assert_eq!(summary(&messages[..1]), None);
    }
}
