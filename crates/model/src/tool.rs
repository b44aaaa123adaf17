//! Function calling: the tools a request offers, which one the model must use, and the calls
//! it makes. These are the stored shapes (conversations, the result cache); `openai/wire.rs`
//! writes and reads OpenAI's.

use std::sync::LazyLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;
use crate::validate::{Validators, explain};

/// The longest tool-argument text quoted back to a model.
const MAX_QUOTED_ARGUMENTS: usize = 200;

/// Compiled parameter schemas. Process-wide because a `Tool` is a plain value built by
/// callers (the registry, tests), and the catalogue sends the same few schemas over and over.
static VALIDATORS: LazyLock<Validators> = LazyLock::new(Validators::default);

/// A function the model may call (OpenAI `tools[].function`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// The function's name (`[a-zA-Z0-9_-]`, at most 64 characters for OpenAI).
    pub name: String,
    /// What it does, for the model to decide when to call it.
    #[serde(default)]
    pub description: String,
    /// The JSON schema of its arguments, `"type": "object"`.
    pub parameters: serde_json::Value,
    /// Strict function calling: the provider constrains the arguments to the schema.
    #[serde(default)]
    pub strict: bool,
}

impl Tool {
    /// A tool that is not strict.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: serde_json::Value,
    ) -> Self {
        Tool {
            name: name.into(),
            description: description.into(),
            parameters,
            strict: false,
        }
    }

    /// Whether `parameters` compiles as a JSON schema, for checking a catalogue at load time
    /// rather than at the first call.
    pub fn check_schema(&self) -> Result<(), Error> {
        VALIDATORS
            .get(&self.parameters)
            .map(drop)
            .map_err(|err| Error::Config(format!("tool {}: {err}", self.name)))
    }

    /// Parses `arguments` (the raw JSON text a model sent) and validates it against
    /// `parameters`. The error is short and says what is wrong, fit to send back to the model
    /// as the tool's result so that it can try again. Empty text counts as `{}`: some servers
    /// send nothing for a function without parameters.
    pub fn check_arguments(&self, arguments: &str) -> Result<serde_json::Value, String> {
        let text = if arguments.trim().is_empty() {
            "{}"
        } else {
            arguments
        };
        let value: serde_json::Value = serde_json::from_str(text).map_err(|err| {
            format!(
                "the arguments of {} are not valid JSON ({err}): {}",
                self.name,
                clip(arguments, MAX_QUOTED_ARGUMENTS)
            )
        })?;
        let validator = VALIDATORS.get(&self.parameters).map_err(|_| {
            // A catalogue bug, not the model's: say so rather than blame the arguments.
            format!(
                "{} cannot be called: its parameter schema is invalid",
                self.name
            )
        })?;
        explain(&validator, &value)
            .map(|()| value)
            .map_err(|detail| format!("invalid arguments for {}: {detail}", self.name))
    }
}

/// Which tool the model must use (OpenAI `tool_choice`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ToolChoice {
    /// The model decides (the provider's default when tools are offered).
    Auto,
    /// No tool: a text answer.
    None,
    /// At least one tool call.
    Required,
    /// A call of this function.
    Function(String),
}

/// Written as OpenAI writes it: `"auto"`, `"none"`, `"required"` or
/// `{"type": "function", "function": {"name": ...}}`.
impl Serialize for ToolChoice {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ToolChoice::Auto => serializer.serialize_str("auto"),
            ToolChoice::None => serializer.serialize_str("none"),
            ToolChoice::Required => serializer.serialize_str("required"),
            ToolChoice::Function(name) => serde_json::json!({
                "type": "function",
                "function": {"name": name},
            })
            .serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for ToolChoice {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Named {
            name: String,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Word(String),
            Function { function: Named },
        }
        match Form::deserialize(deserializer)? {
            Form::Word(word) => match word.as_str() {
                "auto" => Ok(ToolChoice::Auto),
                "none" => Ok(ToolChoice::None),
                "required" => Ok(ToolChoice::Required),
                other => Err(serde::de::Error::custom(format!(
                    "unknown tool_choice {other:?}: expected auto, none or required"
                ))),
            },
            Form::Function { function } => Ok(ToolChoice::Function(function.name)),
        }
    }
}

/// A call the model made: which function, with what arguments.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id of the call (`call_...`); the tool message answering it repeats it.
    pub id: String,
    /// The function's name.
    pub name: String,
    /// The arguments as the model wrote them: JSON text, not yet checked
    /// ([`Tool::check_arguments`]).
    pub arguments: String,
}

impl ToolCall {
    /// A call of `name` with `arguments` (raw JSON text).
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }
}

/// At most `max` characters of `text`, marked when cut.
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

    fn search() -> Tool {
        Tool::new(
            "search_memory",
            "Searches what the system remembers.",
            json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "minLength": 1},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 20}
                },
                "required": ["query"],
                "additionalProperties": false
            }),
        )
    }

    #[test]
    fn valid_arguments_parse() {
        let tool = search();
        assert_eq!(
            tool.check_arguments(r#"{"query": "rail passes", "limit": 3}"#),
            Ok(json!({"query": "rail passes", "limit": 3}))
        );
        let open = Tool::new("ping", "", json!({"type": "object"}));
        assert_eq!(open.check_arguments(""), Ok(json!({})));
        assert!(tool.check_schema().is_ok());
    }

    #[test]
    fn invalid_arguments_say_what_is_wrong() {
        let tool = search();
        let missing = tool.check_arguments("{}").unwrap_err();
        assert!(
            missing.starts_with("invalid arguments for search_memory:")
                && missing.contains("\"query\" is a required property"),
            "{missing}"
        );
        let wrong = tool
            .check_arguments(r#"{"query": 7, "limit": "many", "extra": true}"#)
            .unwrap_err();
        assert!(
            wrong.contains("at /query") && wrong.contains("at /limit"),
            "{wrong}"
        );
        assert!(wrong.contains("not of type \"string\""), "{wrong}");
        assert!(wrong.contains("extra"), "{wrong}");
        let broken = tool.check_arguments("{\"query\": ").unwrap_err();
        assert!(
            broken.starts_with("the arguments of search_memory are not valid JSON"),
            "{broken}"
        );
        // Whatever the model sent, what goes back to it stays short.
        let long = format!("{{\"query\": \"{}", "x".repeat(10_000));
        assert!(tool.check_arguments(&long).unwrap_err().len() < 400);
        let many: serde_json::Map<String, serde_json::Value> =
            (0..50).map(|i| (format!("k{i}"), json!(i))).collect();
        let detail = tool
            .check_arguments(&serde_json::Value::Object(many).to_string())
            .unwrap_err();
        assert!(detail.len() <= 1100, "{}", detail.len());
    }

    #[test]
    fn a_broken_schema_is_the_catalogue_s_fault() {
        let tool = Tool::new("broken", "", json!({"type": 12}));
        assert!(matches!(tool.check_schema(), Err(Error::Config(_))));
        let said = tool.check_arguments("{}").unwrap_err();
        assert!(said.contains("parameter schema is invalid"), "{said}");
    }

    #[test]
    fn tool_choice_reads_and_writes_the_wire_form() {
        let cases = [
            (ToolChoice::Auto, json!("auto")),
            (ToolChoice::None, json!("none")),
            (ToolChoice::Required, json!("required")),
            (
                ToolChoice::Function("search_memory".into()),
                json!({"type": "function", "function": {"name": "search_memory"}}),
            ),
        ];
        for (choice, wire) in cases {
            assert_eq!(serde_json::to_value(&choice).unwrap(), wire);
            assert_eq!(serde_json::from_value::<ToolChoice>(wire).unwrap(), choice);
        }
        assert!(serde_json::from_value::<ToolChoice>(json!("sometimes")).is_err());
    }
}
