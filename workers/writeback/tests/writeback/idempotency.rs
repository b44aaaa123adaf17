//! One comment per ticket and prompt version: redeliveries are answered from memory, and a
//! crash between posting and recording is caught by looking at the tracker first.

use chatgptd_memory::Memory;
use chatgptd_runtime::ErrorKind;
use chatgptd_testkit::fake_trackers::Api;
use chatgptd_types::records::EnrichedTicket;

use crate::support::{Harness, SYS_ID, github_ticket, jira_ticket, lines, servicenow_ticket};

/// How many triage notes each ticket of the harness carries.
fn notes(harness: &Harness) -> (usize, usize, usize) {
    let servicenow = harness
        .fake
        .servicenow_journal(SYS_ID)
        .iter()
        .filter(|(field, _)| field == "work_notes")
        .count();
    (
        harness.fake.jira_comments("10001").len(),
        servicenow,
        harness.fake.github_comments("octo-org", "app", 42).len(),
    )
}

fn all_tickets() -> [EnrichedTicket; 3] {
    [jira_ticket(), servicenow_ticket(), github_ticket(42)]
}

#[tokio::test]
async fn a_redelivered_record_calls_no_tracker() {
    let harness = Harness::start().await;
    for ticket in all_tickets() {
        harness.process(&ticket).await.unwrap();
    }
    harness.fake.clear_calls();
    for ticket in all_tickets() {
        harness.process(&ticket).await.unwrap();
    }
    assert!(
        harness.fake.calls().is_empty(),
        "{:?}",
        harness.fake.calls()
    );
    assert_eq!(notes(&harness), (1, 1, 1));
}

/// The worker posts, then dies before the memory write: here, the write fails, so the
/// record is not acknowledged and comes back.
#[tokio::test]
async fn a_crash_after_posting_does_not_post_twice() {
    let harness = Harness::start().await;
    harness.memory.fail_puts(true);
    for ticket in all_tickets() {
        let error = harness.process(&ticket).await.unwrap_err();
        assert_eq!(
            (error.kind, error.class),
            (ErrorKind::Unavailable, "memory_unavailable"),
            "an unreachable memory stalls, never dead-letters"
        );
    }
    assert_eq!(
        notes(&harness),
        (1, 1, 1),
        "posted before the memory write failed"
    );

    harness.memory.fail_puts(false);
    harness.fake.clear_calls();
    for ticket in all_tickets() {
        harness.process(&ticket).await.unwrap();
    }
    assert_eq!(
        notes(&harness),
        (1, 1, 1),
        "found on the tracker, not posted again"
    );
    assert_eq!(
        lines(&harness.fake.calls()),
        vec![
            "GET /rest/api/3/issue/10001/comment",
            "PUT /rest/api/3/issue/10001",
            &format!("GET /api/now/table/incident/{SYS_ID}"),
            "GET /repos/octo-org/app/issues/42/comments",
            "POST /repos/octo-org/app/issues/42/labels",
        ],
        "look, find, re-add the labels, post nothing"
    );

    // Now it is recorded: a third delivery is answered from memory.
    harness.fake.clear_calls();
    for ticket in all_tickets() {
        harness.process(&ticket).await.unwrap();
    }
    assert!(harness.fake.calls().is_empty());
}

/// A memory entry that is gone (expired, or never written by a worker killed after posting)
/// is no reason to post again.
#[tokio::test]
async fn a_lost_memory_entry_does_not_post_twice() {
    let harness = Harness::start().await;
    for ticket in all_tickets() {
        harness.process(&ticket).await.unwrap();
    }
    for key in [
        "writeback:jira:10001:triage-v3".to_string(),
        format!("writeback:servicenow:{SYS_ID}:triage-v3"),
        "writeback:github:octo-org/app#42:triage-v3".to_string(),
    ] {
        assert!(
            harness.memory.get(&key).await.unwrap().is_some(),
            "{key} recorded"
        );
        harness.memory.delete(&key).await.unwrap();
    }
    for ticket in all_tickets() {
        harness.process(&ticket).await.unwrap();
    }
    assert_eq!(notes(&harness), (1, 1, 1));
}

/// The labels fail after the comment went out; the retry re-adds the labels only.
#[tokio::test]
async fn a_retry_after_a_failed_label_call_posts_no_second_comment() {
    let harness = Harness::start().await;
    harness.fake.fail_next_on(Api::Jira, "PUT", 1, 502, None);
    let error = harness.process(&jira_ticket()).await.unwrap_err();
    assert_eq!(
        (error.kind, error.class),
        (ErrorKind::Retryable, "tracker_unavailable")
    );
    harness.fake.clear_calls();

    harness.process(&jira_ticket()).await.unwrap();
    assert_eq!(
        lines(&harness.fake.calls()),
        vec![
            "GET /rest/api/3/issue/10001/comment",
            "PUT /rest/api/3/issue/10001"
        ]
    );
    assert_eq!(harness.fake.jira_comments("10001").len(), 1);
    assert_eq!(
        harness.fake.jira_labels("10001"),
        vec!["auth", "needs-triage"]
    );
}

/// A new prompt version is a new note; the marker of `v1` does not match the note of `v10`.
#[tokio::test]
async fn each_prompt_version_gets_its_own_comment() {
    let harness = Harness::start().await;
    let version = |v: &str| {
        let mut ticket = jira_ticket();
        ticket.provenance.prompt_version = v.into();
        ticket
    };
    harness.process(&version("v10")).await.unwrap();
    harness.process(&version("v1")).await.unwrap();
    assert_eq!(harness.fake.jira_comments("10001").len(), 2);

    harness
        .memory
        .delete("writeback:jira:10001:v1")
        .await
        .unwrap();
    harness.process(&version("v1")).await.unwrap();
    assert_eq!(harness.fake.jira_comments("10001").len(), 2);
}

/// A later record of the same ticket (an update a month on), after memory forgot the write:
/// the comment posted for the first record is found, however old it is, and not posted again.
#[tokio::test]
async fn a_later_record_finds_the_comment_an_earlier_one_posted() {
    let harness = Harness::start().await;
    let first = github_ticket(42);
    harness.process(&first).await.unwrap();
    harness
        .memory
        .delete("writeback:github:octo-org/app#42:triage-v3")
        .await
        .unwrap();
    let mut later = github_ticket(42);
    later.event_id = "a-later-update".into();
    later.enriched_at_ms =
        first.enriched_at_ms.max(chatgptd_types::now_ms()) + 30 * 24 * 3600 * 1000;
    harness.process(&later).await.unwrap();
    assert_eq!(harness.fake.github_comments("octo-org", "app", 42).len(), 1);
}

/// The look goes past the first page of a busy ticket.
#[tokio::test]
async fn the_marker_is_found_beyond_the_first_page() {
    let harness = Harness::start().await;
    // GitHub lists oldest first: 150 comments come before ours.
    for i in 0..150 {
        harness
            .fake
            .add_github_comment("octo-org", "app", 42, &format!("me too #{i}"));
    }
    harness.process(&github_ticket(42)).await.unwrap();
    harness
        .memory
        .delete("writeback:github:octo-org/app#42:triage-v3")
        .await
        .unwrap();
    harness.fake.clear_calls();
    harness.process(&github_ticket(42)).await.unwrap();
    let pages: Vec<String> = harness
        .fake
        .calls_to(Api::GitHub)
        .iter()
        .filter(|c| c.method == "GET")
        .map(|c| c.query_param("page").unwrap_or_default().to_string())
        .collect();
    assert_eq!(pages, vec!["1", "2"]);
    assert_eq!(
        harness.fake.github_comments("octo-org", "app", 42).len(),
        151
    );

    // Jira lists newest first: 150 comments come after ours.
    harness.process(&jira_ticket()).await.unwrap();
    for _ in 0..150 {
        harness.fake.add_jira_comment(
            "10001",
            serde_json::json!({"type": "doc", "version": 1, "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "+1"}]}
            ]}),
        );
    }
    harness
        .memory
        .delete("writeback:jira:10001:triage-v3")
        .await
        .unwrap();
    harness.fake.clear_calls();
    harness.process(&jira_ticket()).await.unwrap();
    let starts: Vec<String> = harness
        .fake
        .calls_to(Api::Jira)
        .iter()
        .filter(|c| c.method == "GET")
        .map(|c| c.query_param("startAt").unwrap_or_default().to_string())
        .collect();
    assert_eq!(starts, vec!["0", "100"]);
    assert_eq!(harness.fake.jira_comments("10001").len(), 151);
}
