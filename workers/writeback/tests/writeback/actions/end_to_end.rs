//! Through the runtime on the mock cluster: actions in on `tickets.actions`, tracker calls
//! carrying the marker, answers out on `agents.messages` that their conversations can find,
//! and every offset committed, a redelivery and a refusal included.

use std::time::Duration;

use chatgptd_runtime::{Health, Service, WorkerContext};
use chatgptd_testkit::fake_trackers::Api;
use chatgptd_testkit::kafka::{MockKafka, consume};
use chatgptd_testkit::{init_logging, unique};
use chatgptd_types::Secrets;
use chatgptd_types::avro::Codec;
use chatgptd_types::records::{AgentMessage, TicketAction};
use chatgptd_types::topics::names;
use chatgptd_worker_writeback::{TicketActions, TicketActionsService};
use rdkafka::Message;
use tokio_util::sync::CancellationToken;

use super::{carries, comment, marker};
use crate::support::{Harness, SYS_ID, committed_up_to, lines, produce_in_order, secrets};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_on_every_tracker_are_made_once_and_answered() {
    init_logging();
    let kafka = MockKafka::start();
    for topic in [
        names::TICKET_ACTIONS,
        names::AGENT_MESSAGES,
        names::DEAD_LETTER,
    ] {
        kafka.create_topic(topic, 1);
    }
    let brokers = kafka.brokers();
    let mut harness = Harness::start().await;
    harness.fake.add_jira_issue("20001", "SECRET-1");
    let group = unique("ticket-actions");
    harness.options.actions_consumer = chatgptd_testkit::runtime::test_options(&group);

    let jira = comment("jira", "PROJ-1", "Restarted the SSO pods.");
    let servicenow = comment("servicenow", "INC0000046", "Cleared the VPN session.");
    let github = comment("github", "octo-org/app#42", "Fixed in #57.");
    let secret = comment("jira", "SECRET-1", "Leaking.");
    // In partition order; the Jira action is delivered twice.
    let records = [&jira, &servicenow, &github, &jira, &secret];
    produce_in_order(&brokers, names::TICKET_ACTIONS, &records, |r| r.key()).await;

    let context =
        WorkerContext::new(&kafka.options(), &Health::default(), &Secrets::env()).unwrap();
    let actions = TicketActions::new(
        &harness.options,
        harness.memory.clone(),
        &secrets(&harness.options),
    )
    .unwrap();
    let service = TicketActionsService::new(&harness.options, &context, actions).unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(service.run(shutdown.clone()));

    committed_up_to(&brokers, &group, names::TICKET_ACTIONS, 5).await;

    // The tracker calls: one comment each, carrying its action's marker; none about SECRET.
    let jira_calls = harness.fake.calls_to(Api::Jira);
    assert_eq!(
        lines(&jira_calls),
        vec![
            "GET /rest/api/3/issue/PROJ-1/comment",
            "POST /rest/api/3/issue/PROJ-1/comment",
        ],
        "the redelivery was answered from memory, the refusal called nothing"
    );
    assert!(carries(&jira_calls[1].body, &marker(&jira)));
    let patch = harness
        .fake
        .calls_to(Api::ServiceNow)
        .into_iter()
        .find(|call| call.method == "PATCH")
        .unwrap();
    assert_eq!(patch.path, format!("/api/now/table/incident/{SYS_ID}"));
    assert!(carries(&patch.body, &marker(&servicenow)));
    let github_calls = harness.fake.calls_to(Api::GitHub);
    assert_eq!(github_calls.len(), 2);
    assert!(carries(
        &github_calls[1].body,
        &format!("<!-- chatgptd-action:{} -->", github.id)
    ));

    // The answers, keyed by the agent, found by the action id. Actions on different
    // tickets run concurrently: look each one's answers up by its id.
    let answers = tokio::task::spawn_blocking({
        let brokers = brokers.clone();
        move || consume(&brokers, names::AGENT_MESSAGES, 5, WAIT)
    })
    .await
    .unwrap();
    assert_eq!(answers.len(), 5);
    let decoded: Vec<AgentMessage> = answers
        .iter()
        .map(|message| {
            assert_eq!(message.key(), Some("atlas-sentinel".as_bytes()));
            Codec::builtin().decode(message.payload().unwrap()).unwrap()
        })
        .collect();
    let answers_to = |record: &TicketAction| -> Vec<&AgentMessage> {
        decoded
            .iter()
            .filter(|answer| answer.correlation_id == record.id)
            .collect()
    };
    for record in [&jira, &servicenow, &github, &secret] {
        for answer in answers_to(record) {
            assert_eq!(answer.conversation_id, record.conversation_id);
            assert_eq!(
                answer.in_reply_to.as_deref(),
                Some(record.message_id.as_str())
            );
            assert_eq!(answer.to, "atlas-sentinel");
        }
    }
    let twice = answers_to(&jira);
    assert_eq!(twice.len(), 2);
    assert_eq!(twice[0], twice[1], "the redelivery got the same answer");
    assert_eq!(twice[0].kind, "reply");
    let [answer] = answers_to(&servicenow)[..] else {
        panic!("one answer to the ServiceNow action");
    };
    assert_eq!(
        (answer.kind.as_str(), answer.body.as_str()),
        ("reply", "commented on servicenow:INC0000046 (work note)")
    );
    assert_eq!(answers_to(&github)[0].kind, "reply");
    let [refusal] = answers_to(&secret)[..] else {
        panic!("one answer to the refused action");
    };
    assert_eq!(refusal.kind, "refusal");
    assert!(
        refusal.body.contains("is not in writeback.jira.projects"),
        "{}",
        refusal.body
    );
    assert_eq!(harness.fake.jira_comments("PROJ-1").len(), 1);
    assert!(harness.fake.jira_comments("SECRET-1").is_empty());

    shutdown.cancel();
    running.await.unwrap().unwrap();
}
