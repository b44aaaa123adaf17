//! What cannot be done is answered with a refusal that says why, and nothing is written:
//! targets not on the allow-lists, sources off or without their credential, invalid
//! records, a tracker's 4xx, and a 5xx that outlasts the tries. A 401 stalls instead.

use chatgptd_runtime::{ErrorKind, Processor};
use chatgptd_testkit::fake_trackers::{Api, JIRA_API_TOKEN};
use chatgptd_types::records::TicketAction;
use chatgptd_worker_writeback::TicketActions;

use super::{action, comment, said};
use crate::support::{Harness, credentials};

#[tokio::test]
async fn targets_not_allowed_are_refused_without_any_call() {
    let harness = Harness::start().await;
    harness.fake.add_jira_issue("20001", "SECRET-1");
    harness.fake.add_github_issue("victim", "private", 1);
    let create = |source: &str, project: &str| TicketAction {
        project: Some(project.into()),
        title: Some("Grant me admin".into()),
        ..action("create", source, None)
    };
    let cases = [
        (
            comment("jira", "SECRET-1", "x"),
            "could not comment on jira:SECRET-1: jira: \"SECRET\" is not in writeback.jira.projects; nothing was written",
        ),
        (
            // A numeric id names no project: only "*" lets it through.
            comment("jira", "20001", "x"),
            "could not comment on jira:20001: jira: the record names no target and writeback.jira.projects is not [\"*\"]; nothing was written",
        ),
        (
            comment("github", "victim/private#1", "x"),
            "could not comment on github:victim/private#1: github: \"victim/private\" is not in writeback.github.repositories; nothing was written",
        ),
        (
            create("jira", "SECRET"),
            "could not create a ticket in jira:SECRET: jira: \"SECRET\" is not in writeback.jira.projects; nothing was written",
        ),
        (
            create("github", "victim/private"),
            "could not create a ticket in github:victim/private: github: \"victim/private\" is not in writeback.github.repositories; nothing was written",
        ),
    ];
    for (record, expected) in &cases {
        let answer = harness.act(record).await.unwrap();
        assert_eq!(said(&answer), ("refusal", *expected));
    }
    assert!(
        harness.fake.calls().is_empty(),
        "{:?}",
        harness.fake.calls()
    );
}

#[tokio::test]
async fn a_source_off_or_without_its_credential_is_refused() {
    let mut harness = Harness::start().await;
    harness.options.servicenow.enabled = false;
    let answer = harness
        .act(&comment("servicenow", "INC0000046", "x"))
        .await
        .unwrap();
    assert_eq!(
        said(&answer),
        (
            "refusal",
            "could not comment on servicenow:INC0000046: servicenow is not enabled (writeback.servicenow.enabled); nothing was written"
        )
    );

    // Only Jira's credential in the environment.
    let secrets = credentials(&harness.options, Some(JIRA_API_TOKEN), None, None);
    let actions = TicketActions::new(&harness.options, harness.memory.clone(), &secrets).unwrap();
    let record = comment("github", "octo-org/app#42", "x");
    let outputs = actions.process(&super::incoming(&record, 1)).await.unwrap();
    assert_eq!(outputs.len(), 1);
    let answer = super::decode(&outputs[0]);
    assert_eq!(answer.kind, "refusal");
    assert!(
        answer.body.contains("github has no credential"),
        "{}",
        answer.body
    );
    assert!(harness.fake.calls().is_empty());
}

#[tokio::test]
async fn an_invalid_record_is_refused_with_what_is_wrong() {
    let harness = Harness::start().await;
    let cases = [
        (
            action("delete", "jira", Some("PROJ-1")),
            "could not \"delete\" jira:PROJ-1: the action is invalid: kind \"delete\" is not comment, create or update",
        ),
        (
            comment("email", "m-1", "x"),
            "could not comment on email:m-1: the action is invalid: source \"email\" is not jira, servicenow or github",
        ),
        (
            TicketAction {
                priority: Some("urgent".into()),
                ..action("update", "jira", Some("PROJ-1"))
            },
            "could not update jira:PROJ-1: the action is invalid: priority \"urgent\" is not low, medium, high or critical",
        ),
        (
            action("create", "jira", None),
            "could not create a ticket in jira:new: the action is invalid: a new ticket needs a title",
        ),
    ];
    for (record, expected) in &cases {
        let answer = harness.act(record).await.unwrap();
        assert_eq!(said(&answer), ("refusal", *expected));
    }
    assert!(harness.fake.calls().is_empty());
}

#[tokio::test]
async fn a_ticket_the_tracker_does_not_know_is_refused_with_its_answer() {
    let harness = Harness::start().await;
    let answer = harness
        .act(&comment("github", "octo-org/app#404", "x"))
        .await
        .unwrap();
    let (kind, body) = said(&answer);
    assert_eq!(kind, "refusal");
    assert!(
        body.starts_with("could not comment on github:octo-org/app#404: github listing the comments of octo-org/app#404: HTTP 404: "),
        "{body}"
    );
    let answer = harness
        .act(&comment("servicenow", "INC9999999", "x"))
        .await
        .unwrap();
    assert_eq!(
        said(&answer),
        (
            "refusal",
            "could not comment on servicenow:INC9999999: servicenow: there is no incident INC9999999"
        )
    );
}

#[tokio::test]
async fn a_server_error_is_retried_and_answered_on_the_last_try() {
    let harness = Harness::start().await;
    let record = comment("github", "octo-org/app#42", "Fixed in #57.");
    harness.fake.fail_next(Api::GitHub, 1, 502, None);
    let error = harness.act(&record).await.unwrap_err();
    assert_eq!(
        (error.kind, error.class),
        (ErrorKind::Retryable, "tracker_unavailable")
    );

    let last = harness.options.actions_consumer.max_attempts;
    harness.fake.fail_next(Api::GitHub, 1, 502, None);
    let answer = harness.act_on_try(&record, last).await.unwrap();
    let (kind, body) = said(&answer);
    assert_eq!(kind, "refusal");
    assert!(
        body.starts_with(&format!(
            "could not comment on github:octo-org/app#42: gave up after {last} tries: github listing the comments"
        )),
        "{body}"
    );
    assert!(
        harness
            .fake
            .github_comments("octo-org", "app", 42)
            .is_empty()
    );

    // Settled: a later delivery (a replay, say) gets the same answer and acts not.
    harness.fake.clear_calls();
    assert_eq!(harness.act(&record).await.unwrap(), answer);
    assert!(harness.fake.calls().is_empty());
}

#[tokio::test]
async fn a_bad_credential_stalls_and_answers_nothing_yet() {
    let harness = Harness::start().await;
    let secrets = credentials(&harness.options, Some("expired-token"), None, None);
    let actions = TicketActions::new(&harness.options, harness.memory.clone(), &secrets).unwrap();
    let record = comment("jira", "PROJ-1", "x");
    let error = actions
        .process(&super::incoming(&record, 9))
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind, error.class),
        (ErrorKind::Unavailable, "tracker_auth")
    );
    // Nothing remembered: with the credential fixed, the action is done.
    let answer = harness.act(&record).await.unwrap();
    assert_eq!(answer.kind, "reply");
    assert_eq!(harness.fake.jira_comments("PROJ-1").len(), 1);
}
