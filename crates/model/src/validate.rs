//! Structured outputs: a reply's content must parse as JSON and validate against the
//! requested schema. Compiled validators are kept per schema, since workers send the same few
//! schemas over and over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonschema::Validator;

use crate::cache::canonical_json;
use crate::error::Error;

/// Validation errors quoted in a repair prompt or an error, at most.
const MAX_ERRORS: usize = 5;

/// The most characters of validation detail kept.
const MAX_DETAIL: usize = 1000;

/// Compiled validators by canonical schema text.
#[derive(Default)]
pub struct Validators {
    compiled: Mutex<HashMap<String, Arc<Validator>>>,
}

impl std::fmt::Debug for Validators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Validators")
    }
}

impl Validators {
    /// The validator of `schema`; a schema that does not compile is a configuration error.
    pub fn get(&self, schema: &serde_json::Value) -> Result<Arc<Validator>, Error> {
        let key = canonical_json(schema);
        let mut compiled = self
            .compiled
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(validator) = compiled.get(&key) {
            return Ok(validator.clone());
        }
        let validator = jsonschema::validator_for(schema)
            .map_err(|err| Error::Config(format!("invalid JSON schema: {err}")))?;
        let validator = Arc::new(validator);
        compiled.insert(key, validator.clone());
        Ok(validator)
    }
}

/// Parses `content` as JSON and validates it; the error says what is wrong, for a repair
/// prompt.
pub fn parse_and_validate(
    validator: &Validator,
    content: &str,
) -> Result<serde_json::Value, String> {
    let json: serde_json::Value = serde_json::from_str(strip_code_fence(content))
        .map_err(|err| format!("the reply is not valid JSON: {err}"))?;
    explain(validator, &json).map(|()| json)
}

/// What is wrong with `json`: at most [`MAX_ERRORS`] problems with where they are, in at
/// most [`MAX_DETAIL`] characters, so a model can be told without flooding its context.
pub fn explain(validator: &Validator, json: &serde_json::Value) -> Result<(), String> {
    let problems: Vec<String> = validator
        .iter_errors(json)
        .take(MAX_ERRORS)
        .map(|error| {
            let path = error.instance_path().to_string();
            let at = if path.is_empty() {
                "/".to_string()
            } else {
                path
            };
            format!("at {at}: {error}")
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    let detail = problems.join("; ");
    Err(detail.chars().take(MAX_DETAIL).collect())
}

/// Models without constrained decoding sometimes wrap JSON in a Markdown code fence.
fn strip_code_fence(content: &str) -> &str {
    let trimmed = content.trim();
    let Some(inner) = trimmed.strip_prefix("```") else {
        return trimmed;
    };
    let inner = inner.strip_prefix("json").unwrap_or(inner);
    inner.strip_suffix("```").unwrap_or(inner).trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validates_and_explains() {
        let validators = Validators::default();
        let schema = json!({
            "type": "object",
            "properties": {"category": {"type": "string", "enum": ["bug", "billing"]}},
            "required": ["category"],
            "additionalProperties": false
        });
        let validator = validators.get(&schema).unwrap();
        assert_eq!(
            parse_and_validate(&validator, r#"{"category":"bug"}"#).unwrap(),
            json!({"category": "bug"})
        );
        assert_eq!(
            parse_and_validate(&validator, "```json\n{\"category\":\"bug\"}\n```").unwrap(),
            json!({"category": "bug"})
        );
        let wrong = parse_and_validate(&validator, r#"{"category":"other"}"#).unwrap_err();
        assert!(wrong.contains("/category"), "{wrong}");
        let broken = parse_and_validate(&validator, "{nope").unwrap_err();
        assert!(broken.contains("not valid JSON"), "{broken}");
        assert!(validators.get(&json!({"type": 12})).is_err());
    }
}
