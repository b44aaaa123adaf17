//! Exactly once: a redelivered action is answered from memory without a tracker call, and
//! an action whose effect landed but whose answer was not remembered (a crash between the
//! two) is found on the tracker, not done again, and still answered.

use chatgptd_runtime::ErrorKind;
use chatgptd_testkit::fake_trackers::Api;
use chatgptd_types::records::TicketAction;

use super::{action, comment, said};
use crate::support::{Harness, SYS_ID, lines};

/// One comment action per tracker.
fn comments() -> [TicketAction; 3] {
    [
        comment("jira", "PROJ-1", "Restarted the SSO pods."),
        comment("servicenow", SYS_ID, "Cleared the VPN session."),
        comment("github", "octo-org/app#42", "Fixed in #57."),
    ]
}

/// The comments (work notes) on the harness's ticket of each tracker.
fn counts(harness: &Harness) -> (usize, usize, usize) {
    (
        harness.fake.jira_comments("10001").len(),
        harness.fake.servicenow_journal(SYS_ID).len(),
        harness.fake.github_comments("octo-org", "app", 42).len(),
    )
}

#[tokio::test]
async fn the_same_action_delivered_twice_calls_the_tracker_once() {
    let harness = Harness::start().await;
    let records = comments();
    let mut first = Vec::new();
    for record in &records {
        first.push(harness.act(record).await.unwrap());
    }
    harness.fake.clear_calls();
    for (record, answered) in records.iter().zip(&first) {
        let again = harness.act(record).await.unwrap();
        assert_eq!(&again, answered, "the same answer, field for field");
    }
    assert!(
        harness.fake.calls().is_empty(),
        "{:?}",
        lines(&harness.fake.calls())
    );
    assert_eq!(counts(&harness), (1, 1, 1));
}

#[tokio::test]
async fn a_comment_whose_answer_was_lost_is_found_not_posted_again() {
    let harness = Harness::start().await;
    let records = comments();
    // The worker posts, then cannot remember: the record is not acknowledged and comes back.
    harness.memory.fail_puts(true);
    for record in &records {
        let error = harness.act(record).await.unwrap_err();
        assert_eq!(
            (error.kind, error.class),
            (ErrorKind::Unavailable, "memory_unavailable")
        );
    }
    assert_eq!(
        counts(&harness),
        (1, 1, 1),
        "posted before the memory write"
    );

    harness.memory.fail_puts(false);
    harness.fake.clear_calls();
    for record in &records {
        let answer = harness.act(record).await.unwrap();
        let (kind, body) = said(&answer);
        assert_eq!(kind, "reply");
        assert!(
            body.ends_with("(found on the ticket, posted by an earlier try)"),
            "{body}"
        );
    }
    assert_eq!(counts(&harness), (1, 1, 1), "not posted again");
    assert!(
        harness.fake.calls().iter().all(|c| c.method == "GET"),
        "only looked: {:?}",
        lines(&harness.fake.calls())
    );
    // Now remembered: the next delivery is answered from memory.
    harness.fake.clear_calls();
    harness.act(&records[0]).await.unwrap();
    assert!(harness.fake.calls().is_empty());
}

#[tokio::test]
async fn a_created_ticket_whose_answer_was_lost_is_found_not_created_again() {
    let harness = Harness::start().await;
    let create = |source: &str, project: Option<&str>| TicketAction {
        project: project.map(String::from),
        title: Some("VPN drops every hour".into()),
        ..action("create", source, None)
    };
    let records = [
        create("jira", Some("PROJ")),
        create("servicenow", None),
        create("github", Some("octo-org/app")),
    ];
    let tickets = |harness: &Harness| {
        (
            harness.fake.jira_issue_keys().len(),
            harness.fake.servicenow_sys_ids().len(),
            harness.fake.github_issue_numbers("octo-org", "app").len(),
        )
    };
    assert_eq!(tickets(&harness), (1, 1, 1));
    harness.memory.fail_puts(true);
    for record in &records {
        harness.act(record).await.unwrap_err();
    }
    assert_eq!(
        tickets(&harness),
        (2, 2, 2),
        "created before the memory write"
    );

    harness.memory.fail_puts(false);
    harness.fake.clear_calls();
    let mut bodies = Vec::new();
    for record in &records {
        let answer = harness.act(record).await.unwrap();
        assert_eq!(answer.kind, "reply");
        bodies.push(answer.body);
    }
    assert_eq!(tickets(&harness), (2, 2, 2), "not created again");
    assert!(harness.fake.calls().iter().all(|c| c.method == "GET"));
    assert_eq!(
        bodies[0],
        "created jira:PROJ-2 (found, created by an earlier try)"
    );
    assert_eq!(
        bodies[2],
        "created github:octo-org/app#43 (found, created by an earlier try)"
    );
    assert!(
        bodies[1].starts_with("created servicenow:INC"),
        "{}",
        bodies[1]
    );
}

#[tokio::test]
async fn a_refusal_is_remembered_like_a_result() {
    let mut harness = Harness::start().await;
    harness.fake.add_jira_issue("20001", "SECRET-1");
    let record = comment("jira", "SECRET-1", "Leaking.");
    let refused = harness.act(&record).await.unwrap();
    assert_eq!(refused.kind, "refusal");

    // Even once the project is allowed, the conversation was told no: a redelivery must not
    // act after all.
    harness.options.jira.projects = vec!["*".into()];
    let again = harness.act(&record).await.unwrap();
    assert_eq!(again, refused);
    assert!(harness.fake.calls_to(Api::Jira).is_empty());
    assert!(harness.fake.jira_comments("SECRET-1").is_empty());
}
