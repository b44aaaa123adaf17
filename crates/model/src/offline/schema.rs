//! Walks a JSON schema and builds a value that validates against it, filling each field from
//! the text's analysis according to the field's name.

use serde_json::{Map, Value, json};

use super::text::{Analysis, truncate_words};

/// Nesting beyond this gives `null` (a recursive `$ref` would otherwise never end).
const MAX_DEPTH: usize = 16;

/// Keywords put in a label-like array when the schema does not bound it.
const DEFAULT_KEYWORDS: usize = 5;

/// Builds a value for `schema` (whose `$ref`s resolve against `root`).
pub fn generate(schema: &Value, root: &Value, name: &str, text: &Analysis) -> Value {
    generate_at(schema, root, name, text, 0)
}

fn generate_at(schema: &Value, root: &Value, name: &str, text: &Analysis, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    let Some(object) = schema.as_object() else {
        // `true` or `{}`: anything goes.
        return Value::String(text.summary(80));
    };
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        let target = reference
            .strip_prefix('#')
            .and_then(|pointer| root.pointer(pointer));
        return match target {
            Some(target) => generate_at(target, root, name, text, depth + 1),
            None => Value::Null,
        };
    }
    if let Some(constant) = object.get("const") {
        return constant.clone();
    }
    if let Some(values) = object.get("enum").and_then(Value::as_array) {
        return pick_enum(values, name, text);
    }
    for combinator in ["anyOf", "oneOf", "allOf"] {
        if let Some(branches) = object.get(combinator).and_then(Value::as_array) {
            let branch = branches
                .iter()
                .find(|branch| branch.get("type").and_then(Value::as_str) != Some("null"))
                .or(branches.first());
            if let Some(branch) = branch {
                return generate_at(branch, root, name, text, depth + 1);
            }
        }
    }
    match schema_type(object) {
        "object" => generate_object(object, root, text, depth),
        "array" => generate_array(object, root, name, text, depth),
        "string" => generate_string(object, name, text),
        "integer" => generate_number(object, name, text, true),
        "number" => generate_number(object, name, text, false),
        "boolean" => Value::Bool(false),
        "null" => Value::Null,
        _ => Value::String(text.summary(80)),
    }
}

/// The schema's type: the first non-null one of a list, or inferred from its keywords.
fn schema_type(object: &Map<String, Value>) -> &str {
    match object.get("type") {
        Some(Value::String(kind)) => kind,
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|kind| *kind != "null")
            .unwrap_or("null"),
        _ if object.contains_key("properties") => "object",
        _ if object.contains_key("items") => "array",
        _ => "any",
    }
}

/// Every declared property (strict schemas require them all; optional ones do no harm).
fn generate_object(
    object: &Map<String, Value>,
    root: &Value,
    text: &Analysis,
    depth: usize,
) -> Value {
    let mut out = Map::new();
    if let Some(properties) = object.get("properties").and_then(Value::as_object) {
        for (property, schema) in properties {
            out.insert(
                property.clone(),
                generate_at(schema, root, property, text, depth + 1),
            );
        }
    }
    Value::Object(out)
}

fn generate_array(
    object: &Map<String, Value>,
    root: &Value,
    name: &str,
    text: &Analysis,
    depth: usize,
) -> Value {
    let min = object.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
    let max = object
        .get("maxItems")
        .and_then(Value::as_u64)
        .map(|max| max as usize);
    let items = object.get("items").unwrap_or(&Value::Null);
    let item_enum = items.get("enum").and_then(Value::as_array);
    let item_is_string = items.get("type").and_then(Value::as_str) == Some("string");
    let mut out: Vec<Value> = if let Some(values) = item_enum {
        // Enum items: those the text points to.
        let wanted = pick_enum(values, name, text);
        vec![wanted]
    } else if item_is_string && is(name, &["label", "tag", "keyword", "topic"]) {
        let count = max
            .unwrap_or(DEFAULT_KEYWORDS)
            .min(DEFAULT_KEYWORDS)
            .max(min);
        text.keywords(count)
            .into_iter()
            .map(Value::String)
            .collect()
    } else {
        Vec::new()
    };
    let unique = object
        .get("uniqueItems")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut filler = 0;
    while out.len() < min {
        let mut item = generate_at(items, root, name, text, depth + 1);
        if unique && out.contains(&item) {
            // Distinct fillers for a set of strings; other item kinds are rare enough.
            filler += 1;
            item = Value::String(format!("{}-{filler}", item.as_str().unwrap_or("item")));
        }
        out.push(item);
    }
    if let Some(max) = max {
        out.truncate(max);
    }
    Value::Array(out)
}

fn generate_string(object: &Map<String, Value>, name: &str, text: &Analysis) -> Value {
    let mut value = match object.get("format").and_then(Value::as_str) {
        Some("date-time") => "1970-01-01T00:00:00Z".to_string(),
        Some("date") => "1970-01-01".to_string(),
        Some("email") => "support@example.com".to_string(),
        Some("uri") | Some("url") => "https://example.com/".to_string(),
        Some("uuid") => "00000000-0000-4000-8000-000000000000".to_string(),
        _ => string_for(name, text),
    };
    let max = object
        .get("maxLength")
        .and_then(Value::as_u64)
        .map(|max| max as usize);
    if let Some(max) = max {
        value = value.chars().take(max).collect();
    }
    let min = object.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    while value.chars().count() < min {
        value.push('.');
    }
    Value::String(value)
}

/// A string chosen by the field's name.
fn string_for(name: &str, text: &Analysis) -> String {
    if is(name, &["summary", "abstract", "tldr", "synopsis"]) {
        text.summary(200)
    } else if is(name, &["reply", "draft", "response", "answer", "message"]) {
        draft(text)
    } else if is(name, &["language", "lang", "locale"]) {
        text.language().to_string()
    } else if is(name, &["title", "subject", "headline"]) {
        text.title.clone()
    } else if is(
        name,
        &["reason", "rationale", "explanation", "justification"],
    ) {
        explanation(text)
    } else if is(name, &["priority", "severity", "urgency"]) {
        text.level_label().to_string()
    } else if is(name, &["sentiment", "tone", "mood"]) {
        text.sentiment_label().to_string()
    } else if is(name, &["category", "kind", "type", "topic", "class"]) {
        text.category_label().to_string()
    } else {
        truncate_words(&text.summary(200), 80)
    }
}

/// A polite templated reply that names the ticket.
fn draft(text: &Analysis) -> String {
    let title = if text.title.is_empty() {
        "your request"
    } else {
        text.title.as_str()
    };
    format!(
        "Hello,\n\nThank you for reaching out about \"{title}\". We have logged it as a {} request \
         with {} priority, and our team is looking into it. We will update you as soon as we \
         know more.\n\nBest regards,\nSupport",
        text.category_label(),
        text.level_label(),
    )
}

/// Which words drove the answer.
fn explanation(text: &Analysis) -> String {
    let signals = text.signals();
    if signals.is_empty() {
        "Offline heuristics: no strong signals in the text.".to_string()
    } else {
        format!("Offline heuristics: matched {}.", signals.join(", "))
    }
}

/// Numbers: a confidence from the signal count, otherwise the smallest allowed value.
fn generate_number(
    object: &Map<String, Value>,
    name: &str,
    text: &Analysis,
    integer: bool,
) -> Value {
    let minimum = object.get("minimum").and_then(Value::as_f64);
    let maximum = object.get("maximum").and_then(Value::as_f64);
    let exclusive_min = object.get("exclusiveMinimum").and_then(Value::as_f64);
    let exclusive_max = object.get("exclusiveMaximum").and_then(Value::as_f64);
    let mut value = if is(name, &["confidence", "score", "probability", "certainty"]) {
        let confidence = 0.5 + 0.1 * text.signal_count().min(4) as f64;
        // A percentage scale when the schema allows values above 1.
        if maximum.is_some_and(|max| max > 1.0) {
            confidence * 100.0
        } else {
            confidence
        }
    } else {
        minimum.or(exclusive_min).unwrap_or(0.0)
    };
    if integer {
        value = value.round();
    }
    let step = if integer { 1.0 } else { 0.001 };
    if let Some(min) = minimum {
        value = value.max(min);
    }
    if let Some(min) = exclusive_min {
        value = value.max(min + step);
    }
    if let Some(max) = maximum {
        value = value.min(max);
    }
    if let Some(max) = exclusive_max {
        value = value.min(max - step);
    }
    if integer {
        json!(value.round() as i64)
    } else {
        json!((value * 1000.0).round() / 1000.0)
    }
}

/// An enum value chosen by the field's name.
fn pick_enum(values: &[Value], name: &str, text: &Analysis) -> Value {
    let strings: Vec<String> = values
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    if strings.len() != values.len() {
        // Mixed or non-string enums: the first is as good as any.
        return values.first().cloned().unwrap_or(Value::Null);
    }
    let picked = if is(name, &["priority", "severity", "urgency", "impact"]) {
        text.pick_level(&strings)
    } else if is(name, &["sentiment", "tone", "mood"]) {
        text.pick_sentiment(&strings)
    } else if is(name, &["language", "lang", "locale"]) {
        let language = text.language();
        strings
            .iter()
            .find(|v| v.as_str() == language)
            .or(strings.first())
    } else {
        // Categories, and any other enum: the value the text points to.
        text.pick_category(&strings)
    };
    picked.map_or(Value::Null, |value| Value::String(value.clone()))
}

/// Whether the field name contains one of `parts` (case-insensitive).
fn is(name: &str, parts: &[&str]) -> bool {
    let name = name.to_ascii_lowercase();
    parts.iter().any(|part| name.contains(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_a_ticket_schema_from_the_text() {
        let schema = json!({
            "type": "object",
            "properties": {
                "category": {"type": "string", "enum": ["bug", "billing", "access", "other"]},
                "priority": {"type": "string", "enum": ["low", "medium", "high", "critical"]},
                "sentiment": {"type": "string", "enum": ["negative", "neutral", "positive"]},
                "summary": {"type": "string"},
                "suggested_reply": {"type": "string"},
                "labels": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "needs_human": {"type": "boolean"},
                "related": {"type": "array", "items": {"$ref": "#/$defs/ref"}},
                "meta": {"$ref": "#/$defs/meta"}
            },
            "$defs": {
                "ref": {"type": "string"},
                "meta": {"type": "object", "properties": {"language": {"type": "string"}}}
            }
        });
        let text = Analysis::of(
            "Title: Charged twice\nDescription: I was charged twice for my invoice. This is unacceptable, refund me.",
        );
        let value = generate(&schema, &schema, "", &text);
        assert_eq!(value["category"], "billing");
        assert_eq!(value["sentiment"], "negative");
        assert_eq!(
            value["summary"],
            "I was charged twice for my invoice. This is unacceptable, refund me."
        );
        assert!(
            value["suggested_reply"]
                .as_str()
                .unwrap()
                .contains("\"Charged twice\"")
        );
        assert_eq!(value["labels"].as_array().unwrap().len(), 3);
        let confidence = value["confidence"].as_f64().unwrap();
        assert!((0.5..=0.9).contains(&confidence));
        assert_eq!(value["needs_human"], false);
        assert_eq!(value["related"], json!([]));
        assert_eq!(value["meta"]["language"], "en");
        assert!(jsonschema::is_valid(&schema, &value));
    }

    #[test]
    fn respects_bounds() {
        let schema = json!({
            "type": "object",
            "properties": {
                "score": {"type": "integer", "minimum": 1, "maximum": 5},
                "code": {"type": "string", "minLength": 3, "maxLength": 4},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2, "uniqueItems": true},
                "kind": {"const": "ticket"},
                "maybe": {"type": ["null", "string"]},
                "one": {"anyOf": [{"type": "null"}, {"type": "integer", "exclusiveMinimum": 0}]}
            },
            "required": ["score", "code", "tags", "kind", "maybe", "one"],
            "additionalProperties": false
        });
        let value = generate(&schema, &schema, "", &Analysis::of("ok"));
        assert!(jsonschema::is_valid(&schema, &value), "{value}");
    }
}
