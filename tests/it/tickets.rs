//! The ticket pipeline end to end: the real public webhook payloads of Jira Cloud, ServiceNow
//! and GitHub, signed the way each sender signs, through the gateway, Kafka (the mock
//! cluster), the enrichment worker (a fake OpenAI-compatible model) and the write-back worker,
//! to the exact REST calls a fake Jira/ServiceNow/GitHub receives. Each tracker is one row of
//! [`tracker`], checked by one path: `Pipeline::deliver` (every hop, the same for every
//! tracker), then [`Pipeline::assert_written`] (what the row says the tracker receives).
//!
//! Then what must change nothing: a redelivered webhook, a bad signature, a malformed
//! payload, and a write-back interrupted between posting its comment and acknowledging the
//! record. Last, the same path through the real binary (`chatgptd up`) and its config file.
//!
//! The workers are the real node's, configured by the `chatgptd.toml` of
//! `support::pipeline` with the fakes in it, their secrets from a map. One node runs the
//! roles of the pipeline as `chatgptd up` does, on one SQLite memory (the gateway's dedupe,
//! the model's result cache, the write-back's done keys); the interrupted write-back runs in
//! a node of its own beside ingest and enrich, as docker-compose deploys them, the two
//! sharing a redis-server.

use std::time::Duration;

use chatgptd_node::discovery;
use chatgptd_testkit::fake_trackers::{
    Api, Call, FakeTrackers, GITHUB_TOKEN, JIRA_API_TOKEN, JIRA_EMAIL, SERVICENOW_PASSWORD,
    SERVICENOW_USER, lines,
};
use chatgptd_testkit::process::ServerProcess;
use chatgptd_testkit::webhooks::{Webhook, fixture, signature_header};
use chatgptd_testkit::{basic_auth, http_client, wait_until};
use chatgptd_types::records::EnrichedTicket;
use chatgptd_types::topics::names::{DEAD_LETTER, TICKET_EVENTS, TICKETS_ENRICHED};
use chatgptd_worker_ingest::Source;
use chatgptd_worker_ingest::source::route;
use rdkafka::Message;
use serde_json::{Value, json};

use crate::support::chatgptd;
use crate::support::node;
use crate::support::pipeline::{
    Delivered, GITHUB_ISSUE, INCIDENT, JIRA_ISSUE_ID, JIRA_ISSUE_KEY, MODEL_KEY, Pipeline, REPLY,
    SECRETS, SUMMARY, SYS_ID, TRACEPARENT, WAIT, config_toml, decode, done_key, fakes, marker,
    model_answer,
};

/// The facts every tracker's note shows of the model's answer.
const FACTS: [(&str, &str); 6] = [
    ("Category", "access"),
    ("Suggested priority", "high"),
    ("Sentiment", "negative"),
    ("Language", "en"),
    ("Confidence", "87%"),
    ("Labels", "login, needs triage"),
];

/// One tracker end to end: the webhook of its fixture, the event it becomes, and the exact
/// calls of its write-back.
struct Tracker {
    api: Api,
    fixture: &'static str,
    /// Its sender's webhook of a body and a delivery id, signed.
    webhook: fn(Vec<u8>, &str) -> Webhook,
    /// The event's type, delivery id (the one sent with the fixture), ticket id, ticket key
    /// and title; its URL.
    event: [&'static str; 5],
    url: Option<&'static str>,
    /// `METHOD /path` and status: look for the marker, write the note, then add the labels
    /// where the tracker takes them.
    calls: &'static [(&'static str, u16)],
    /// Sent with every call: the credentials, and what the API asks for.
    headers: Vec<(&'static str, String)>,
    /// The look's query, in order.
    query: &'static [(&'static str, &'static str)],
    /// The note for a marker and a footer, as the tracker takes it.
    note: fn(&str, &str) -> Value,
    /// The bodies of the calls after the look, for that note.
    bodies: fn(Value) -> Vec<Value>,
    /// Whether the note carries the draft reply: only where the customer cannot see it.
    draft: bool,
    /// Checks what the ticket holds afterwards: the note, once, and the labels.
    holds: fn(&FakeTrackers, &Value),
}

/// The table: one row per tracker.
fn tracker(source: Source) -> Tracker {
    match source {
        Source::Jira => Tracker {
            api: Api::Jira,
            fixture: "jira/jira_issue_created.cloud.mattermost-plugin-jira.json",
            webhook: Webhook::jira,
            event: [
                "jira:issue_created",
                "jira-delivery-1",
                JIRA_ISSUE_ID,
                JIRA_ISSUE_KEY,
                "Lots of fields selected",
            ],
            url: Some("https://mmtest.atlassian.net/browse/KT-22"),
            calls: &[
                ("GET /rest/api/3/issue/10509/comment", 200),
                ("POST /rest/api/3/issue/10509/comment", 201),
                ("PUT /rest/api/3/issue/10509", 204),
            ],
            headers: vec![("authorization", basic_auth(JIRA_EMAIL, JIRA_API_TOKEN))],
            query: &[
                ("orderBy", "-created"),
                ("startAt", "0"),
                ("maxResults", "100"),
            ],
            note: jira_comment,
            // The reply is a draft, so the comment is internal in Service Management; Jira
            // labels cannot hold spaces.
            bodies: |note| {
                let internal = json!([{"key": "sd.public.comment", "value": {"internal": true}}]);
                let labels =
                    json!({"update": {"labels": [{"add": "login"}, {"add": "needs-triage"}]}});
                vec![json!({"body": note, "properties": internal}), labels]
            },
            draft: true,
            holds: |trackers, note| {
                assert_eq!(
                    trackers.jira_comments(JIRA_ISSUE_ID),
                    std::slice::from_ref(note)
                );
                let labels = trackers.jira_labels(JIRA_ISSUE_KEY);
                assert_eq!(labels, ["login", "needs-triage"]);
            },
        },
        Source::ServiceNow => Tracker {
            api: Api::ServiceNow,
            fixture: "servicenow/SYNTH_business_rule_outbound_incident.json",
            // The delivery id comes from the body, not a header: one per update of the record.
            webhook: |body, _| Webhook::servicenow(body),
            event: [
                "incident.updated",
                "a9e30c7dc61122760116894de7bcc7bd:2015-11-01 22:37:27",
                SYS_ID,
                INCIDENT,
                "Can't access SFA software",
            ],
            url: None,
            calls: &[
                (
                    "GET /api/now/table/incident/a9e30c7dc61122760116894de7bcc7bd",
                    200,
                ),
                (
                    "PATCH /api/now/table/incident/a9e30c7dc61122760116894de7bcc7bd",
                    200,
                ),
            ],
            headers: vec![(
                "authorization",
                basic_auth(SERVICENOW_USER, SERVICENOW_PASSWORD),
            )],
            query: &[
                ("sysparm_fields", "work_notes"),
                ("sysparm_display_value", "true"),
            ],
            note: |marker, footer| work_note(marker, footer).into(),
            // Only `work_notes` (private): nothing in `comments`, which the caller would see.
            bodies: |note| vec![json!({ "work_notes": note })],
            draft: true,
            holds: |trackers, note| {
                let note = ("work_notes".to_string(), note.as_str().unwrap().to_string());
                assert_eq!(trackers.servicenow_journal(SYS_ID), [note]);
            },
        },
        Source::GitHub => Tracker {
            api: Api::GitHub,
            fixture: "github/issues.opened.octokit-webhooks.json",
            webhook: |body, delivery_id| Webhook::github(body, "issues", delivery_id),
            event: [
                "issues.opened",
                "72d3162e-cc78-11e3-81ab-4c9367dc0958",
                "MDU6SXNzdWU0NDQ1MDAwNDE=",
                "Codertocat/Hello-World#1",
                "Spelling error in the README file",
            ],
            url: Some("https://github.com/Codertocat/Hello-World/issues/1"),
            calls: &[
                ("GET /repos/Codertocat/Hello-World/issues/1/comments", 200),
                ("POST /repos/Codertocat/Hello-World/issues/1/comments", 201),
                ("POST /repos/Codertocat/Hello-World/issues/1/labels", 200),
            ],
            headers: vec![
                ("authorization", format!("Bearer {GITHUB_TOKEN}")),
                ("x-github-api-version", "2022-11-28".into()),
                ("accept", "application/vnd.github+json".into()),
            ],
            // Every comment, no `since`: the marker may be older than this record.
            query: &[("per_page", "100"), ("page", "1")],
            note: |marker, footer| github_comment(marker, footer).into(),
            bodies: |note| {
                vec![
                    json!({"body": note}),
                    json!({"labels": ["login", "needs triage"]}),
                ]
            },
            // Issue comments are public.
            draft: false,
            holds: |trackers, note| {
                let (owner, repo, issue) = GITHUB_ISSUE;
                let comments = trackers.github_comments(owner, repo, issue);
                assert_eq!(comments, [note.as_str().unwrap()]);
                let labels = trackers.github_labels(owner, repo, issue);
                assert_eq!(labels, ["login", "needs triage"]);
            },
        },
    }
}

impl Tracker {
    /// `body` with the delivery headers of this tracker's sender, signed.
    fn webhook(&self, body: impl Into<Vec<u8>>, delivery_id: &str) -> Webhook {
        (self.webhook)(body.into(), delivery_id)
    }

    /// The `METHOD /path` of the look (0), the write (1) and the labels call (2).
    fn line(&self, call: usize) -> &'static str {
        self.calls[call].0
    }
}

/// The fixture of `source`, signed as its sender signs it, with a `traceparent`.
fn fixture_webhook(source: Source, delivery_id: &str) -> Webhook {
    let tracker = tracker(source);
    let webhook = tracker.webhook(fixture(tracker.fixture), delivery_id);
    webhook.with_header("traceparent", Some(TRACEPARENT))
}

// What a tracker receives, against its row; the pipeline itself is in `support::pipeline`.
impl Pipeline {
    /// Checks the write-back of `delivered` against its tracker's row: exactly its calls,
    /// the look's query, the note and labels sent, and what the ticket holds afterwards.
    fn assert_written(&self, delivered: &Delivered) {
        let tracker = tracker(delivered.source);
        let calls = self.assert_calls(&tracker, tracker.calls);
        assert_eq!(calls[0].query_pairs(), tracker.query);
        let marker = marker(delivered.source, &delivered.enriched);
        let note = (tracker.note)(&marker, &delivered.footer);
        let bodies: Vec<_> = calls[1..].iter().map(|call| call.body.clone()).collect();
        assert_eq!(bodies, (tracker.bodies)(note.clone()));
        let text = calls[1].body.to_string();
        let draft = text.contains("thanks for the report") || text.contains("DRAFT");
        assert_eq!(
            draft, tracker.draft,
            "a draft reply, where no customer sees it"
        );
        (tracker.holds)(&self.trackers, &note);
    }

    /// Checks that `tracker`'s calls are `expected` (`METHOD /path` and the status each
    /// got), each with the tracker's headers; returns them.
    fn assert_calls(&self, tracker: &Tracker, expected: &[(&str, u16)]) -> Vec<Call> {
        let calls = self.calls(tracker.api);
        let got: Vec<_> = calls.iter().map(|c| (c.line(), c.status)).collect();
        let expected: Vec<_> = expected.iter().map(|(l, s)| (l.to_string(), *s)).collect();
        assert_eq!(got, expected, "{calls:#?}");
        for call in &calls {
            for (name, value) in &tracker.headers {
                assert_eq!(call.header(name), Some(value.as_str()), "{name}");
            }
        }
        calls
    }

    /// Sends the ServiceNow fixture and waits for its write-back: proof that the pipeline ran
    /// past whatever was sent before it.
    async fn send_sentinel(&self) {
        let before = self.count(TICKETS_ENRICHED).await as usize;
        let (status, answer) = self.send(&fixture_webhook(Source::ServiceNow, "")).await;
        assert_eq!(status, 202, "{answer}");
        let enriched = self.records(TICKETS_ENRICHED, before + 1).await;
        let mut enriched = enriched.iter().map(decode::<EnrichedTicket>);
        let sentinel = enriched.find(|enriched| enriched.source == "servicenow");
        let done = done_key(
            Source::ServiceNow,
            &sentinel.expect("the sentinel's enrichment"),
        );
        self.wait_written_back(&done).await;
    }

    /// Checks that nothing sent so far went anywhere: no event, and after the sentinel only
    /// the sentinel's event, model call and write-back.
    async fn assert_only_the_sentinel_goes_through(&self) {
        assert_eq!(self.count(TICKET_EVENTS).await, 0);
        self.send_sentinel().await;
        assert_eq!(self.count(TICKET_EVENTS).await, 1, "the sentinel only");
        assert_eq!(self.model.request_count(), 1);
        self.assert_only_called(Api::ServiceNow);
        let servicenow = tracker(Source::ServiceNow);
        self.assert_calls(&servicenow, servicenow.calls);
    }
}

/// The Jira comment as Atlassian Document Format: the note, the draft reply, the
/// provenance, the marker.
fn jira_comment(marker: &str, footer: &str) -> Value {
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
fn work_note(marker: &str, footer: &str) -> String {
    let facts = FACTS.map(|(label, value)| format!("- {label}: {value}\n"));
    format!(
        "chatgptd triage\n{}\nSummary:\n{SUMMARY}\n\n\
         Suggested reply (DRAFT, not sent to the customer):\n{REPLY}\n\n{footer}\n[{marker}]",
        facts.concat()
    )
}

/// The GitHub comment: Markdown, the note only (issue comments are public: no draft).
fn github_comment(marker: &str, footer: &str) -> String {
    let facts = FACTS.map(|(label, value)| format!("- **{label}:** {value}\n"));
    format!(
        "**chatgptd triage**\n\n{}\n**Summary**\n\n{SUMMARY}\n\n\
         <sub>{footer}</sub>\n\n<!-- {marker} -->",
        facts.concat()
    )
}

/// Delivers `source`'s fixture through a pipeline of its own and checks every step, from
/// the event to what the ticket holds, against the tracker's row.
async fn deliver_and_check(source: Source) {
    let e2e = Pipeline::start().await;
    let tracker = tracker(source);
    let delivered = e2e
        .deliver(&fixture_webhook(source, tracker.event[1]))
        .await;
    let e = &delivered.event;
    let event = [
        &e.event_type,
        &e.delivery_id,
        &e.ticket_id,
        &e.ticket_key,
        &e.title,
    ];
    assert_eq!(event, tracker.event);
    assert_eq!(e.url.as_deref(), tracker.url);
    e2e.assert_written(&delivered);
    e2e.assert_only_called(tracker.api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jira_webhook_becomes_an_internal_adf_comment_and_labels() {
    deliver_and_check(Source::Jira).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servicenow_webhook_becomes_a_private_work_note_with_the_draft_reply() {
    deliver_and_check(Source::ServiceNow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_webhook_becomes_a_public_comment_without_the_draft_and_labels() {
    deliver_and_check(Source::GitHub).await;
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
    // Jira's three calls, once: still the one comment.
    e2e.assert_written(&delivered);
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
    e2e.assert_only_the_sentinel_goes_through().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_payload_gets_400_and_nothing_is_produced() {
    let e2e = Pipeline::start().await;
    let [jira, servicenow, github] =
        [Source::Jira, Source::ServiceNow, Source::GitHub].map(tracker);
    // Each correctly signed, so the refusal is about the payload.
    let cut = fixture(jira.fixture);
    let cut = &cut[..cut.len() / 2];
    let number_only = r#"{"event": "incident.updated", "number": "INC0000046"}"#;
    let no_delivery =
        fixture_webhook(Source::GitHub, "gh-2").with_header("X-GitHub-Delivery", None);
    let cases = [
        (jira.webhook(cut, "cut-1"), "malformed_json"),
        (servicenow.webhook("[1, 2, 3]", ""), "invalid_payload"),
        (servicenow.webhook(number_only, ""), "missing_field"),
        (
            github.webhook(r#"{"action": "opened"}"#, "gh-1"),
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
    e2e.assert_only_the_sentinel_goes_through().await;
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
    let jira = tracker(Source::Jira);
    let (look, post, put) = (jira.line(0), jira.line(1), jira.line(2));
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
    let retried = "one comment; the retry looks, finds it, and only adds the labels";
    let calls = lines(&e2e.calls(Api::Jira));
    assert_eq!(calls, [look, post, look, put], "{retried}");
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

    let github = tracker(Source::GitHub);
    let (look, post, labels) = (github.line(0), github.line(1), github.line(2));
    let calls = [
        (look, 200),
        (post, 201),
        (labels, 502),
        (look, 200),
        (labels, 200),
    ];
    e2e.assert_calls(&github, &calls);
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
    let mut command = chatgptd();
    // Nor do the model's settings in the tests' own environment configure the child.
    for name in ["OPENAI_API_KEY", "OPENAI_BASE_URL"] {
        command.env_remove(name);
    }
    command.envs(SECRETS).arg("--config").arg(&file);
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

    let post = tracker(Source::GitHub).line(1);
    let posted = |c: &Call| c.line() == post && c.status == 201;
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
