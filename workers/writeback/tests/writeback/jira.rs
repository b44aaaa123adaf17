//! Jira: the exact REST v3 calls, the ADF comment, labels, drafted and posted replies.

use base64::Engine;
use chatgptd_testkit::fake_trackers::{Api, JIRA_API_TOKEN, JIRA_EMAIL};
use serde_json::{Value, json};

use crate::support::{FOOTER, Harness, SUMMARY, jira_ticket, lines};

fn text(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

fn strong(text: &str) -> Value {
    json!({"type": "text", "text": text, "marks": [{"type": "strong"}]})
}

fn paragraph(content: Vec<Value>) -> Value {
    json!({"type": "paragraph", "content": content})
}

fn fact(label: &str, value: &str) -> Value {
    json!({"type": "listItem", "content": [paragraph(vec![strong(&format!("{label}: ")), text(value)])]})
}

/// The triage note's nodes, from the title to the summary.
fn note_nodes() -> Vec<Value> {
    vec![
        paragraph(vec![strong("chatgptd triage")]),
        json!({"type": "bulletList", "content": [
            fact("Category", "access"),
            fact("Suggested priority", "high"),
            fact("Sentiment", "negative"),
            fact("Language", "en"),
            fact("Confidence", "87%"),
            fact("Labels", "auth, needs triage"),
            fact("Related tickets", "PROJ-7"),
        ]}),
        paragraph(vec![strong("Summary")]),
        paragraph(vec![text(SUMMARY)]),
    ]
}

fn reply_nodes() -> Vec<Value> {
    vec![
        paragraph(vec![
            text("Hello,"),
            json!({"type": "hardBreak"}),
            text("thanks for reporting this. We are resetting your session now."),
        ]),
        paragraph(vec![text("Best regards")]),
    ]
}

fn footer_nodes() -> Vec<Value> {
    vec![
        paragraph(vec![
            json!({"type": "text", "text": FOOTER, "marks": [{"type": "em"}]}),
        ]),
        paragraph(vec![json!({
            "type": "text",
            "text": "[chatgptd:jira:10001:triage-v3]",
            "marks": [{"type": "textColor", "attrs": {"color": "#97a0af"}}]
        })]),
    ]
}

#[tokio::test]
async fn posts_an_internal_adf_comment_with_a_draft_reply_then_labels() {
    let harness = Harness::start().await;
    harness.process(&jira_ticket()).await.unwrap();

    let calls = harness.fake.calls_to(Api::Jira);
    assert_eq!(
        lines(&calls),
        vec![
            "GET /rest/api/3/issue/10001/comment",
            "POST /rest/api/3/issue/10001/comment",
            "PUT /rest/api/3/issue/10001",
        ]
    );
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{JIRA_EMAIL}:{JIRA_API_TOKEN}"));
    for call in &calls {
        assert_eq!(
            call.header("authorization"),
            Some(format!("Basic {auth}").as_str())
        );
        assert_eq!(call.header("accept"), Some("application/json"));
        assert!(
            call.header("user-agent")
                .unwrap()
                .starts_with("chatgptd-writeback/")
        );
    }
    assert_eq!(
        calls[0].query_pairs(),
        vec![
            ("orderBy", "-created"),
            ("startAt", "0"),
            ("maxResults", "100")
        ]
    );

    let mut content = note_nodes();
    content.push(paragraph(vec![strong(
        "Suggested reply (DRAFT, not sent to the customer)",
    )]));
    content.extend(reply_nodes());
    content.extend(footer_nodes());
    assert_eq!(
        calls[1].body,
        json!({
            "body": {"version": 1, "type": "doc", "content": content},
            "properties": [{"key": "sd.public.comment", "value": {"internal": true}}],
        })
    );
    assert_eq!(calls[1].header("content-type"), Some("application/json"));
    assert_eq!(calls[1].status, 201);
    assert_eq!(
        calls[2].body,
        json!({"update": {"labels": [{"add": "auth"}, {"add": "needs-triage"}]}}),
        "Jira labels cannot contain spaces"
    );
    assert_eq!(calls[2].status, 204);
    assert_eq!(
        harness.fake.jira_labels("PROJ-1"),
        vec!["auth", "needs-triage"]
    );
    assert_eq!(harness.fake.jira_comments("10001").len(), 1);
}

#[tokio::test]
async fn posted_replies_open_a_public_comment() {
    let mut harness = Harness::start().await;
    harness.options.jira.post_replies = true;
    harness.options.jira.add_labels = false;
    harness.process(&jira_ticket()).await.unwrap();

    let calls = harness.fake.calls_to(Api::Jira);
    assert_eq!(
        lines(&calls),
        vec![
            "GET /rest/api/3/issue/10001/comment",
            "POST /rest/api/3/issue/10001/comment",
        ],
        "no label edit when add_labels is off"
    );
    let mut content = reply_nodes();
    content.push(json!({"type": "rule"}));
    content.extend(note_nodes());
    content.extend(footer_nodes());
    assert_eq!(
        calls[1].body,
        json!({"body": {"version": 1, "type": "doc", "content": content}}),
        "no DRAFT heading, no internal flag"
    );
}

#[tokio::test]
async fn the_issue_key_serves_when_the_record_has_no_id() {
    let harness = Harness::start().await;
    let mut ticket = jira_ticket();
    ticket.ticket_id = String::new();
    ticket.labels.clear();
    ticket.suggested_reply = "  ".into();
    harness.process(&ticket).await.unwrap();
    let calls = harness.fake.calls_to(Api::Jira);
    assert_eq!(
        lines(&calls),
        vec![
            "GET /rest/api/3/issue/PROJ-1/comment",
            "POST /rest/api/3/issue/PROJ-1/comment",
        ],
        "no labels to add"
    );
    let body = calls[1].body.to_string();
    assert!(
        !body.contains("DRAFT"),
        "an empty reply is left out: {body}"
    );
    assert!(body.contains("[chatgptd:jira:PROJ-1:triage-v3]"));
}
