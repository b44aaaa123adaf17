//! Step input templates: `{{ input.<field> }}` and `{{ steps.<id>.output }}`.
//!
//! Deliberately tiny: a tag is `{{`, a dotted path, `}}`, with optional spaces inside. No
//! filters, conditions or loops: a step's prompt is text with values dropped in, and
//! anything cleverer belongs in the agent's system prompt. Text outside tags is copied as
//! is, so JSON examples in a prompt (`{"a": 1}`) need no escaping; only `{{` opens a tag.
//!
//! Values render as text: strings as they are, `null` (an optional input left out) as
//! nothing, anything else as compact JSON.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::Error;

/// What a step template may refer to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    /// `{{ input }}` (the whole input, as JSON) or `{{ input.a.b }}`: the path below `input`.
    /// Numeric segments index arrays (`input.stops.0`).
    Input(Vec<String>),
    /// `{{ steps.<id>.output }}`: the output of an earlier step.
    StepOutput(String),
}

/// A piece of a parsed template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Segment {
    /// Text copied as is.
    Text(String),
    /// A tag: its dotted path, split.
    Tag(Vec<String>),
}

/// Renders a step's input template with the run's `input` and the `outputs` of the steps
/// done so far (step id -> output). A reference to a missing input field or to a step
/// without an output is an error naming it.
pub fn render(
    template: &str,
    input: &Value,
    outputs: &BTreeMap<String, String>,
) -> Result<String, Error> {
    let segments = parse(template)?;
    render_segments(&segments, |path| match step_reference(path)? {
        Reference::Input(field) => Ok(lookup(input, &field).map(to_text)),
        Reference::StepOutput(step) => Ok(outputs.get(&step).cloned()),
    })
}

/// The references of a step template, in order of appearance, or the first syntax error.
pub fn references(template: &str) -> Result<Vec<Reference>, Error> {
    let mut references = Vec::new();
    for segment in parse(template)? {
        if let Segment::Tag(path) = segment {
            references.push(step_reference(&path)?);
        }
    }
    Ok(references)
}

/// Splits a template into text and tags.
pub(crate) fn parse(template: &str) -> Result<Vec<Segment>, Error> {
    let mut segments = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            segments.push(Segment::Text(rest[..open].to_string()));
        }
        let after_open = &rest[open + 2..];
        let Some(close) = after_open.find("}}") else {
            return Err(syntax(format!(
                "`{{{{` without a closing `}}}}`: `{}`",
                excerpt(&rest[open..])
            )));
        };
        segments.push(Segment::Tag(parse_path(&after_open[..close])?));
        rest = &after_open[close + 2..];
    }
    if !rest.is_empty() {
        segments.push(Segment::Text(rest.to_string()));
    }
    Ok(segments)
}

/// Renders parsed segments; `resolve` maps a tag's path to its text, `Ok(None)` when the
/// context lacks it.
pub(crate) fn render_segments(
    segments: &[Segment],
    resolve: impl Fn(&[String]) -> Result<Option<String>, Error>,
) -> Result<String, Error> {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Text(text) => out.push_str(text),
            Segment::Tag(path) => match resolve(path)? {
                Some(text) => out.push_str(&text),
                None => {
                    return Err(Error::UnknownReference {
                        reference: path.join("."),
                    });
                }
            },
        }
    }
    Ok(out)
}

/// Reads `path` below `value`: object keys, and numeric segments as array indexes.
pub(crate) fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut current = value;
    for segment in path {
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// A value as template text.
pub(crate) fn to_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// What a step template's tag refers to.
fn step_reference(path: &[String]) -> Result<Reference, Error> {
    match path {
        [root, field @ ..] if root == "input" => Ok(Reference::Input(field.to_vec())),
        [root, step, output] if root == "steps" && output == "output" => {
            Ok(Reference::StepOutput(step.clone()))
        }
        [root, ..] if root == "steps" => Err(syntax(format!(
            "`{}`: a step exposes only `steps.<id>.output`",
            path.join(".")
        ))),
        _ => Err(syntax(format!(
            "`{}`: references start with `input` or `steps`",
            path.join(".")
        ))),
    }
}

fn parse_path(tag: &str) -> Result<Vec<String>, Error> {
    let reference = tag.trim();
    if reference.is_empty() {
        return Err(syntax("empty `{{ }}`".to_string()));
    }
    let path: Vec<String> = reference.split('.').map(str::to_string).collect();
    let valid_segment = |segment: &String| {
        !segment.is_empty()
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if !path.iter().all(valid_segment) {
        return Err(syntax(format!(
            "`{{{{{tag}}}}}` is not a dotted path of names (filters and expressions are not supported)"
        )));
    }
    Ok(path)
}

fn syntax(message: String) -> Error {
    Error::Template { message }
}

/// The start of `text`, for messages.
fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    let mut short: String = text.chars().take(MAX_CHARS).collect();
    if text.chars().count() > MAX_CHARS {
        short.push('…');
    }
    short.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn outputs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn renders_input_fields_nested_paths_and_step_outputs() {
        let input = json!({
            "topic": "night markets of Taipei",
            "trip": {"city": "Lisbon", "nights": 3, "stops": ["Alfama", "Belém"]},
            "budget": null,
        });
        let template = "Topic: {{ input.topic }} / {{input.trip.city}} for {{ input.trip.nights }} \
                        nights via {{ input.trip.stops.1 }}; budget [{{ input.budget }}]\n\
                        Draft:\n{{ steps.draft.output }}";
        let rendered = render(
            template,
            &input,
            &outputs(&[("draft", "Once upon a stall…")]),
        )
        .unwrap();
        assert_eq!(
            rendered,
            "Topic: night markets of Taipei / Lisbon for 3 nights via Belém; budget []\n\
             Draft:\nOnce upon a stall…"
        );
    }

    #[test]
    fn non_string_values_render_as_json() {
        let input = json!({"trip": {"city": "Lisbon", "stops": ["Alfama"]}});
        let rendered = render(
            "{{ input.trip }} {{ input.trip.stops }}",
            &input,
            &outputs(&[]),
        )
        .unwrap();
        assert_eq!(
            rendered,
            r#"{"city":"Lisbon","stops":["Alfama"]} ["Alfama"]"#
        );
        assert_eq!(
            render("{{ input }}", &json!({"a": 1}), &outputs(&[])).unwrap(),
            r#"{"a":1}"#
        );
    }

    #[test]
    fn text_with_single_braces_is_kept() {
        let template = r#"Answer as {"verdict": "..."} for {{ input.x }}."#;
        let rendered = render(template, &json!({"x": "y"}), &outputs(&[])).unwrap();
        assert_eq!(rendered, r#"Answer as {"verdict": "..."} for y."#);
    }

    #[test]
    fn unknown_references_are_errors_naming_them() {
        let input = json!({"topic": "x", "trip": {"city": "Lisbon"}});
        for (template, reference) in [
            ("{{ input.audience }}", "input.audience"),
            ("{{ input.trip.country }}", "input.trip.country"),
            ("{{ input.topic.length }}", "input.topic.length"),
            ("{{ steps.plan.output }}", "steps.plan.output"),
        ] {
            let err = render(template, &input, &outputs(&[])).unwrap_err();
            assert!(
                matches!(&err, Error::UnknownReference { reference: r } if r == reference),
                "{template}: {err}"
            );
            assert!(err.to_string().contains(reference), "{err}");
        }
    }

    #[test]
    fn syntax_errors() {
        for (template, expected) in [
            ("Hello {{ input.topic", "without a closing"),
            ("{{ }}", "empty"),
            ("{{ input.topic | upper }}", "not a dotted path"),
            ("{{ input..topic }}", "not a dotted path"),
            ("{{ topic }}", "start with `input` or `steps`"),
            ("{{ steps.plan.result }}", "only `steps.<id>.output`"),
        ] {
            let err = references(template).unwrap_err();
            assert!(matches!(err, Error::Template { .. }), "{template}: {err}");
            assert!(err.to_string().contains(expected), "{template}: {err}");
        }
    }

    #[test]
    fn lists_references() {
        let refs = references("{{ input.a.b }} {{ steps.x.output }} {{ input }}").unwrap();
        assert_eq!(
            refs,
            vec![
                Reference::Input(vec!["a".into(), "b".into()]),
                Reference::StepOutput("x".into()),
                Reference::Input(vec![]),
            ]
        );
    }
}
