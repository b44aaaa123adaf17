//! Updates on each tracker: what each supports is set (twice changes nothing), what it
//! does not is skipped and said, and an update that can set nothing is refused.

use chatgptd_testkit::fake_trackers::Api;
use chatgptd_types::records::TicketAction;
use serde_json::json;

use super::{action, said};
use crate::support::{Harness, SYS_ID, lines};

/// An update of every field.
fn update(source: &str, ticket: &str, status: &str) -> TicketAction {
    TicketAction {
        priority: Some("critical".into()),
        status: Some(status.into()),
        labels: vec!["vpn".into()],
        assignee: Some("5b10ac8d82e05b22cc7d4ef5".into()),
        ..action("update", source, Some(ticket))
    }
}

#[tokio::test]
async fn a_jira_update_sets_fields_then_moves_the_issue_and_can_run_twice() {
    let harness = Harness::start().await;
    let record = update("jira", "PROJ-1", "done");
    let answer = harness.act(&record).await.unwrap();
    assert_eq!(
        said(&answer),
        (
            "reply",
            "updated jira:PROJ-1: priority critical, assignee 5b10ac8d82e05b22cc7d4ef5, labels [vpn], status done"
        )
    );
    assert_eq!(
        lines(&harness.fake.calls_to(Api::Jira)),
        vec![
            "GET /rest/api/3/issue/PROJ-1",
            "GET /rest/api/3/issue/PROJ-1/transitions",
            "PUT /rest/api/3/issue/PROJ-1",
            "POST /rest/api/3/issue/PROJ-1/transitions",
        ]
    );
    let fields = harness.fake.jira_issue("PROJ-1")["fields"].clone();
    assert_eq!(fields["priority"]["name"], "Highest");
    assert_eq!(fields["status"]["name"], "Done");
    assert_eq!(fields["labels"], json!(["vpn"]));
    assert_eq!(fields["assignee"]["accountId"], "5b10ac8d82e05b22cc7d4ef5");

    // A second update with the same values (another action): nothing to move, same state.
    harness.fake.clear_calls();
    let again = TicketAction {
        id: format!("{}-again", record.id),
        ..record
    };
    harness.act(&again).await.unwrap();
    assert_eq!(
        lines(&harness.fake.calls_to(Api::Jira)),
        vec![
            "GET /rest/api/3/issue/PROJ-1",
            "PUT /rest/api/3/issue/PROJ-1"
        ]
    );
    assert_eq!(harness.fake.jira_issue("PROJ-1")["fields"], fields);
}

#[tokio::test]
async fn a_jira_status_no_transition_reaches_is_refused_before_any_write() {
    let harness = Harness::start().await;
    let answer = harness
        .act(&update("jira", "PROJ-1", "Blocked"))
        .await
        .unwrap();
    assert_eq!(
        said(&answer),
        (
            "refusal",
            "could not update jira:PROJ-1: jira: issue PROJ-1 is \"To Do\" and no transition leads to \"Blocked\" (reachable: In Progress, Done); nothing was changed"
        )
    );
    let calls = harness.fake.calls_to(Api::Jira);
    assert!(
        calls.iter().all(|c| c.method == "GET"),
        "{:?}",
        lines(&calls)
    );
    assert_eq!(
        harness.fake.jira_issue("PROJ-1")["fields"]["priority"]["name"],
        "Medium"
    );
}

#[tokio::test]
async fn a_github_update_sets_state_labels_and_assignee_and_skips_the_priority() {
    let harness = Harness::start().await;
    let answer = harness
        .act(&update("github", "octo-org/app#42", "Closed"))
        .await
        .unwrap();
    assert_eq!(
        said(&answer),
        (
            "reply",
            "updated github:octo-org/app#42: status closed, labels [vpn], assignee 5b10ac8d82e05b22cc7d4ef5; skipped: priority (GitHub issues have none)"
        )
    );
    assert_eq!(
        lines(&harness.fake.calls_to(Api::GitHub)),
        vec![
            "PATCH /repos/octo-org/app/issues/42",
            "POST /repos/octo-org/app/issues/42/labels",
            "POST /repos/octo-org/app/issues/42/assignees",
        ]
    );
    let issue = harness.fake.github_issue("octo-org", "app", 42);
    assert_eq!(issue["state"], "closed");
    assert_eq!(issue["labels"], json!([{"name": "vpn"}]));
    assert_eq!(
        issue["assignees"],
        json!([{"login": "5b10ac8d82e05b22cc7d4ef5"}])
    );
}

#[tokio::test]
async fn a_servicenow_update_is_one_patch_and_says_what_incidents_lack() {
    let harness = Harness::start().await;
    let answer = harness
        .act(&update("servicenow", SYS_ID, "in progress"))
        .await
        .unwrap();
    assert_eq!(
        said(&answer),
        (
            "reply",
            format!(
                "updated servicenow:{SYS_ID}: priority critical, status in progress, assignee 5b10ac8d82e05b22cc7d4ef5; skipped: labels (ServiceNow incidents have none)"
            )
            .as_str()
        )
    );
    let calls = harness.fake.calls_to(Api::ServiceNow);
    assert_eq!(
        lines(&calls),
        vec![format!("PATCH /api/now/table/incident/{SYS_ID}")]
    );
    assert_eq!(
        calls[0].body,
        json!({"impact": "1", "urgency": "1", "state": "2", "assigned_to": "5b10ac8d82e05b22cc7d4ef5"})
    );
    assert_eq!(harness.fake.servicenow_incident(SYS_ID)["priority"], "1");

    // Only what incidents lack: refused, nothing called.
    harness.fake.clear_calls();
    let labels_only = TicketAction {
        labels: vec!["vpn".into()],
        ..action("update", "servicenow", Some(SYS_ID))
    };
    let answer = harness.act(&labels_only).await.unwrap();
    assert_eq!(
        said(&answer),
        (
            "refusal",
            format!(
                "could not update servicenow:{SYS_ID}: servicenow cannot set any of it: labels (ServiceNow incidents have none); nothing was changed"
            )
            .as_str()
        )
    );
    assert!(harness.fake.calls().is_empty());
}
