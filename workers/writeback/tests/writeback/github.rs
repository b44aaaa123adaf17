//! GitHub: the exact REST calls, a public comment without the draft reply by default, labels.

use chatgptd_runtime::ErrorKind;
use chatgptd_testkit::fake_trackers::{Api, GITHUB_TOKEN};
use serde_json::json;

use crate::support::{FOOTER, Harness, REPLY, SUMMARY, github_ticket, lines};

fn note() -> String {
    format!(
        "**chatgptd triage**\n\n\
         - **Category:** access\n\
         - **Suggested priority:** high\n\
         - **Sentiment:** negative\n\
         - **Language:** en\n\
         - **Confidence:** 87%\n\
         - **Labels:** auth, needs triage\n\
         - **Related tickets:** PROJ-7\n\n\
         **Summary**\n\n{SUMMARY}\n\n\
         <sub>{FOOTER}</sub>\n\n\
         <!-- chatgptd:github:octo-org/app#42:triage-v3 -->"
    )
}

#[tokio::test]
async fn comments_without_the_draft_reply_and_adds_labels() {
    let harness = Harness::start().await;
    harness.process(&github_ticket(42)).await.unwrap();

    let calls = harness.fake.calls_to(Api::GitHub);
    assert_eq!(
        lines(&calls),
        vec![
            "GET /repos/octo-org/app/issues/42/comments",
            "POST /repos/octo-org/app/issues/42/comments",
            "POST /repos/octo-org/app/issues/42/labels",
        ]
    );
    for call in &calls {
        assert_eq!(
            call.header("authorization"),
            Some(format!("Bearer {GITHUB_TOKEN}").as_str())
        );
        assert_eq!(call.header("accept"), Some("application/vnd.github+json"));
        assert_eq!(call.header("x-github-api-version"), Some("2022-11-28"));
        assert!(
            call.header("user-agent")
                .unwrap()
                .starts_with("chatgptd-writeback/")
        );
    }
    // Every comment: the marker may come from an earlier record of the ticket.
    assert_eq!(calls[0].query_param("since"), None);
    assert_eq!(calls[0].query_param("per_page"), Some("100"));
    assert_eq!(calls[0].query_param("page"), Some("1"));

    assert_eq!(calls[1].body, json!({"body": note()}));
    assert!(
        !calls[1].body.to_string().contains("Hello"),
        "no draft reply in public"
    );
    assert_eq!(calls[1].status, 201);
    assert_eq!(calls[2].body, json!({"labels": ["auth", "needs triage"]}));
    assert_eq!(calls[2].status, 200);
    assert_eq!(
        harness.fake.github_labels("octo-org", "app", 42),
        vec!["auth", "needs triage"]
    );
}

#[tokio::test]
async fn posted_replies_open_the_comment() {
    let mut harness = Harness::start().await;
    harness.options.github.post_replies = true;
    harness.options.github.add_labels = false;
    harness.process(&github_ticket(42)).await.unwrap();

    let calls = harness.fake.calls_to(Api::GitHub);
    assert_eq!(calls.len(), 2, "no labels call when add_labels is off");
    assert_eq!(
        calls[1].body,
        json!({"body": format!("{REPLY}\n\n---\n\n{}", note())})
    );
}

#[tokio::test]
async fn the_issue_comes_from_the_url_when_the_key_is_not_a_reference() {
    let harness = Harness::start().await;
    let mut ticket = github_ticket(42);
    ticket.ticket_key = "42".into();
    ticket.url = Some("https://github.com/octo-org/app/issues/42".into());
    harness.process(&ticket).await.unwrap();
    assert_eq!(harness.fake.github_comments("octo-org", "app", 42).len(), 1);
}

#[tokio::test]
async fn a_record_naming_no_issue_is_dead_lettered_without_a_call() {
    let harness = Harness::start().await;
    let mut ticket = github_ticket(42);
    ticket.ticket_key = "not a reference".into();
    let error = harness.process(&ticket).await.unwrap_err();
    assert_eq!(
        (error.kind, error.class),
        (ErrorKind::Permanent, "invalid_ticket")
    );
    assert!(harness.fake.calls().is_empty());
}
