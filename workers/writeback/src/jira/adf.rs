//! The Jira comment: the triage note as an Atlassian Document Format document.
//!
//! Jira refuses empty text nodes, so every node is built from non-empty text only.

use serde_json::{Value, json};

use crate::note::{Marker, ReplyMode, TITLE, TriageNote};

/// A neutral grey, so the marker paragraph stays out of the way.
const MARKER_COLOR: &str = "#97a0af";

/// The comment body: `{"version": 1, "type": "doc", "content": [...]}`.
pub(crate) fn document(note: &TriageNote<'_>) -> Value {
    let mut content = Vec::new();
    if note.reply == ReplyMode::Posted
        && let Some(reply) = note.reply_text()
    {
        content.extend(paragraphs(reply));
        content.push(json!({"type": "rule"}));
    }
    content.push(paragraph(vec![strong(TITLE)]));
    let items: Vec<Value> = note
        .facts()
        .into_iter()
        .map(|(label, value)| {
            json!({
                "type": "listItem",
                "content": [paragraph(vec![strong(&format!("{label}: ")), text_node(&value)])],
            })
        })
        .collect();
    if !items.is_empty() {
        content.push(json!({"type": "bulletList", "content": items}));
    }
    if let Some(summary) = note.summary() {
        content.push(paragraph(vec![strong("Summary")]));
        content.extend(paragraphs(summary));
    }
    if note.reply == ReplyMode::Draft
        && let Some(reply) = note.reply_text()
    {
        content.push(paragraph(vec![strong(note.reply_heading())]));
        content.extend(paragraphs(reply));
    }
    content.push(paragraph(vec![with_marks(
        &note.provenance(),
        json!([{"type": "em"}]),
    )]));
    content.push(paragraph(vec![with_marks(
        &note.marker.bracketed(),
        json!([{"type": "textColor", "attrs": {"color": MARKER_COLOR}}]),
    )]));
    json!({"version": 1, "type": "doc", "content": content})
}

/// What an agent's action posts (a comment, a new issue's description): its text, the
/// signature in italics, and the marker in grey, as the triage note ends.
pub(crate) fn action_document(text: Option<&str>, signature: &str, marker: &Marker) -> Value {
    let mut content = text.map(paragraphs).unwrap_or_default();
    content.push(paragraph(vec![with_marks(
        signature,
        json!([{"type": "em"}]),
    )]));
    content.push(paragraph(vec![with_marks(
        &marker.bracketed(),
        json!([{"type": "textColor", "attrs": {"color": MARKER_COLOR}}]),
    )]));
    json!({"version": 1, "type": "doc", "content": content})
}

/// Every text node of an ADF value, joined by newlines: what the marker is searched in.
pub(crate) fn plain_text(value: &Value) -> String {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(object) => {
                if object.get("type").and_then(Value::as_str) == Some("text")
                    && let Some(text) = object.get("text").and_then(Value::as_str)
                {
                    out.push(text.to_string());
                }
                if let Some(content) = object.get("content") {
                    walk(content, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            // A body read through an older API arrives as a plain string.
            Value::String(text) => out.push(text.clone()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut out);
    out.join("\n")
}

/// Paragraphs split at blank lines; single line breaks become `hardBreak` nodes.
fn paragraphs(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut nodes = Vec::new();
        for line in block
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.trim().is_empty())
        {
            if !nodes.is_empty() {
                nodes.push(json!({"type": "hardBreak"}));
            }
            nodes.push(text_node(line));
        }
        if !nodes.is_empty() {
            out.push(paragraph(nodes));
        }
    }
    out
}

fn paragraph(content: Vec<Value>) -> Value {
    json!({"type": "paragraph", "content": content})
}

fn text_node(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

fn strong(text: &str) -> Value {
    with_marks(text, json!([{"type": "strong"}]))
}

fn with_marks(text: &str, marks: Value) -> Value {
    json!({"type": "text", "text": text, "marks": marks})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_keep_line_breaks_and_drop_blank_lines() {
        let out = paragraphs("Hello,\nthanks.\n\n\n\nBye");
        assert_eq!(
            out,
            vec![
                json!({"type": "paragraph", "content": [
                    {"type": "text", "text": "Hello,"},
                    {"type": "hardBreak"},
                    {"type": "text", "text": "thanks."}
                ]}),
                json!({"type": "paragraph", "content": [{"type": "text", "text": "Bye"}]}),
            ]
        );
        assert!(paragraphs("  \n ").is_empty(), "no empty text nodes");
    }

    #[test]
    fn plain_text_walks_every_text_node() {
        let doc = json!({"type": "doc", "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "a"}]},
            {"type": "bulletList", "content": [{"type": "listItem", "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "[m]"}]}
            ]}]}
        ]});
        assert_eq!(plain_text(&doc), "a\n[m]");
        assert_eq!(plain_text(&json!("wiki text")), "wiki text");
    }
}
