//! Comments on each tracker: looked for, then posted with the signature and the marker, and
//! answered with what was posted.

use chatgptd_testkit::fake_trackers::Api;
use serde_json::json;

use super::{SIGNATURE, comment, marker, said};
use crate::support::{Harness, SYS_ID, lines};

#[tokio::test]
async fn a_jira_comment_is_internal_and_marked() {
    let harness = Harness::start().await;
    let record = comment("jira", "PROJ-1", "Restarted the SSO pods.\n\nWatching it.");
    let answer = harness.act(&record).await.unwrap();
    let (kind, body) = said(&answer);
    assert_eq!(kind, "reply");
    assert!(
        body.starts_with("commented on jira:PROJ-1 (comment 1"),
        "{body}"
    );

    let calls = harness.fake.calls_to(Api::Jira);
    assert_eq!(
        lines(&calls),
        vec![
            "GET /rest/api/3/issue/PROJ-1/comment",
            "POST /rest/api/3/issue/PROJ-1/comment",
        ]
    );
    let posted = &calls[1].body;
    assert_eq!(
        posted["properties"],
        json!([{"key": "sd.public.comment", "value": {"internal": true}}])
    );
    let content = posted["body"]["content"].as_array().unwrap();
    assert_eq!(content[0]["content"][0]["text"], "Restarted the SSO pods.");
    assert_eq!(content[1]["content"][0]["text"], "Watching it.");
    assert_eq!(content[2]["content"][0]["text"], SIGNATURE);
    assert_eq!(content[3]["content"][0]["text"], marker(&record).as_str());
    assert_eq!(harness.fake.jira_comments("PROJ-1").len(), 1);
}

#[tokio::test]
async fn a_servicenow_comment_by_number_is_a_marked_work_note() {
    let harness = Harness::start().await;
    let record = comment("servicenow", "INC0000046", "Cleared the VPN session.");
    let answer = harness.act(&record).await.unwrap();
    assert_eq!(
        said(&answer),
        ("reply", "commented on servicenow:INC0000046 (work note)")
    );
    let calls = harness.fake.calls_to(Api::ServiceNow);
    let incident = format!("/api/now/table/incident/{SYS_ID}");
    assert_eq!(
        lines(&calls),
        vec![
            "GET /api/now/table/incident".to_string(),
            format!("GET {incident}"),
            format!("PATCH {incident}"),
        ]
    );
    assert_eq!(
        calls[0].query_param("sysparm_query"),
        Some("number=INC0000046")
    );
    assert_eq!(
        harness.fake.servicenow_journal(SYS_ID),
        vec![(
            "work_notes".to_string(),
            format!(
                "Cleared the VPN session.\n\n{SIGNATURE}\n{}",
                marker(&record)
            )
        )]
    );
}

#[tokio::test]
async fn a_github_comment_hides_its_marker() {
    let harness = Harness::start().await;
    let record = comment("github", "octo-org/app#42", "Fixed in #57.");
    let answer = harness.act(&record).await.unwrap();
    let (kind, body) = said(&answer);
    assert_eq!(kind, "reply");
    assert!(
        body.starts_with("commented on github:octo-org/app#42 (comment 1"),
        "{body}"
    );
    assert_eq!(
        lines(&harness.fake.calls_to(Api::GitHub)),
        vec![
            "GET /repos/octo-org/app/issues/42/comments",
            "POST /repos/octo-org/app/issues/42/comments",
        ]
    );
    assert_eq!(
        harness.fake.github_comments("octo-org", "app", 42),
        vec![format!(
            "Fixed in #57.\n\n<sub>{SIGNATURE}</sub>\n\n<!-- chatgptd-action:{} -->",
            record.id
        )]
    );
}
