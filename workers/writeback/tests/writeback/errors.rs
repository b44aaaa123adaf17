//! What each failure means for the record: retried after the tracker's wait, retried,
//! stalled on, dead-lettered, or skipped.

use std::sync::Arc;
use std::time::Duration;

use chatgptd_runtime::{ErrorKind, ProcessError, Processor};
use chatgptd_testkit::fake_trackers::Api;
use chatgptd_testkit::fake_trackers::{GITHUB_TOKEN, JIRA_API_TOKEN};
use chatgptd_types::Secrets;
use chatgptd_worker_writeback::Writeback;

use crate::support::{
    Harness, credentials, github_ticket, incoming, jira_ticket, servicenow_ticket, ticket,
};

fn kind(error: &ProcessError) -> (ErrorKind, &'static str) {
    (error.kind, error.class)
}

#[tokio::test]
async fn rate_limits_are_retried_after_the_trackers_wait_then_succeed() {
    let harness = Harness::start().await;
    harness
        .fake
        .fail_next(Api::Jira, 1, 429, Some(Duration::from_secs(7)));
    harness
        .fake
        .fail_next(Api::ServiceNow, 1, 429, Some(Duration::from_secs(2)));
    // GitHub's secondary rate limit answers 403 with Retry-After.
    harness
        .fake
        .fail_next(Api::GitHub, 1, 403, Some(Duration::from_secs(60)));
    let cases = [
        (jira_ticket(), 7),
        (servicenow_ticket(), 2),
        (github_ticket(42), 60),
    ];
    for (ticket, wait) in &cases {
        let error = harness.process(ticket).await.unwrap_err();
        assert_eq!(
            kind(&error),
            (ErrorKind::Unavailable, "tracker_rate_limited")
        );
        assert_eq!(
            error.retry_after,
            Some(Duration::from_secs(*wait)),
            "{error}"
        );
    }
    for (ticket, _) in &cases {
        harness.process(ticket).await.unwrap();
    }
    assert_eq!(harness.fake.jira_comments("10001").len(), 1);
    assert_eq!(harness.fake.github_comments("octo-org", "app", 42).len(), 1);
}

#[tokio::test]
async fn a_ticket_that_is_gone_is_dead_lettered_with_the_trackers_answer() {
    let harness = Harness::start().await;
    let cases = [
        (
            ticket("jira", "99999", "PROJ-99"),
            "jira listing the comments of issue 99999: HTTP 404: ",
            "Issue does not exist or you do not have permission to see it.",
        ),
        (
            ticket(
                "servicenow",
                "0123456789abcdef0123456789abcdef",
                "INC0000099",
            ),
            "servicenow reading the work notes of incident 0123456789abcdef0123456789abcdef: HTTP 404: ",
            "Record doesn't exist or ACL restricts the record retrieval",
        ),
        (
            github_ticket(404),
            "github listing the comments of octo-org/app#404: HTTP 404: ",
            "\"message\":\"Not Found\"",
        ),
    ];
    for (ticket, prefix, body) in cases {
        let error = harness.process(&ticket).await.unwrap_err();
        assert_eq!(kind(&error), (ErrorKind::Permanent, "tracker_rejected"));
        assert!(error.message.starts_with(prefix), "{}", error.message);
        assert!(error.message.contains(body), "{}", error.message);
    }
}

#[tokio::test]
async fn a_rejected_comment_is_dead_lettered() {
    let harness = Harness::start().await;
    harness.fake.fail_next_on(Api::GitHub, "POST", 1, 422, None);
    let error = harness.process(&github_ticket(42)).await.unwrap_err();
    assert_eq!(kind(&error), (ErrorKind::Permanent, "tracker_rejected"));
    assert!(error.message.contains("HTTP 422"), "{}", error.message);
}

#[tokio::test]
async fn a_wrong_credential_stalls_instead_of_dead_lettering_everything() {
    let harness = Harness::start().await;
    let wrong = credentials(
        &harness.options,
        Some("expired"),
        Some("wrong"),
        Some("revoked"),
    );
    let writeback = Writeback::new(&harness.options, harness.memory.clone(), &wrong).unwrap();
    for ticket in [jira_ticket(), servicenow_ticket(), github_ticket(42)] {
        let error = writeback.process(&incoming(&ticket)).await.unwrap_err();
        assert_eq!(
            kind(&error),
            (ErrorKind::Unavailable, "tracker_auth"),
            "{error}"
        );
    }
    let statuses: Vec<u16> = harness.fake.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![401, 401, 401]);
}

#[tokio::test]
async fn a_forbidden_ticket_is_dead_lettered() {
    let harness = Harness::start().await;
    harness.fake.fail_next(Api::Jira, 1, 403, None);
    let error = harness.process(&jira_ticket()).await.unwrap_err();
    assert_eq!(kind(&error), (ErrorKind::Permanent, "tracker_forbidden"));
}

#[tokio::test]
async fn server_errors_timeouts_and_refused_connections_are_retried() {
    let mut harness = Harness::start().await;
    harness.fake.fail_next(Api::ServiceNow, 1, 500, None);
    let error = harness.process(&servicenow_ticket()).await.unwrap_err();
    assert_eq!(kind(&error), (ErrorKind::Retryable, "tracker_unavailable"));

    harness.options.request_timeout = Duration::from_millis(200);
    harness
        .fake
        .delay_next(Api::GitHub, 1, Duration::from_secs(2));
    let error = harness.process(&github_ticket(42)).await.unwrap_err();
    assert_eq!(kind(&error), (ErrorKind::Retryable, "tracker_unavailable"));

    let port = chatgptd_testkit::free_port();
    harness.options.jira.base_url = format!("http://127.0.0.1:{port}/jira");
    let error = harness.process(&jira_ticket()).await.unwrap_err();
    assert_eq!(kind(&error), (ErrorKind::Retryable, "tracker_unavailable"));
}

#[tokio::test]
async fn an_unreachable_memory_stalls_before_any_call() {
    let harness = Harness::start().await;
    harness.memory.fail_gets(true);
    let error = harness.process(&jira_ticket()).await.unwrap_err();
    assert_eq!(kind(&error), (ErrorKind::Unavailable, "memory_unavailable"));
    assert!(harness.fake.calls().is_empty());
}

#[tokio::test]
async fn disabled_sources_missing_credentials_and_unknown_sources_are_skipped() {
    let mut harness = Harness::start().await;
    harness.options.jira.enabled = false;
    let no_servicenow = credentials(
        &harness.options,
        Some(JIRA_API_TOKEN),
        None,
        Some(GITHUB_TOKEN),
    );
    let writeback =
        Writeback::new(&harness.options, harness.memory.clone(), &no_servicenow).unwrap();
    for ticket in [
        jira_ticket(),
        servicenow_ticket(),
        ticket("email", "m-1", "m-1"),
    ] {
        let outputs = writeback.process(&incoming(&ticket)).await.unwrap();
        assert!(outputs.is_empty());
    }
    assert!(
        harness.fake.calls().is_empty(),
        "{:?}",
        harness.fake.calls()
    );
}

#[tokio::test]
async fn new_reads_credentials_from_the_named_secrets() {
    let mut harness = Harness::start().await;
    // A name the secrets do not hold skips the source; the one they hold serves as a (wrong)
    // token.
    harness.options.jira.api_token_env = "CHATGPTD_TEST_SURELY_UNSET_TOKEN".into();
    harness.options.github.token_env = "CHATGPTD_TEST_GITHUB_TOKEN".into();
    let secrets = Secrets::from_map([
        ("CHATGPTD_TEST_GITHUB_TOKEN", "chatgptd-worker-writeback"),
        // Under the default name, which the options no longer give: not used.
        ("JIRA_API_TOKEN", JIRA_API_TOKEN),
    ]);
    let writeback =
        Writeback::new(&harness.options, Arc::clone(&harness.memory) as _, &secrets).unwrap();

    writeback.process(&incoming(&jira_ticket())).await.unwrap();
    assert!(
        harness.fake.calls_to(Api::Jira).is_empty(),
        "skipped: no credential"
    );

    let error = writeback
        .process(&incoming(&github_ticket(42)))
        .await
        .unwrap_err();
    assert_eq!(kind(&error), (ErrorKind::Unavailable, "tracker_auth"));
    let calls = harness.fake.calls_to(Api::GitHub);
    assert_eq!(
        calls[0].header("authorization"),
        Some("Bearer chatgptd-worker-writeback")
    );
}

#[tokio::test]
async fn a_listing_that_is_not_the_documented_json_is_retried_not_posted_blind() {
    let harness = Harness::start().await;
    // A 200 carrying an error body: what a proxy or an ACL-trimmed answer looks like.
    for api in [Api::Jira, Api::ServiceNow, Api::GitHub] {
        harness.fake.fail_next(api, 1, 200, None);
    }
    for ticket in [jira_ticket(), servicenow_ticket(), github_ticket(42)] {
        let error = harness.process(&ticket).await.unwrap_err();
        assert_eq!(
            kind(&error),
            (ErrorKind::Retryable, "tracker_malformed"),
            "{error}"
        );
    }
    let methods: Vec<String> = harness
        .fake
        .calls()
        .iter()
        .map(|c| c.method.clone())
        .collect();
    assert_eq!(methods, vec!["GET", "GET", "GET"], "nothing posted");
}
