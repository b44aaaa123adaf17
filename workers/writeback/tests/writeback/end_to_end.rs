//! Through the runtime on the mock cluster: enriched tickets in, REST calls out, offsets
//! committed, and a ticket that is gone dead-lettered with its `dlq.*` headers.

use std::time::Duration;

use chatgptd_runtime::Service;
use chatgptd_runtime::dead_letter::header as dlq;
use chatgptd_runtime::{Health, WorkerContext};
use chatgptd_testkit::fake_trackers::Api;
use chatgptd_testkit::kafka::{MockKafka, consume, header};
use chatgptd_testkit::{init_logging, unique};
use chatgptd_types::Secrets;
use chatgptd_types::avro::Codec;
use chatgptd_types::records::DeadLetter;
use chatgptd_types::topics::names;
use chatgptd_worker_writeback::{Writeback, WritebackService};
use rdkafka::Message;
use tokio_util::sync::CancellationToken;

use crate::support::{
    Harness, SYS_ID, committed_up_to, github_ticket, jira_ticket, lines, produce_in_order, secrets,
    servicenow_ticket, ticket,
};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_back_commits_and_dead_letters_a_ticket_that_is_gone() {
    init_logging();
    let kafka = MockKafka::start();
    kafka.create_topic(names::TICKETS_ENRICHED, 1);
    kafka.create_topic(names::DEAD_LETTER, 1);
    let brokers = kafka.brokers();

    let mut harness = Harness::start().await;
    let group = unique("writeback");
    harness.options.consumer = chatgptd_testkit::runtime::test_options(&group);

    // In partition order: three writes, one ticket that is gone, a redelivery, a source
    // nobody writes to.
    let records = [
        jira_ticket(),
        servicenow_ticket(),
        github_ticket(42),
        github_ticket(404),
        jira_ticket(),
        ticket("email", "m-1", "m-1"),
    ];
    let records: Vec<_> = records.iter().collect();
    produce_in_order(&brokers, names::TICKETS_ENRICHED, &records, |r| r.key()).await;

    let context =
        WorkerContext::new(&kafka.options(), &Health::default(), &Secrets::env()).unwrap();
    let writeback = Writeback::new(
        &harness.options,
        harness.memory.clone(),
        &secrets(&harness.options),
    )
    .unwrap();
    let runtime = WritebackService::new(&harness.options, &context, writeback).unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(runtime.run(shutdown.clone()));

    committed_up_to(&brokers, &group, names::TICKETS_ENRICHED, 6).await;

    assert_eq!(
        lines(&harness.fake.calls_to(Api::Jira)),
        vec![
            "GET /rest/api/3/issue/10001/comment",
            "POST /rest/api/3/issue/10001/comment",
            "PUT /rest/api/3/issue/10001",
        ],
        "the redelivered ticket was answered from memory"
    );
    let incident = format!("/api/now/table/incident/{SYS_ID}");
    assert_eq!(
        lines(&harness.fake.calls_to(Api::ServiceNow)),
        vec![format!("GET {incident}"), format!("PATCH {incident}")]
    );
    // Records with different keys run concurrently: compare each issue's calls.
    let github = lines(&harness.fake.calls_to(Api::GitHub));
    let of_issue = |number: &str| -> Vec<&str> {
        let marker = format!("/issues/{number}/");
        github
            .iter()
            .map(String::as_str)
            .filter(|line| line.contains(&marker))
            .collect()
    };
    assert_eq!(
        of_issue("42"),
        vec![
            "GET /repos/octo-org/app/issues/42/comments",
            "POST /repos/octo-org/app/issues/42/comments",
            "POST /repos/octo-org/app/issues/42/labels",
        ]
    );
    assert_eq!(
        of_issue("404"),
        vec!["GET /repos/octo-org/app/issues/404/comments"],
        "a 404 is not retried"
    );
    assert_eq!(harness.fake.jira_comments("10001").len(), 1);

    let letters = tokio::task::spawn_blocking({
        let brokers = brokers.clone();
        move || consume(&brokers, names::DEAD_LETTER, 1, WAIT)
    })
    .await
    .unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(
        header(letter, dlq::ERROR_CLASS).as_deref(),
        Some("tracker_rejected")
    );
    assert_eq!(
        header(letter, dlq::SOURCE_TOPIC).as_deref(),
        Some("tickets.enriched")
    );
    assert_eq!(header(letter, dlq::SOURCE_PARTITION).as_deref(), Some("0"));
    assert_eq!(header(letter, dlq::SOURCE_OFFSET).as_deref(), Some("3"));
    assert_eq!(header(letter, dlq::ATTEMPTS).as_deref(), Some("1"));
    assert_eq!(header(letter, dlq::WORKER).as_deref(), Some("writeback"));
    let message = header(letter, dlq::ERROR_MESSAGE).unwrap();
    assert!(
        message.starts_with("github listing the comments of octo-org/app#404: HTTP 404: "),
        "{message}"
    );
    assert_eq!(letter.key(), Some("github:404".as_bytes()));
    let dead: DeadLetter = Codec::builtin().decode(letter.payload().unwrap()).unwrap();
    assert_eq!(dead.source_offset, 3);
    assert_eq!(dead.worker, "writeback");

    shutdown.cancel();
    running.await.unwrap().unwrap();
}
