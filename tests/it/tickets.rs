//! The ticket pipeline end to end: the real public webhook payloads of Jira Cloud, ServiceNow
//! and GitHub, signed the way each sender signs, through the gateway, Kafka (the mock
//! cluster), the enrichment worker (a fake OpenAI-compatible model) and the write-back worker,
//! to the exact REST calls a fake Jira/ServiceNow/GitHub receives.
//!
//! Then what must change nothing: a redelivered webhook, a bad signature, a malformed
//! payload, and a write-back interrupted between posting its comment and acknowledging the
//! record. Last, the same path through the real binary (`chatgptd up`) and its config file.
//!
//! The workers are the real node's, configured by the `chatgptd.toml` of `support::pipeline`
//! with the fakes in it, their secrets from a map. One node runs the roles of
//! the pipeline as `chatgptd up` does, on one SQLite memory (the gateway's dedupe, the model's
//! result cache, the write-back's done keys); the interrupted write-back runs in a node of its
//! own beside ingest and enrich, as docker-compose deploys them, the two sharing a
//! redis-server.

use std::process::Command;
use std::time::Duration;

use chatgptd_node::discovery;
use chatgptd_testkit::fake_trackers::{
    Api, Call, GITHUB_TOKEN, JIRA_API_TOKEN, JIRA_EMAIL, SERVICENOW_PASSWORD, SERVICENOW_USER,
    lines,
};
use chatgptd_testkit::kafka::consume;
use chatgptd_testkit::process::ServerProcess;
use chatgptd_testkit::webhooks::{Webhook, fixture, signature_header};
use chatgptd_testkit::{basic_auth, http_client, wait_until};
use chatgptd_types::records::EnrichedTicket;
use chatgptd_types::topics::names::{DEAD_LETTER, TICKET_EVENTS, TICKETS_ENRICHED};
use chatgptd_worker_ingest::Source;
use chatgptd_worker_ingest::source::route;
use rdkafka::Message;
use serde_json::{Value, json};

use crate::support::node;
use crate::support::pipeline::{
    Delivered, GITHUB_ISSUE, INCIDENT, JIRA_ISSUE_ID, JIRA_ISSUE_KEY, MODEL_KEY, Pipeline, REPLY,
    SECRETS, SUMMARY, SYS_ID, TRACEPARENT, WAIT, config_toml, decode, done_key, fakes, marker,
    model_answer,
};

const JIRA_FIXTURE: &str = "jira/jira_issue_created.cloud.mattermost-plugin-jira.json";
const SERVICENOW_FIXTURE: &str = "servicenow/SYNTH_business_rule_outbound_incident.json";
const GITHUB_FIXTURE: &str = "github/issues.opened.octokit-webhooks.json";

const JIRA_COMMENTS: &str = "/rest/api/3/issue/10509/comment";
const JIRA_ISSUE: &str = "/rest/api/3/issue/10509";
const INCIDENT_PATH: &str = "/api/now/table/incident/a9e30c7dc61122760116894de7bcc7bd";
const GITHUB_COMMENTS: &str = "/repos/Codertocat/Hello-World/issues/1/comments";
const GITHUB_LABELS: &str = "/repos/Codertocat/Hello-World/issues/1/labels";

/// The facts every tracker's note shows of the model's answer.
const FACTS: [(&str, &str); 6] = [
    ("Category", "access"),
    ("Suggested priority", "high"),
    ("Sentiment", "negative"),
    ("Language", "en"),
    ("Confidence", "87%"),
    ("Labels", "login, needs triage"),
];

/// The fixture of `source`, signed as its sender signs it, with a `traceparent`.
fn fixture_webhook(source: Source, delivery_id: &str) -> Webhook {
    let path = match source {
        Source::Jira => JIRA_FIXTURE,
        Source::ServiceNow => SERVICENOW_FIXTURE,
        Source::GitHub => GITHUB_FIXTURE,
    };
    webhook(source, fixture(path), delivery_id).with_header("traceparent", Some(TRACEPARENT))
}

/// `body` from `source` with its delivery headers (GitHub's event is `issues`), signed.
/// ServiceNow's delivery id comes from the body, so `delivery_id` is not sent for it.
fn webhook(source: Source, body: Vec<u8>, delivery_id: &str) -> Webhook {
    match source {
        Source::Jira => Webhook::jira(body, delivery_id),
        Source::ServiceNow => Webhook::servicenow(body),
        Source::GitHub => Webhook::github(body, "issues", delivery_id),
    }
}

// The pipeline itself is in `support::pipeline`.
impl Pipeline {
    /// Sends the ServiceNow fixture and waits for its write-back: proof that the pipeline ran
    /// past whatever was sent before it.
    async fn send_sentinel(&self) {
        let (status, answer) = self.send(&fixture_webhook(Source::ServiceNow, "")).await;
        assert_eq!(status, 202, "{answer}");
        let enriched = wait_until(WAIT, "the sentinel's enrichment", || async {
            let brokers = self.node.brokers();
            let records = tokio::task::spawn_blocking(move || {
                consume(
                    &brokers,
                    TICKETS_ENRICHED,
                    usize::MAX,
                    Duration::from_millis(500),
                )
            });
            let records = records.await.unwrap();
            let mut enriched = records.iter().map(decode::<EnrichedTicket>);
            enriched.find(|enriched| enriched.source == "servicenow")
        })
        .await;
        let done = done_key(Source::ServiceNow, &enriched);
        self.wait_written_back(&done).await;
    }
}

/// Checks that `calls` are `expected` (`METHOD /path` and the status each got), each made
/// with `authorization`.
fn assert_calls(calls: &[Call], authorization: &str, expected: &[(&str, u16)]) {
    let got: Vec<_> = calls.iter().map(|c| (c.line(), c.status)).collect();
    let expected: Vec<_> = expected.iter().map(|(l, s)| (l.to_string(), *s)).collect();
    assert_eq!(got, expected, "{calls:#?}");
    for call in calls {
        assert_eq!(call.header("authorization"), Some(authorization));
    }
}

/// The Jira comment as Atlassian Document Format: the note, the draft reply, the
/// provenance, the marker.
fn expected_jira_comment(marker: &str, footer: &str) -> Value {
    let text = |text: &str| json!({"type": "text", "text": text});
    let strong = |text: &str| json!({"type": "text", "text": text, "marks": [{"type": "strong"}]});
    let paragraph = |content: Vec<Value>| json!({"type": "paragraph", "content": content});
    let fact = |(label, value): (&str, &str)| json!({"type": "listItem", "content": [paragraph(vec![strong(&format!("{label}: ")), text(value)])]});
    json!({"version": 1, "type": "doc", "content": [
        paragraph(vec![strong("chatgptd triage")]),
        {"type": "bulletList", "content": FACTS.map(fact)},
        paragraph(vec![strong("Summary")]),
        paragraph(vec![text(SUMMARY)]),
        paragraph(vec![strong("Suggested reply (DRAFT, not sent to the customer)")]),
        paragraph(vec![
            text("Hello,"),
            json!({"type": "hardBreak"}),
            text("thanks for the report. We are looking into it now."),
        ]),
        paragraph(vec![text("Best regards")]),
        paragraph(vec![json!({"type": "text", "text": footer, "marks": [{"type": "em"}]})]),
        paragraph(vec![json!({
            "type": "text",
            "text": format!("[{marker}]"),
            "marks": [{"type": "textColor", "attrs": {"color": "#97a0af"}}],
        })]),
    ]})
}

/// The ServiceNow work note: plain text, the draft reply inside, the marker last.
fn expected_work_note(marker: &str, footer: &str) -> String {
    let facts: String = FACTS
        .map(|(label, value)| format!("- {label}: {value}\n"))
        .concat();
    format!(
        "chatgptd triage\n{facts}\nSummary:\n{SUMMARY}\n\n\
         Suggested reply (DRAFT, not sent to the customer):\n{REPLY}\n\n{footer}\n[{marker}]"
    )
}

/// The GitHub comment: Markdown, the note only (issue comments are public: no draft).
fn expected_github_comment(marker: &str, footer: &str) -> String {
    let facts: String = FACTS
        .map(|(label, value)| format!("- **{label}:** {value}\n"))
        .concat();
    format!(
        "**chatgptd triage**\n\n{facts}\n**Summary**\n\n{SUMMARY}\n\n\
         <sub>{footer}</sub>\n\n<!-- {marker} -->"
    )
}

/// Checks Jira's three calls: look for the marker, post the comment, add the labels.
fn assert_jira_write(calls: &[Call], delivered: &Delivered) {
    let get = format!("GET {JIRA_COMMENTS}");
    let post = format!("POST {JIRA_COMMENTS}");
    let put = format!("PUT {JIRA_ISSUE}");
    let auth = basic_auth(JIRA_EMAIL, JIRA_API_TOKEN);
    assert_calls(calls, &auth, &[(&get, 200), (&post, 201), (&put, 204)]);
    let newest_first = [
        ("orderBy", "-created"),
        ("startAt", "0"),
        ("maxResults", "100"),
    ];
    assert_eq!(calls[0].query_pairs(), newest_first);
    let marker = marker(Source::Jira, &delivered.enriched);
    assert_eq!(
        calls[1].body,
        json!({
            "body": expected_jira_comment(&marker, &delivered.footer),
            // The reply is a draft, so the comment is internal in Service Management.
            "properties": [{"key": "sd.public.comment", "value": {"internal": true}}],
        })
    );
    let labels = json!({"update": {"labels": [{"add": "login"}, {"add": "needs-triage"}]}});
    assert_eq!(calls[2].body, labels, "Jira labels cannot hold spaces");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jira_webhook_becomes_an_internal_adf_comment_and_labels() {
    let e2e = Pipeline::start().await;
    let webhook = fixture_webhook(Source::Jira, "jira-delivery-1");
    let delivered = e2e.deliver(&webhook).await;

    let event = &delivered.event;
    assert_eq!(event.event_type, "jira:issue_created");
    assert_eq!(event.delivery_id, "jira-delivery-1");
    assert_eq!(event.ticket_id, JIRA_ISSUE_ID);
    assert_eq!(event.ticket_key, JIRA_ISSUE_KEY);
    assert_eq!(event.title, "Lots of fields selected");
    let url = "https://mmtest.atlassian.net/browse/KT-22";
    assert_eq!(event.url.as_deref(), Some(url));

    assert_jira_write(&e2e.calls(Api::Jira), &delivered);
    assert_eq!(e2e.trackers.jira_comments(JIRA_ISSUE_ID).len(), 1);
    let labels = e2e.trackers.jira_labels(JIRA_ISSUE_KEY);
    assert_eq!(labels, ["login", "needs-triage"]);
    e2e.assert_only_called(Api::Jira);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servicenow_webhook_becomes_a_private_work_note_with_the_draft_reply() {
    let e2e = Pipeline::start().await;
    let delivered = e2e.deliver(&fixture_webhook(Source::ServiceNow, "")).await;

    let event = &delivered.event;
    assert_eq!(event.event_type, "incident.updated");
    let delivery = format!("{SYS_ID}:2015-11-01 22:37:27");
    let per_update = "one delivery per update of the record";
    assert_eq!(event.delivery_id, delivery, "{per_update}");
    assert_eq!(event.ticket_id, SYS_ID);
    assert_eq!(event.ticket_key, INCIDENT);
    assert_eq!(event.title, "Can't access SFA software");

    let calls = e2e.calls(Api::ServiceNow);
    let get = format!("GET {INCIDENT_PATH}");
    let patch = format!("PATCH {INCIDENT_PATH}");
    let auth = basic_auth(SERVICENOW_USER, SERVICENOW_PASSWORD);
    assert_calls(&calls, &auth, &[(&get, 200), (&patch, 200)]);
    let work_notes = [
        ("sysparm_fields", "work_notes"),
        ("sysparm_display_value", "true"),
    ];
    assert_eq!(calls[0].query_pairs(), work_notes);
    let marker = marker(Source::ServiceNow, &delivered.enriched);
    let note = expected_work_note(&marker, &delivered.footer);
    // Only `work_notes` (private): nothing in `comments`, which the caller would see.
    assert_eq!(calls[1].body, json!({ "work_notes": note }));
    let journal = e2e.trackers.servicenow_journal(SYS_ID);
    assert_eq!(journal, [("work_notes".to_string(), note)]);
    e2e.assert_only_called(Api::ServiceNow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_webhook_becomes_a_public_comment_without_the_draft_and_labels() {
    let e2e = Pipeline::start().await;
    let delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    let webhook = fixture_webhook(Source::GitHub, delivery);
    let delivered = e2e.deliver(&webhook).await;

    let event = &delivered.event;
    assert_eq!(event.event_type, "issues.opened");
    assert_eq!(event.delivery_id, delivery);
    assert_eq!(event.ticket_id, "MDU6SXNzdWU0NDQ1MDAwNDE=");
    assert_eq!(event.ticket_key, "Codertocat/Hello-World#1");
    assert_eq!(event.title, "Spelling error in the README file");

    let calls = e2e.calls(Api::GitHub);
    let get = format!("GET {GITHUB_COMMENTS}");
    let post = format!("POST {GITHUB_COMMENTS}");
    let labels = format!("POST {GITHUB_LABELS}");
    let auth = format!("Bearer {GITHUB_TOKEN}");
    assert_calls(&calls, &auth, &[(&get, 200), (&post, 201), (&labels, 200)]);
    let every = "every comment: the marker may be older than this record";
    assert_eq!(calls[0].query_param("since"), None, "{every}");
    assert_eq!(calls[0].query_param("per_page"), Some("100"));
    assert_eq!(calls[0].query_param("page"), Some("1"));
    for call in &calls {
        assert_eq!(call.header("x-github-api-version"), Some("2022-11-28"));
        assert_eq!(call.header("accept"), Some("application/vnd.github+json"));
    }
    let marker = marker(Source::GitHub, &delivered.enriched);
    let comment = expected_github_comment(&marker, &delivered.footer);
    assert_eq!(calls[1].body, json!({ "body": comment }));
    let draft = comment.contains("thanks for the report") || comment.contains("DRAFT");
    assert!(!draft, "a public comment carries no draft reply");
    assert_eq!(calls[2].body, json!({"labels": ["login", "needs triage"]}));
    let (owner, repo, issue) = GITHUB_ISSUE;
    assert_eq!(e2e.trackers.github_comments(owner, repo, issue), [comment]);
    e2e.assert_only_called(Api::GitHub);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_webhook_is_a_duplicate_and_changes_nothing() {
    let e2e = Pipeline::start().await;
    let webhook = fixture_webhook(Source::Jira, "jira-delivery-2");
    let delivered = e2e.deliver(&webhook).await;

    // Jira retries with the same identifier and counts its retries.
    let retry = webhook.with_header("X-Atlassian-Webhook-Retry", Some("1"));
    let (status, answer) = e2e.send(&retry).await;
    assert_eq!(status, 200, "{answer}");
    let event_id = &delivered.event.event_id;
    assert_eq!(answer, json!({"status": "duplicate", "event_id": event_id}));
    assert_eq!(e2e.count(TICKET_EVENTS).await, 1, "no second event");

    e2e.send_sentinel().await;
    assert_eq!(e2e.count(TICKET_EVENTS).await, 2);
    assert_eq!(e2e.count(TICKETS_ENRICHED).await, 2);
    assert_eq!(e2e.model.request_count(), 2, "no second model call");
    assert_jira_write(&e2e.calls(Api::Jira), &delivered);
    assert_eq!(e2e.trackers.jira_comments(JIRA_ISSUE_ID).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_signature_is_refused_and_nothing_is_produced_or_posted() {
    let e2e = Pipeline::start().await;
    for source in Source::ALL {
        let forged = fixture_webhook(source, "forged-1").signed_with("not the secret");
        let (status, answer) = e2e.send(&forged).await;
        assert_eq!(status, 401, "{source:?}: {answer}");
        assert_eq!(answer["error"], "unauthorized");
        assert_eq!(answer["detail"], "the signature does not match the body");

        let unsigned = fixture_webhook(source, "unsigned-1");
        let unsigned = unsigned.with_header(signature_header(source), None);
        let (status, answer) = e2e.send(&unsigned).await;
        assert_eq!(status, 401, "{source:?}: {answer}");
        assert_eq!(answer["detail"], "the signature header is missing");

        // Signed over other bytes: one changed byte of the real payload.
        let mut tampered = fixture_webhook(source, "tampered-1");
        *tampered.body.last_mut().unwrap() = b' ';
        assert_eq!(e2e.send(&tampered).await.0, 401, "{source:?}");
    }
    assert_eq!(e2e.count(TICKET_EVENTS).await, 0);

    e2e.send_sentinel().await;
    assert_eq!(e2e.count(TICKET_EVENTS).await, 1, "the sentinel only");
    assert_eq!(e2e.model.request_count(), 1);
    e2e.assert_only_called(Api::ServiceNow);
    let sentinel = [
        format!("GET {INCIDENT_PATH}"),
        format!("PATCH {INCIDENT_PATH}"),
    ];
    let calls = lines(&e2e.calls(Api::ServiceNow));
    assert_eq!(calls, sentinel, "the sentinel only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_payload_gets_400_and_nothing_is_produced() {
    let e2e = Pipeline::start().await;
    // Each correctly signed, so the refusal is about the payload.
    let jira = fixture(JIRA_FIXTURE);
    let cut = jira[..jira.len() / 2].to_vec();
    let number_only = br#"{"event": "incident.updated", "number": "INC0000046"}"#;
    let no_issue = br#"{"action": "opened"}"#;
    let no_delivery =
        fixture_webhook(Source::GitHub, "gh-2").with_header("X-GitHub-Delivery", None);
    let cases = [
        (webhook(Source::Jira, cut, "cut-1"), "malformed_json"),
        (
            webhook(Source::ServiceNow, b"[1, 2, 3]".into(), ""),
            "invalid_payload",
        ),
        (
            webhook(Source::ServiceNow, number_only.into(), ""),
            "missing_field",
        ),
        (
            webhook(Source::GitHub, no_issue.into(), "gh-1"),
            "missing_field",
        ),
        (no_delivery, "missing_header"),
    ];
    for (webhook, error) in &cases {
        let (status, answer) = e2e.send(webhook).await;
        assert_eq!(status, 400, "{:?}: {answer}", webhook.source);
        assert_eq!(answer["error"], *error, "{answer}");
        let detail = answer["detail"].as_str().is_some_and(|d| !d.is_empty());
        assert!(detail, "{answer}");
    }
    assert_eq!(e2e.count(TICKET_EVENTS).await, 0);

    e2e.send_sentinel().await;
    assert_eq!(e2e.count(TICKET_EVENTS).await, 1, "the sentinel only");
    assert_eq!(e2e.model.request_count(), 1);
    e2e.assert_only_called(Api::ServiceNow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_posting_and_acknowledging_does_not_post_twice() {
    let mut e2e = Pipeline::split().await;
    // Jira's first two calls (look, post) are answered at once; the third (the labels) is
    // held far longer than the test, so the write-back stops with the comment posted and
    // neither the done key nor the offset written.
    let held = Duration::from_secs(600);
    e2e.trackers.delay_next(Api::Jira, 2, Duration::ZERO);
    e2e.trackers.delay_next(Api::Jira, 1, held);
    // Labels to add, so there is a third call.
    e2e.model.push(model_answer());
    let webhook = fixture_webhook(Source::Jira, "jira-crash-1");
    let (status, answer) = e2e.send(&webhook).await;
    assert_eq!(status, 202, "{answer}");
    let post = format!("POST {JIRA_COMMENTS}");
    let posted = |c: &Call| c.line() == post && c.status == 201;
    wait_until(WAIT, "the comment to be posted", || async {
        e2e.calls(Api::Jira).iter().any(posted).then_some(())
    })
    .await;

    e2e.stop_writeback().await;
    let record = &e2e.records(TICKETS_ENRICHED, 1).await[0];
    let done_key = done_key(Source::Jira, &decode(record));
    let done = e2e.node.memory().await.get(&done_key).await.unwrap();
    assert_eq!(done, None, "stopped before remembering the write");
    let group = &e2e.config.writeback.consumer.group_id;
    let offsets = node::committed(&e2e.node.brokers(), group, TICKETS_ENRICHED).await;
    let committed = offsets.get(&record.partition()).copied();
    let unacknowledged = committed.is_none_or(|offset| offset <= record.offset());
    assert!(
        unacknowledged,
        "the record was not acknowledged: committed {committed:?}"
    );

    // The restarted worker gets the record again, finds its comment, and finishes.
    e2e.start_writeback().await;
    e2e.wait_written_back(&done_key).await;
    let get = format!("GET {JIRA_COMMENTS}");
    let expected = [get.clone(), post, get, format!("PUT {JIRA_ISSUE}")];
    let retried = "one comment; the retry looks, finds it, and only adds the labels";
    assert_eq!(lines(&e2e.calls(Api::Jira)), expected, "{retried}");
    assert_eq!(e2e.trackers.jira_comments(JIRA_ISSUE_ID).len(), 1);
    let labels = e2e.trackers.jira_labels(JIRA_ISSUE_ID);
    assert_eq!(labels, ["login", "needs-triage"]);
    assert_eq!(e2e.model.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_label_call_after_the_comment_is_retried_without_a_second_comment() {
    let e2e = Pipeline::start().await;
    // GitHub's third call (the labels, after look and post) fails with a 502.
    e2e.trackers.delay_next(Api::GitHub, 2, Duration::ZERO);
    e2e.trackers.fail_next(Api::GitHub, 1, 502, None);
    e2e.model.push(model_answer());
    let webhook = fixture_webhook(Source::GitHub, "gh-retry-1");
    let (status, answer) = e2e.send(&webhook).await;
    assert_eq!(status, 202, "{answer}");
    let enriched = decode(&e2e.records(TICKETS_ENRICHED, 1).await[0]);
    e2e.wait_written_back(&done_key(Source::GitHub, &enriched))
        .await;

    let get = format!("GET {GITHUB_COMMENTS}");
    let post = format!("POST {GITHUB_COMMENTS}");
    let labels = format!("POST {GITHUB_LABELS}");
    let auth = format!("Bearer {GITHUB_TOKEN}");
    let calls = [
        (&*get, 200),
        (&post, 201),
        (&labels, 502),
        (&get, 200),
        (&labels, 200),
    ];
    assert_calls(&e2e.calls(Api::GitHub), &auth, &calls);
    let (owner, repo, issue) = GITHUB_ISSUE;
    assert_eq!(e2e.trackers.github_comments(owner, repo, issue).len(), 1);
    let labels = e2e.trackers.github_labels(owner, repo, issue);
    assert_eq!(labels, ["login", "needs triage"]);
    assert_eq!(e2e.count(DEAD_LETTER).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatgptd_up_runs_the_pipeline_as_its_config_file_says() {
    chatgptd_testkit::init_logging();
    let (model, trackers) = fakes().await;
    // The configuration of the tests above, as a file; the secrets in the environment.
    let dir = tempfile::tempdir().unwrap();
    let (file, data_dir) = (dir.path().join("chatgptd.toml"), dir.path().join("data"));
    std::fs::write(&file, config_toml(&model, &trackers)).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatgptd"));
    // Nothing from the tests' own environment configures the child.
    for name in ["CHATGPTD_CONFIG", "RUST_LOG", "OPENAI_API_KEY"] {
        command.env_remove(name);
    }
    command.env_remove("OPENAI_BASE_URL").envs(SECRETS);
    command.arg("--config").arg(&file);
    command.args(["up", "--http-listen", "127.0.0.1:0", "--data-dir"]);
    command.arg(&data_dir).current_dir(dir.path());
    let up = ServerProcess::spawn(command, &dir.path().join("up.log")).unwrap();
    let embedded = || async { discovery::read(&data_dir) };
    let info = wait_until(Duration::from_secs(60), "embedded.json", embedded).await;
    let url = format!("{}{}", info.http, route(Source::GitHub));

    let client = http_client();
    let forged = fixture_webhook(Source::GitHub, "up-forged").signed_with("not the secret");
    let refused = forged.post(&client, &url).await.status();
    assert_eq!(refused, 401, "the secret from secret_env is checked");
    let webhook = fixture_webhook(Source::GitHub, "up-delivery-1");
    let accepted = webhook.post(&client, &url).await.status();
    assert_eq!(accepted, 202, "{}", up.log_tail());

    let posted = |c: &Call| c.line() == format!("POST {GITHUB_COMMENTS}") && c.status == 201;
    let found = tokio::time::timeout(Duration::from_secs(90), async {
        while !trackers.calls_to(Api::GitHub).iter().any(posted) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let found = found.await.is_ok();
    assert!(
        found,
        "no comment posted; chatgptd up said:\n{}",
        up.log_tail()
    );

    let (owner, repo, issue) = GITHUB_ISSUE;
    let comments = trackers.github_comments(owner, repo, issue);
    assert_eq!(comments.len(), 1);
    let marker = "<!-- chatgptd:github:Codertocat/Hello-World#1:";
    assert!(comments[0].contains(marker), "{}", comments[0]);
    let calls = trackers.calls_to(Api::GitHub);
    let call = calls.into_iter().find(posted).unwrap();
    let auth = format!("Bearer {GITHUB_TOKEN}");
    assert_eq!(call.header("authorization"), Some(auth.as_str()));
    let requests = model.requests();
    assert_eq!(requests.len(), 1, "one model call");
    let bearer = format!("Bearer {MODEL_KEY}");
    assert_eq!(requests[0].header("authorization"), Some(bearer.as_str()));
}
