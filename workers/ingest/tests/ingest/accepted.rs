//! The real public payloads, signed as their senders sign them: 202 after the ack, and
//! exactly one TicketEvent with the right key, fields and trace context.

use chatgptd_testkit::kafka::header;
use chatgptd_types::trace::TraceContext;
use chatgptd_worker_ingest::Source;
use chatgptd_worker_ingest::parse::event_id;
use reqwest::StatusCode;

use crate::support::*;

/// Sends `webhook`, expects 202 and one record; returns the record's event.
async fn accept_one(
    setup: &Setup,
    gateway: &Gateway,
    webhook: &Webhook,
) -> (chatgptd_types::records::TicketEvent, String) {
    let answer = gateway.send(webhook).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    assert_eq!(answer.body["status"], "accepted");
    assert_eq!(setup.record_count().await, 1);
    let record = setup.records(1).await.remove(0);
    let event = decode(&record);
    assert_eq!(answer.body["event_id"], event.event_id.as_str());
    assert_eq!(key(&record), event.key());
    let trace = header(&record, TraceContext::HEADER).expect("a traceparent header");
    assert!(TraceContext::parse(&trace).is_some(), "{trace}");
    assert!(event.received_at_ms > 0);
    assert_eq!(event.raw_payload.as_bytes(), webhook.body.as_slice());
    (event, trace)
}

#[tokio::test]
async fn jira_issue_created() {
    let setup = Setup::start().await;
    let gateway = setup.gateway(options()).await;
    let delivery = "2b0e3a1c-8f7d-4a41-9a53-0f3f3e5c9a11";
    let webhook = Webhook::jira(fixture(JIRA_CREATED), delivery);
    let (event, _) = accept_one(&setup, &gateway, &webhook).await;

    assert_eq!(event.event_id, event_id(Source::Jira, delivery));
    assert_eq!(event.key(), "jira:10509");
    assert_eq!(event.source, "jira");
    assert_eq!(event.delivery_id, delivery);
    assert_eq!(event.event_type, "jira:issue_created");
    assert_eq!(event.ticket_key, "KT-22");
    assert_eq!(event.title, "Lots of fields selected");
    assert_eq!(event.description, "The good description");
    assert_eq!(event.priority.as_deref(), Some("Medium"));
    assert_eq!(event.status.as_deref(), Some("To Do"));
    assert_eq!(event.labels, ["Label1", "Label2"]);
    assert_eq!(event.reporter.as_deref(), Some("Sample User"));
    assert_eq!(event.actor.as_deref(), Some("5cedcb4355a88a0fc86388ba"));
    assert_eq!(
        event.url.as_deref(),
        Some("https://mmtest.atlassian.net/browse/KT-22")
    );
}

#[tokio::test]
async fn jira_issue_updated_keeps_the_senders_trace() {
    let setup = Setup::start().await;
    let gateway = setup.gateway(options()).await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let webhook = Webhook::jira(fixture(JIRA_UPDATED), "jira-updated-1")
        .with_header("traceparent", Some(parent));
    let (event, trace) = accept_one(&setup, &gateway, &webhook).await;

    assert_eq!(event.key(), "jira:10040");
    assert_eq!(event.event_type, "jira:issue_updated");
    assert_eq!(event.ticket_key, "TES-41");
    assert_eq!(
        event.description,
        "Unit test description, not that long, a little longer now"
    );
    assert_eq!(event.priority.as_deref(), Some("High"));
    assert_eq!(event.labels, ["sad", "test-label"]);
    let trace = TraceContext::parse(&trace).unwrap();
    assert_eq!(trace.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(
        trace.to_header(),
        parent,
        "the gateway's span is a child of the sender's"
    );
}

#[tokio::test]
async fn jira_comment_created_names_the_comment_author_as_actor() {
    let setup = Setup::start().await;
    let gateway = setup.gateway(options()).await;
    let webhook = Webhook::jira(fixture(JIRA_COMMENT), "jira-comment-1");
    let (event, _) = accept_one(&setup, &gateway, &webhook).await;

    assert_eq!(event.key(), "jira:10040");
    assert_eq!(event.event_type, "comment_created");
    assert_eq!(event.title, "Unit test summary 1");
    assert_eq!(
        event.description, "",
        "the reduced issue has no description"
    );
    assert_eq!(event.actor.as_deref(), Some("5c5f880629be9642ba529340"));
    assert_eq!(
        event.url.as_deref(),
        Some("https://some-instance-test.atlassian.net/browse/TES-41")
    );
}

#[tokio::test]
async fn jira_adf_descriptions_are_flattened_to_text() {
    let setup = Setup::start().await;
    let gateway = setup.gateway(options()).await;
    // The issue_created payload with its description as the ADF document of Atlassian's
    // addComment example, plus a list and a mention.
    let mut payload = fixture_json(JIRA_CREATED);
    let mut document = fixture_json(JIRA_ADF_COMMENT)["body"].clone();
    document["content"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "bulletList", "content": [
            {"type": "listItem", "content": [{"type": "paragraph", "content": [
                {"type": "text", "text": "ask "},
                {"type": "mention", "attrs": {"id": "5b10ac8d82e05b22cc7d4ef5", "text": "@Mia Krystof"}}
            ]}]}
        ]}));
    payload["issue"]["fields"]["description"] = document;
    let webhook = Webhook::jira(serde_json::to_vec(&payload).unwrap(), "jira-adf-1");
    let (event, _) = accept_one(&setup, &gateway, &webhook).await;

    assert_eq!(
        event.description,
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit. Pellentesque eget venenatis \
         elit. Duis eu justo eget augue iaculis fermentum. Sed semper quam laoreet nisi egestas \
         at posuere augue semper.\n\n- ask @Mia Krystof"
    );
}

#[tokio::test]
async fn jira_unknown_event_types_with_an_issue_are_produced() {
    let setup = Setup::start().await;
    let gateway = setup.gateway(options()).await;
    let mut payload = fixture_json(JIRA_CREATED);
    payload["webhookEvent"] = "jira:issue_archived_someday".into();
    let webhook = Webhook::jira(serde_json::to_vec(&payload).unwrap(), "jira-unknown-1");
    let (event, _) = accept_one(&setup, &gateway, &webhook).await;
    assert_eq!(event.event_type, "jira:issue_archived_someday");
}

#[tokio::test]
async fn servicenow_business_rule() {
    let setup = Setup::start().await;
    let gateway = setup.gateway(options()).await;
    let webhook = Webhook::servicenow(fixture(SERVICENOW_RULE));
    let (event, _) = accept_one(&setup, &gateway, &webhook).await;

    let sys_id = "a9e30c7dc61122760116894de7bcc7bd";
    let delivery = format!("{sys_id}:2015-11-01 22:37:27");
    assert_eq!(event.key(), format!("servicenow:{sys_id}"));
    assert_eq!(event.delivery_id, delivery);
    assert_eq!(event.event_id, event_id(Source::ServiceNow, &delivery));
    assert_eq!(event.event_type, "incident.updated");
    assert_eq!(event.ticket_key, "INC0000046");
    assert_eq!(event.title, "Can't access SFA software");
    assert_eq!(
        event.description, "Can't access SFA software",
        "an empty description falls back to the short one"
    );
    assert_eq!(event.priority.as_deref(), Some("Moderate"));
    assert_eq!(event.status.as_deref(), Some("New"));
    assert_eq!(event.labels, ["software"]);
    assert_eq!(
        event.reporter.as_deref(),
        Some("46c6f9efa9fe198101ddf5eed9adf6e7")
    );
    assert_eq!(
        event.url,
        Some(format!(
            "{INSTANCE_URL}/nav_to.do?uri=incident.do?sys_id={sys_id}"
        ))
    );
}

#[tokio::test]
async fn servicenow_table_api_record() {
    let setup = Setup::start().await;
    let gateway = setup.gateway(options()).await;
    let webhook = Webhook::servicenow(fixture(SERVICENOW_TABLE));
    let (event, _) = accept_one(&setup, &gateway, &webhook).await;

    assert_eq!(event.key(), "servicenow:a9e30c7dc61122760116894de7bcc7bd");
    assert_eq!(
        event.event_type, "incident.event",
        "no event field: the table's generic event"
    );
    assert_eq!(event.ticket_key, "INC0000046");
    assert_eq!(event.actor.as_deref(), Some("glide.maint"));
    assert_eq!(
        event.reporter.as_deref(),
        Some("46c6f9efa9fe198101ddf5eed9adf6e7"),
        "the caller reference's value"
    );
}

#[tokio::test]
async fn github_issue_opened() {
    let setup = Setup::start().await;
    let gateway = setup.gateway(options()).await;
    let delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    let webhook = Webhook::github(fixture(GITHUB_OPENED), "issues", delivery);
    let (event, _) = accept_one(&setup, &gateway, &webhook).await;

    assert_eq!(event.event_id, event_id(Source::GitHub, delivery));
    assert_eq!(event.key(), "github:MDU6SXNzdWU0NDQ1MDAwNDE=");
    assert_eq!(event.event_type, "issues.opened");
    assert_eq!(event.ticket_key, "Codertocat/Hello-World#1");
    assert_eq!(event.title, "Spelling error in the README file");
    assert_eq!(
        event.description,
        "It looks like you accidently spelled 'commit' with two 't's."
    );
    assert_eq!(event.status.as_deref(), Some("open"));
    assert_eq!(event.labels, ["bug"]);
    assert_eq!(event.priority, None);
    assert_eq!(event.reporter.as_deref(), Some("Codertocat"));
    assert_eq!(event.actor.as_deref(), Some("Codertocat"));
    assert_eq!(
        event.url.as_deref(),
        Some("https://github.com/Codertocat/Hello-World/issues/1")
    );
}
