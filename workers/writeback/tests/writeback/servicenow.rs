//! ServiceNow: the exact Table API calls, work notes, and comments only when replies are
//! posted.

use base64::Engine;
use chatgptd_testkit::fake_trackers::{Api, SERVICENOW_PASSWORD, SERVICENOW_USER};
use serde_json::json;

use crate::support::{FOOTER, Harness, SUMMARY, SYS_ID, lines, servicenow_ticket};

fn note(reply_section: &str) -> String {
    format!(
        "chatgptd triage\n\
         - Category: access\n\
         - Suggested priority: high\n\
         - Sentiment: negative\n\
         - Language: en\n\
         - Confidence: 87%\n\
         - Labels: auth, needs triage\n\
         - Related tickets: PROJ-7\n\
         \n\
         Summary:\n\
         {SUMMARY}\n\
         \n\
         {reply_section}\n\
         \n\
         {FOOTER}\n\
         [chatgptd:servicenow:{SYS_ID}:triage-v3]"
    )
}

#[tokio::test]
async fn the_draft_reply_goes_into_private_work_notes_only() {
    let harness = Harness::start().await;
    harness.process(&servicenow_ticket()).await.unwrap();

    let calls = harness.fake.calls_to(Api::ServiceNow);
    let path = format!("/api/now/table/incident/{SYS_ID}");
    assert_eq!(
        lines(&calls),
        vec![format!("GET {path}"), format!("PATCH {path}")]
    );
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{SERVICENOW_USER}:{SERVICENOW_PASSWORD}"));
    for call in &calls {
        assert_eq!(
            call.header("authorization"),
            Some(format!("Basic {auth}").as_str())
        );
        assert_eq!(call.header("accept"), Some("application/json"));
    }
    assert_eq!(calls[0].query_param("sysparm_fields"), Some("work_notes"));
    assert_eq!(calls[0].query_param("sysparm_display_value"), Some("true"));

    let draft = "Suggested reply (DRAFT, not sent to the customer):\n\
                 Hello,\nthanks for reporting this. We are resetting your session now.\n\nBest regards";
    assert_eq!(
        calls[1].body,
        json!({"work_notes": note(draft)}),
        "no comments field"
    );
    assert_eq!(calls[1].status, 200);
    let journal = harness.fake.servicenow_journal(SYS_ID);
    assert_eq!(journal, vec![("work_notes".to_string(), note(draft))]);
}

#[tokio::test]
async fn posted_replies_also_go_to_the_customer_visible_comments() {
    let mut harness = Harness::start().await;
    harness.options.servicenow.post_replies = true;
    harness.process(&servicenow_ticket()).await.unwrap();

    let calls = harness.fake.calls_to(Api::ServiceNow);
    assert_eq!(calls.len(), 2);
    let pointer = "Reply sent to the customer: see Additional comments.";
    assert_eq!(
        calls[1].body,
        json!({
            "work_notes": note(pointer),
            "comments": "Hello,\nthanks for reporting this. We are resetting your session now.\n\nBest regards",
        })
    );
    let mut fields: Vec<String> = harness
        .fake
        .servicenow_journal(SYS_ID)
        .into_iter()
        .map(|(field, _)| field)
        .collect();
    fields.sort();
    assert_eq!(fields, vec!["comments", "work_notes"], "one entry each");
}
