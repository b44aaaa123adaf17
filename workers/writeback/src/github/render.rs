//! The GitHub comment, in Markdown. Issue comments are public: a draft reply is left out
//! entirely, and a posted reply opens the comment, above the triage note.

use crate::note::{ReplyMode, TITLE, TriageNote};

/// The comment body, ending with the marker as an HTML comment (invisible when rendered).
pub(crate) fn comment(note: &TriageNote<'_>) -> String {
    let mut blocks = Vec::new();
    if note.reply == ReplyMode::Posted
        && let Some(reply) = note.reply_text()
    {
        blocks.push(reply.to_string());
        blocks.push("---".to_string());
    }
    blocks.push(format!("**{TITLE}**"));
    let facts: Vec<String> = note
        .facts()
        .into_iter()
        .map(|(label, value)| format!("- **{label}:** {value}"))
        .collect();
    if !facts.is_empty() {
        blocks.push(facts.join("\n"));
    }
    if let Some(summary) = note.summary() {
        blocks.push(format!("**Summary**\n\n{summary}"));
    }
    blocks.push(format!("<sub>{}</sub>", note.provenance()));
    blocks.push(marker_comment(note.marker.as_str()));
    blocks.join("\n\n")
}

/// `<!-- chatgptd:... -->`: what the comment listing is searched for.
pub(crate) fn marker_comment(marker: &str) -> String {
    format!("<!-- {marker} -->")
}
