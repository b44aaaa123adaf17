//! Creates on each tracker: looked for by the marker, then created with what the tracker
//! takes, and answered with the new ticket's name and what was skipped.

use chatgptd_testkit::fake_trackers::Api;
use chatgptd_types::records::TicketAction;
use serde_json::json;

use super::{action, carries, marker, said};
use crate::support::{Harness, SYS_ID, lines};

/// A create of `title` in `project` with a priority and labels.
fn create(source: &str, project: Option<&str>) -> TicketAction {
    TicketAction {
        project: project.map(String::from),
        title: Some("VPN drops every hour".into()),
        body: Some("Seen by 12 users since 09:00.".into()),
        priority: Some("critical".into()),
        labels: vec!["vpn".into(), "needs triage".into()],
        ..action("create", source, None)
    }
}

#[tokio::test]
async fn a_jira_issue_is_looked_for_then_created() {
    let harness = Harness::start().await;
    let record = create("jira", Some("PROJ"));
    let answer = harness.act(&record).await.unwrap();
    assert_eq!(
        said(&answer),
        (
            "reply",
            "created jira:PROJ-2: priority critical, labels [vpn, needs-triage]"
        )
    );
    let calls = harness.fake.calls_to(Api::Jira);
    assert_eq!(
        lines(&calls),
        vec!["GET /rest/api/3/search/jql", "POST /rest/api/3/issue"]
    );
    assert_eq!(
        calls[0].query_param("jql").unwrap(),
        format!(
            "project = \"PROJ\" AND text ~ \"\\\"chatgptd-action:{}\\\"\"",
            record.id
        )
    );
    let issue = harness.fake.jira_issue("PROJ-2");
    let fields = &issue["fields"];
    assert_eq!(fields["summary"], "VPN drops every hour");
    assert_eq!(fields["priority"]["name"], "Highest");
    assert_eq!(fields["labels"], json!(["vpn", "needs-triage"]));
    assert_eq!(calls[1].body["fields"]["issuetype"]["name"], "Task");
    assert!(carries(
        &fields["description"],
        "Seen by 12 users since 09:00."
    ));
    assert!(carries(&fields["description"], &marker(&record)));
}

#[tokio::test]
async fn a_github_issue_is_looked_for_then_created_without_a_priority() {
    let harness = Harness::start().await;
    let record = create("github", Some("octo-org/app"));
    let answer = harness.act(&record).await.unwrap();
    assert_eq!(
        said(&answer),
        (
            "reply",
            "created github:octo-org/app#43: labels [vpn, needs triage]; skipped: priority (GitHub issues have none)"
        )
    );
    let calls = harness.fake.calls_to(Api::GitHub);
    assert_eq!(
        lines(&calls),
        vec![
            "GET /repos/octo-org/app/issues",
            "POST /repos/octo-org/app/issues"
        ]
    );
    assert_eq!(calls[0].query_param("state"), Some("all"));
    assert_eq!(calls[0].query_param("direction"), Some("desc"));
    let issue = harness.fake.github_issue("octo-org", "app", 43);
    assert_eq!(issue["title"], "VPN drops every hour");
    assert!(
        issue["body"]
            .as_str()
            .unwrap()
            .ends_with(&format!("<!-- chatgptd-action:{} -->", record.id))
    );
}

#[tokio::test]
async fn a_servicenow_incident_is_looked_for_then_created_with_impact_and_urgency() {
    let harness = Harness::start().await;
    let record = create("servicenow", None);
    let answer = harness.act(&record).await.unwrap();
    let calls = harness.fake.calls_to(Api::ServiceNow);
    assert_eq!(
        lines(&calls),
        vec![
            "GET /api/now/table/incident",
            "POST /api/now/table/incident"
        ]
    );
    assert_eq!(
        calls[0].query_param("sysparm_query").unwrap(),
        format!("descriptionLIKEchatgptd-action:{}", record.id)
    );
    let created: Vec<String> = harness
        .fake
        .servicenow_sys_ids()
        .into_iter()
        .filter(|id| id != SYS_ID)
        .collect();
    assert_eq!(created.len(), 1);
    let incident = harness.fake.servicenow_incident(&created[0]);
    let number = incident["number"].as_str().unwrap();
    assert_eq!(
        said(&answer),
        (
            "reply",
            format!(
                "created servicenow:{number}: priority critical; skipped: labels (ServiceNow incidents have none)"
            )
            .as_str()
        )
    );
    assert_eq!(incident["short_description"], "VPN drops every hour");
    assert_eq!(
        (
            &incident["impact"],
            &incident["urgency"],
            &incident["priority"]
        ),
        (&json!("1"), &json!("1"), &json!("1"))
    );
    assert!(
        incident["description"]
            .as_str()
            .unwrap()
            .ends_with(&marker(&record))
    );
}
