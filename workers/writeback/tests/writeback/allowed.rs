//! Issue 11: the write-back comments only where its options allow. A record about another
//! repository or project (a forged webhook naming it) is dead-lettered at once, and the
//! tracker is never called with the bot's credential.

use chatgptd_runtime::ErrorKind;
use chatgptd_testkit::fake_trackers::Api;

use crate::support::{Harness, github_ticket, jira_ticket, ticket};

#[tokio::test]
async fn a_repository_not_listed_is_dead_lettered_without_any_call() {
    let harness = Harness::start().await;
    harness.fake.add_github_issue("victim", "private", 1);
    let error = harness
        .process(&ticket("github", "1", "victim/private#1"))
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind, error.class),
        (ErrorKind::Permanent, "target_not_allowed")
    );
    assert!(
        error
            .message
            .contains("\"victim/private\" is not in writeback.github.repositories"),
        "{error}"
    );
    // The same by URL only: the repository comes from wherever the issue is named.
    let mut by_url = ticket("github", "1", "");
    by_url.url = Some("https://github.com/victim/private/issues/1".into());
    let error = harness.process(&by_url).await.unwrap_err();
    assert_eq!(error.class, "target_not_allowed");
    assert!(harness.fake.calls_to(Api::GitHub).is_empty());
    assert!(
        harness
            .fake
            .github_comments("victim", "private", 1)
            .is_empty()
    );

    // A listed repository is still written.
    harness.process(&github_ticket(42)).await.unwrap();
    assert_eq!(harness.fake.github_comments("octo-org", "app", 42).len(), 1);
}

#[tokio::test]
async fn a_jira_project_not_listed_is_dead_lettered_without_any_call() {
    let harness = Harness::start().await;
    harness.fake.add_jira_issue("20001", "SECRET-1");
    for record in [
        ticket("jira", "20001", "SECRET-1"),
        // No key, no project to check: not allowed unless the list is ["*"].
        ticket("jira", "20001", ""),
    ] {
        let error = harness.process(&record).await.unwrap_err();
        assert_eq!(
            (error.kind, error.class),
            (ErrorKind::Permanent, "target_not_allowed"),
            "{error}"
        );
        assert!(error.message.contains("writeback.jira.projects"), "{error}");
    }
    assert!(harness.fake.calls_to(Api::Jira).is_empty());
    assert!(harness.fake.jira_comments("20001").is_empty());
    harness.process(&jira_ticket()).await.unwrap();
}

#[tokio::test]
async fn a_star_allows_any_target() {
    let mut harness = Harness::start().await;
    harness.options.github.repositories = vec!["*".into()];
    harness.fake.add_github_issue("anyone", "anything", 3);
    harness
        .process(&ticket("github", "3", "anyone/anything#3"))
        .await
        .unwrap();
    assert_eq!(
        harness.fake.github_comments("anyone", "anything", 3).len(),
        1
    );
}
