//! Atlassian Document Format to plain text.
//!
//! Jira REST v3 (and some webhooks) carry descriptions as ADF documents: a tree of block nodes
//! (paragraph, heading, lists, code blocks, quotes, tables, panels) holding inline nodes (text,
//! hardBreak, mention, emoji, links). Agents read text, so the tree is flattened: blocks are
//! separated by a blank line, list items start with `- ` or `N. ` and nest by two spaces,
//! code keeps its lines, quotes get `> `. Marks (bold, links) are dropped, unknown nodes are
//! walked for their content, so a new node type loses its styling, never its text.
//!
//! Depth is bounded by serde_json's recursion limit (128), so a hostile document cannot
//! overflow the stack here.

use serde_json::Value;

/// The text of an ADF document (or of any ADF node).
pub fn to_text(node: &Value) -> String {
    match node_type(node) {
        "doc" => blocks(children(node), 0, "\n\n"),
        _ => block(node, 0),
    }
}

/// Whether a JSON value looks like an ADF document.
pub fn is_document(value: &Value) -> bool {
    node_type(value) == "doc" && value.get("content").is_some_and(Value::is_array)
}

fn node_type(node: &Value) -> &str {
    node.get("type").and_then(Value::as_str).unwrap_or("")
}

fn children(node: &Value) -> &[Value] {
    node.get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn attr<'a>(node: &'a Value, name: &str) -> Option<&'a str> {
    node.pointer(&format!("/attrs/{name}"))
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
}

/// Block nodes, rendered and joined; empty blocks are skipped.
fn blocks(nodes: &[Value], depth: usize, separator: &str) -> String {
    nodes
        .iter()
        .map(|node| block(node, depth))
        .filter(|text| !text.is_empty())
        .collect::<Vec<_>>()
        .join(separator)
}

fn block(node: &Value, depth: usize) -> String {
    match node_type(node) {
        "paragraph" | "heading" | "codeBlock" => inline(children(node)),
        "bulletList" => list(node, depth, |_| "- ".to_string()),
        "orderedList" => {
            let start = node
                .pointer("/attrs/order")
                .and_then(Value::as_u64)
                .unwrap_or(1);
            // `order` is the sender's number: at u64::MAX the next item must not overflow.
            list(node, depth, |index| {
                format!("{}. ", start.saturating_add(index as u64))
            })
        }
        "blockquote" => blocks(children(node), depth, "\n\n")
            .lines()
            .map(|line| format!("> {line}"))
            .collect::<Vec<_>>()
            .join("\n"),
        "rule" => "---".to_string(),
        "table" => children(node)
            .iter()
            .map(|row| {
                children(row)
                    .iter()
                    .map(|cell| blocks(children(cell), depth, " "))
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
            .collect::<Vec<_>>()
            .join("\n"),
        // Inline nodes where a block was expected: render them rather than lose them.
        "text" | "hardBreak" | "mention" | "emoji" | "inlineCard" | "date" | "status" => {
            inline(std::slice::from_ref(node))
        }
        // doc, panel, expand, layouts, media and anything new: their content, as blocks.
        _ => blocks(children(node), depth, "\n\n"),
    }
}

/// A list: each item prefixed by `marker(index)`, indented by its depth.
fn list(node: &Value, depth: usize, marker: impl Fn(usize) -> String) -> String {
    let indent = "  ".repeat(depth);
    children(node)
        .iter()
        .enumerate()
        .map(|(index, item)| format!("{indent}{}{}", marker(index), list_item(item, depth)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A list item: its paragraphs on one line each, nested lists one level deeper.
fn list_item(item: &Value, depth: usize) -> String {
    let mut lines: Vec<String> = Vec::new();
    for child in children(item) {
        let nested = matches!(node_type(child), "bulletList" | "orderedList");
        let text = block(child, if nested { depth + 1 } else { depth });
        if !text.is_empty() {
            lines.push(text);
        }
    }
    lines.join("\n")
}

/// Inline nodes, concatenated.
fn inline(nodes: &[Value]) -> String {
    let mut out = String::new();
    for node in nodes {
        match node_type(node) {
            "text" => out.push_str(node.get("text").and_then(Value::as_str).unwrap_or("")),
            "hardBreak" => out.push('\n'),
            "mention" => match attr(node, "text") {
                Some(text) => out.push_str(text),
                None => {
                    out.push('@');
                    out.push_str(attr(node, "id").unwrap_or("someone"));
                }
            },
            "emoji" => out.push_str(
                attr(node, "text")
                    .or_else(|| attr(node, "shortName"))
                    .unwrap_or(""),
            ),
            "inlineCard" => out.push_str(attr(node, "url").unwrap_or("")),
            "date" => out.push_str(attr(node, "timestamp").unwrap_or("")),
            "status" => out.push_str(attr(node, "text").unwrap_or("")),
            _ => out.push_str(&inline(children(node))),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(value: &str) -> Value {
        json!({"type": "text", "text": value})
    }

    fn paragraph(content: Vec<Value>) -> Value {
        json!({"type": "paragraph", "content": content})
    }

    fn item(content: Vec<Value>) -> Value {
        json!({"type": "listItem", "content": content})
    }

    #[test]
    fn paragraphs_breaks_mentions_and_marks() {
        let doc = json!({"type": "doc", "version": 1, "content": [
            {"type": "heading", "attrs": {"level": 2}, "content": [text("Login fails")]},
            paragraph(vec![
                text("Since "),
                json!({"type": "text", "text": "Monday", "marks": [{"type": "strong"}]}),
                json!({"type": "hardBreak"}),
                text("cc "),
                json!({"type": "mention", "attrs": {"id": "5b10ac8d", "text": "@Ana Lee"}}),
                text(" "),
                json!({"type": "emoji", "attrs": {"shortName": ":fire:", "text": "🔥"}}),
            ]),
            paragraph(vec![]),
        ]});
        assert_eq!(to_text(&doc), "Login fails\n\nSince Monday\ncc @Ana Lee 🔥");
        assert!(is_document(&doc));
        assert!(!is_document(&json!("plain")));
    }

    #[test]
    fn lists_nest_and_ordered_lists_count_from_their_start() {
        let doc = json!({"type": "doc", "content": [
            {"type": "bulletList", "content": [
                item(vec![paragraph(vec![text("one")])]),
                item(vec![
                    paragraph(vec![text("two")]),
                    json!({"type": "orderedList", "attrs": {"order": 3}, "content": [
                        item(vec![paragraph(vec![text("three")])]),
                        item(vec![paragraph(vec![text("four")])]),
                    ]}),
                ]),
            ]},
        ]});
        assert_eq!(to_text(&doc), "- one\n- two\n  3. three\n  4. four");
    }

    #[test]
    fn code_quotes_rules_tables_and_unknown_nodes_keep_their_text() {
        let doc = json!({"type": "doc", "content": [
            {"type": "codeBlock", "attrs": {"language": "sh"}, "content": [text("ls -l\nexit 1")]},
            {"type": "blockquote", "content": [paragraph(vec![text("quoted")])]},
            {"type": "rule"},
            {"type": "table", "content": [
                {"type": "tableRow", "content": [
                    {"type": "tableHeader", "content": [paragraph(vec![text("key")])]},
                    {"type": "tableHeader", "content": [paragraph(vec![text("value")])]},
                ]},
            ]},
            {"type": "panel", "attrs": {"panelType": "info"}, "content": [
                paragraph(vec![
                    text("in a panel "),
                    json!({"type": "inlineCard", "attrs": {"url": "https://x.test/1"}}),
                ]),
            ]},
            {"type": "someFutureNode", "content": [paragraph(vec![text("still here")])]},
        ]});
        assert_eq!(
            to_text(&doc),
            "ls -l\nexit 1\n\n> quoted\n\n---\n\nkey | value\n\nin a panel https://x.test/1\n\nstill here"
        );
    }

    /// Found by the property tests: `start + index` overflowed (a panic in debug builds, a
    /// wrap to 0 in release).
    #[test]
    fn an_ordered_list_may_start_at_the_largest_number() {
        let doc = json!({"type": "doc", "content": [
            {"type": "orderedList", "attrs": {"order": u64::MAX}, "content": [
                item(vec![paragraph(vec![text("last")])]),
                item(vec![paragraph(vec![text("past it")])]),
            ]},
        ]});
        assert_eq!(
            to_text(&doc),
            format!("{max}. last\n{max}. past it", max = u64::MAX)
        );
    }

    #[test]
    fn garbage_is_empty_not_a_panic() {
        for value in [
            json!(null),
            json!(42),
            json!({"type": "doc", "content": "nope"}),
            json!({"type": "doc", "content": [1, "two", {"type": 3}]}),
        ] {
            assert_eq!(to_text(&value), "", "{value}");
        }
    }
}
