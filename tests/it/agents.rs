//! Agents and workflows in the real node (`chatgptd_node`, as `chatgptd up` runs them): the
//! mock cluster, a SQLite memory on disk, the offline model or a fake OpenAI-compatible
//! server on 127.0.0.1. Tests talk to the node over HTTP as a user does, and on Kafka where
//! they check records.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chatgptd_fleet::new_request;
use chatgptd_memory::{HistoryEntry, HistoryLimits};
use chatgptd_node::Role;
use chatgptd_testkit::fake_openai::{Behaviour, FakeOpenAi};
use chatgptd_testkit::wait_until;
use chatgptd_types::records::{AgentMessage, EnrichedTicket, MemoryRecord, WorkflowStep};
use chatgptd_types::topics::names;
use chatgptd_worker_workflows::{RunStatus, StepStatus};
use serde_json::{Value, json};

use crate::support::fleet::{
    Fleet, WAIT, agents_client, failure, first_prompt, get, post, resume, run_until, run_view,
    run_waiting, settled, start_run, step, steps_in,
};

/// What these tests' node runs: the agents and the workflow engine.
const ROLES: [Role; 2] = [Role::Agents, Role::Workflows];

/// Two agents talk: one asks, the other answers, the first answers back, and the hop limit
/// ends it with a refusal that nobody answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_round_trip_between_two_agents_ends_at_the_hop_limit() {
    let mut fleet = Fleet::new("agents-round-trip");
    // Two agents without a hop limit of their own: the worker's (2) applies.
    fleet.config.agents.max_hops = 2;
    let node = fleet.start(&ROLES).await;
    // Sent as an agent sends it: answers go back to the agent, not to an inbox.
    let body = "Three image moments for a Lisbon story";
    let mut request = new_request("wanderweave", "design-studio-pro", body, None, 0);
    request.reply_to = Some("wanderweave".into());
    agents_client(&node).await.send(&request).await.unwrap();

    let mut messages: Vec<AgentMessage> = fleet.records(names::AGENT_MESSAGES, 4).await;
    // Keyed by recipient, the messages sit on different partitions: read order is not
    // conversation order, the hop count is.
    messages.sort_by_key(|m| m.hop_count);
    let chain: Vec<(&str, &str, &str, i32)> = messages
        .iter()
        .map(|m| (&*m.from, &*m.to, &*m.kind, m.hop_count))
        .collect();
    assert_eq!(
        chain,
        [
            ("wanderweave", "design-studio-pro", "request", 0),
            ("design-studio-pro", "wanderweave", "reply", 1),
            ("wanderweave", "design-studio-pro", "reply", 2),
            ("design-studio-pro", "wanderweave", "refusal", 3),
        ]
    );
    assert!(messages[3].body.contains("hops"), "{}", messages[3].body);
    assert_eq!(messages[1].in_reply_to.as_deref(), Some(&*request.id));
    assert_eq!(messages[1].conversation_id, request.conversation_id);
    let provenance = messages[1].provenance.as_ref();
    assert!(provenance.is_some_and(|p| p.provider == "offline"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all: Vec<AgentMessage> = fleet.records(names::AGENT_MESSAGES, 5).await;
    assert_eq!(all.len(), 4, "nobody answers a refusal");

    // Heartbeats: the agents this worker serves are active; none is stale.
    let (_, agent) = get(&node, "/agents/wanderweave").await;
    assert_eq!(agent["status"], "active", "{agent}");
    node.stop().await.unwrap();
}

/// A broadcast reaches every enabled agent of the fleet, and each answer reaches the inbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broadcast_reaches_every_agent_of_a_fleet() {
    let fleet = Fleet::new("agents-broadcast");
    let node = fleet.start(&ROLES).await;
    let (registry, _) = node.stack.definitions().unwrap();
    let members: Vec<String> = registry
        .fleet("creative")
        .iter()
        .map(|a| a.id.clone())
        .collect();
    assert_eq!(members.len(), 4);
    let body = "Ideas for a winter campaign";
    let message = json!({"body": body, "from": "user:test", "timeout_ms": WAIT.as_millis()});
    let (status, body) = post(&node, "/fleets/creative/messages", message).await;
    assert_eq!(status, 200, "every member answered: {body}");
    let answers = body["answers"].as_array().unwrap();
    let mut from: Vec<&str> = answers
        .iter()
        .map(|a| a["from"].as_str().unwrap())
        .collect();
    from.sort();
    assert_eq!(from, members);
    assert!(answers.iter().all(|a| a["kind"] == "reply"));
    node.stop().await.unwrap();
}

/// An agent answers with its conversation so far: earlier turns of this conversation are in
/// the prompt, even behind many turns of other conversations; other conversations, later
/// turns and this very message's own entries (there on a redelivery) are not, so a
/// redelivery asks the model the same question.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reply_sees_the_conversation_before_it_and_nothing_else() {
    let fake = FakeOpenAi::start().await;
    let fleet = Fleet::with_fake("agents-history", &fake);
    let node = fleet.start(&ROLES).await;
    // Its id and time are known before it is sent, so that its own entry can be there.
    let (to, conversation) = ("design-studio-pro", Some("conversation-1"));
    let mut message = new_request("user:test", to, "And the cover image?", conversation, 0);
    message.reply_to = None;
    let entry = |id: &str, conversation: &str, text: &str, at_ms: i64| HistoryEntry {
        id: format!("message:{id}:design-studio-pro"),
        role: "user".into(),
        text: text.into(),
        at_ms,
        attributes: BTreeMap::from([("conversation_id".to_string(), conversation.to_string())]),
    };
    let sent = message.sent_at_ms;
    let mut history = vec![entry("m0", "conversation-1", "EARLIER TURN", sent - 1000)];
    // A busy agent: many turns of other conversations since this one's last.
    for i in 0..60 {
        let busy = entry(
            &format!("busy{i}"),
            "conversation-busy",
            "BUSY ELSEWHERE",
            sent - 900 + i,
        );
        history.push(busy);
    }
    history.extend([
        entry("m1", "conversation-2", "OTHER CONVERSATION", sent - 500),
        entry(&message.id, "conversation-1", "OWN MESSAGE", sent),
        entry("m9", "conversation-1", "LATER TURN", sent + 5000),
    ]);
    let memory = node.stack.memory().await.unwrap();
    let limits = HistoryLimits {
        cap: 200,
        ttl: None,
    };
    for entry in &history {
        let owner = "agent:design-studio-pro";
        memory.append_history(owner, entry, limits).await.unwrap();
    }
    agents_client(&node).await.send(&message).await.unwrap();
    let prompt = first_prompt(&fake).await;
    assert!(prompt.contains("EARLIER TURN"), "{prompt}");
    for absent in [
        "OTHER CONVERSATION",
        "BUSY ELSEWHERE",
        "OWN MESSAGE",
        "LATER TURN",
    ] {
        assert!(!prompt.contains(absent), "{absent} in {prompt}");
    }
    node.stop().await.unwrap();
}

/// An agent's prompt carries relevant memory found in the node's Tantivy index on disk, as
/// its indexer wrote it from `memory.records`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reply_draws_on_relevant_memory_from_the_search_index() {
    let fake = FakeOpenAi::start().await;
    let mut fleet = Fleet::with_fake("agents-retrieval", &fake);
    fleet.config.indexer.index.commit_interval = Duration::from_millis(50);
    let node = fleet
        .start(&[Role::Indexer, Role::Agents, Role::Workflows])
        .await;
    let tram = "Tram 28 to the castle leaves from Martim Moniz, board early";
    let invoices = "Invoices are emailed on the first of the month";
    for (id, text) in [("r1", tram), ("r2", invoices)] {
        let record = MemoryRecord {
            id: id.into(),
            owner: "run:earlier".into(),
            kind: "step_result".into(),
            text: text.into(),
            tags: vec![],
            created_at_ms: chatgptd_types::now_ms(),
            source_topic: names::WORKFLOW_STEPS.into(),
            source_partition: 0,
            source_offset: 0,
            attributes: BTreeMap::new(),
        };
        fleet.produce(names::MEMORY_RECORDS, id, &record).await;
    }
    // Both searchable before the question: what the prompt leaves out is not relevant.
    wait_until(WAIT, "both records indexed", || async {
        let (_, found) = get(&node, "/search?owner=run:earlier").await;
        (found["total"] == 2).then_some(())
    })
    .await;
    let question = "Which tram goes up to the castle in Lisbon?";
    let message = json!({"body": question, "from": "user:test", "wait": false});
    let (status, body) = post(&node, "/agents/wanderweave/messages", message).await;
    assert_eq!(status, 202, "{body}");
    let prompt = first_prompt(&fake).await;
    assert!(prompt.contains("Martim Moniz"), "{prompt}");
    assert!(
        !prompt.contains("Invoices"),
        "only what is relevant: {prompt}"
    );
    node.stop().await.unwrap();
}

/// A message bringing an agent back into a chain it spoke in too often is refused as a loop;
/// one over its token budget is refused with the numbers; an unknown agent is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn loops_budgets_and_unknown_agents_are_refused_with_a_reason() {
    let mut fleet = Fleet::new("agents-refusals");
    fleet.config.agents.max_hops = 20;
    let node = fleet.start(&ROLES).await;
    // Messages as other workers send them: a chain, a budget, an agent nobody knows.
    let client = agents_client(&node).await;
    let mut looping = new_request("user:test", "wanderweave", "Again?", None, 0);
    looping.path = [
        "wanderweave",
        "design-studio-pro",
        "wanderweave",
        "design-studio-pro",
        "wanderweave",
    ]
    .map(String::from)
    .to_vec();
    looping.hop_count = 5;
    let story = "Write me a long story";
    let tiny = new_request("user:test", "wanderweave", story, None, 10);
    let unknown = new_request("user:test", "no-such-agent", "hello", None, 0);
    for message in [&looping, &tiny, &unknown] {
        client.send(message).await.unwrap();
    }
    for (message, reason) in [
        (&looping, "loop detected"),
        (&tiny, "token budget of 10"),
        (&unknown, "no agent `no-such-agent`"),
    ] {
        let answers = client.wait(&message.id, 1, WAIT).await.unwrap();
        assert_eq!(answers.len(), 1);
        let answer = &answers[0];
        assert_eq!(answer["kind"], "refusal", "{answer}");
        assert!(
            answer["body"].as_str().unwrap().contains(reason),
            "{answer}"
        );
    }
    node.stop().await.unwrap();
}

/// The research workflow fans out to three researchers and its synthesis starts only once
/// the slowest of them finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fan_in_waits_for_every_branch() {
    let fake = FakeOpenAi::start().await;
    // The plan answers at once; one of the three branches is slow.
    fake.push_all([
        Behaviour::Ok,
        Behaviour::Slow(Duration::from_millis(1500)),
        Behaviour::Ok,
        Behaviour::Ok,
    ]);
    let fleet = Fleet::with_fake("workflows-fan-in", &fake);
    let node = fleet.start(&ROLES).await;
    let view = run_waiting(&node, "research", json!({"question": "Rail passes?"})).await;
    assert_eq!(view.run.status, RunStatus::Succeeded, "{view:?}");
    let synthesis_started = step(&view, "synthesize").started_at_ms.unwrap();
    let mut branches_finished = Vec::new();
    for branch in ["market", "technology", "risk"] {
        let state = step(&view, branch);
        assert_eq!(state.status, StepStatus::Succeeded);
        branches_finished.push(state.finished_at_ms.unwrap());
    }
    let slowest = *branches_finished.iter().max().unwrap();
    assert!(
        synthesis_started >= slowest,
        "synthesis at {synthesis_started}, a branch finished at {slowest}"
    );
    assert!(
        slowest - step(&view, "plan").finished_at_ms.unwrap() >= 1400,
        "one branch was slow"
    );
    let outputs = step(&view, "synthesize").input.unwrap();
    assert!(outputs.contains("Rail passes?"));
    assert_eq!(fake.request_count(), 5, "one model call per step");
    node.stop().await.unwrap();
}

/// A step record delivered again after its result was stored (a redelivery after a crash
/// between storing and committing) calls no model and emits nothing it had not emitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redelivered_finished_step_calls_no_model_and_emits_nothing_new() {
    let fake = FakeOpenAi::start().await;
    let fleet = Fleet::with_fake("workflows-redelivered", &fake);
    let node = fleet.start(&ROLES).await;
    let view = run_waiting(&node, "research", json!({"question": "Trains?"})).await;
    assert_eq!(view.run.status, RunStatus::Succeeded, "{view:?}");
    assert_eq!(fake.request_count(), 5);
    let run = &view.run_id;
    // Every record the topic holds (read until nothing more comes for a while), as this
    // run's (step, kind).
    let all_steps = async || {
        let steps: Vec<WorkflowStep> = fleet.records(names::WORKFLOW_STEPS, usize::MAX).await;
        let steps = steps.into_iter().filter(|s| s.run_id == *run);
        steps.map(|s| (s.step_id, s.kind)).collect::<Vec<_>>()
    };
    let before = all_steps().await;

    fleet.send_step(run, "research", "market", "execute").await;
    // Until the engine committed everything, including whatever the redelivery emitted.
    fleet.steps_settled().await;
    let after = all_steps().await;
    assert_eq!(fake.request_count(), 5, "no second model call");
    // At-least-once: a redelivered step emits again what it emitted before (its fan-in),
    // so a crash between storing and emitting cannot stall the run; nothing new.
    assert!(after.len() > before.len());
    let new: Vec<_> = after.iter().filter(|s| !before.contains(s)).collect();
    assert!(new.is_empty(), "{new:?} were not emitted before");
    let finished = run_view(&node, run).await.unwrap();
    assert_eq!(finished.run, view.run, "the run is as it was");
    let results: Vec<MemoryRecord> = fleet.records(names::MEMORY_RECORDS, usize::MAX).await;
    let owner = format!("run:{run}");
    let stored = results.iter().filter(|r| r.owner == owner).count();
    assert_eq!(stored, 5, "no step result stored twice");
    node.stop().await.unwrap();
}

/// A plan, two parallel branches and their join, with quick retries; the branches are not
/// retried.
const FRAGILE: &str = r#"name: fragile
description: A plan, two parallel branches and their join, with quick retries.
input:
  topic: {type: string, required: true}
steps:
  - id: plan
    agent: atlas-sentinel
    input: "PLAN {{ input.topic }}"
    retry: {max_attempts: 2, backoff: {initial: 10ms, max: 10ms}}
    timeout: 500ms
  - id: left
    agent: atlas-sentinel
    depends_on: [plan]
    input: "LEFT {{ steps.plan.output }}"
    retry: {max_attempts: 1}
  - id: right
    agent: atlas-sentinel
    depends_on: [plan]
    input: "RIGHT {{ steps.plan.output }}"
    retry: {max_attempts: 1}
  - id: join
    agent: atlas-sentinel
    depends_on: [left, right]
    input: "JOIN {{ steps.left.output }} {{ steps.right.output }}"
"#;

/// A step times out and is retried by its policy; two parallel branches are refused by the
/// model (permanent), which fails the run with the step's error; resuming the run sends both
/// branches again (not only the one recorded as failed), and the run completes without
/// calling the model again for the steps that had succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_run_resumes_every_unfinished_branch() {
    let fake = FakeOpenAi::start().await;
    // The plan's first attempt outlives its timeout; the second answers. Both branches are
    // refused, whichever asks first.
    fake.push_all([
        Behaviour::Slow(Duration::from_secs(2)),
        Behaviour::Ok,
        Behaviour::Refusal,
        Behaviour::Refusal,
    ]);
    let mut fleet = Fleet::with_fake("workflows-resume", &fake);
    fleet.workflow("fragile", FRAGILE);
    let node = fleet.start(&ROLES).await;
    let run = start_run(&node, "fragile", json!({"topic": "tides"})).await;

    let failed = run_until(&node, &run, "both branches to fail", |view| {
        view.run.status == RunStatus::Failed && steps_in(view, StepStatus::Failed) == 2
    })
    .await;
    let plan = step(&failed, "plan");
    assert_eq!(
        (plan.status, plan.attempts),
        (StepStatus::Succeeded, 2),
        "the timed-out attempt was retried by the step's policy"
    );
    for branch in ["left", "right"] {
        let state = step(&failed, branch);
        assert_eq!(state.attempts, 1, "a refusal is not retried");
        assert!(
            state.error.as_deref().unwrap().contains("model_refusal"),
            "{state:?}"
        );
    }
    let error = failed.run.error.as_deref().unwrap();
    assert!(
        error.contains("model_refusal"),
        "the run carries the step's error: {error}"
    );
    assert_eq!(step(&failed, "join").status, StepStatus::Pending);
    assert_eq!(fake.request_count(), 4);

    let mut resumed = resume(&node, &run).await.unwrap();
    resumed.sort();
    assert_eq!(resumed, ["left", "right"]);
    let view = settled(&node, &run).await;
    assert_eq!(view.run.status, RunStatus::Succeeded, "{view:?}");
    assert!(view.run.error.is_none());
    assert_eq!(steps_in(&view, StepStatus::Succeeded), view.steps.len());
    assert_eq!(
        fake.request_count(),
        7,
        "the branches and the join, and not the plan again"
    );
    assert!(
        resume(&node, &run).await.is_err(),
        "a run that succeeded cannot be resumed"
    );
    node.stop().await.unwrap();
}

/// A resumed run whose first resumed branch fails again stays failed: an answer that
/// arrives after its run failed (the other branch's) is kept, but neither flips the run back
/// to running (where its join would wait forever and `resume` would refuse a run "not
/// failed") nor lets the run go on. A second resume sends only the branch still failed, and
/// the join, which counted the kept answer, finishes the run. Each agent answers one message
/// at a time, in the order they were sent (both branches go to the same agent).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_branch_failing_again_after_a_resume_leaves_the_run_failed_and_resumable() {
    let fake = FakeOpenAi::start().await;
    // The plan answers; `left` is refused (the run fails) and so is `right`, whose answer
    // arrives at a failed run; resumed, `left` is refused again while `right` answers;
    // everything after that answers.
    fake.push_all([
        Behaviour::Ok,
        Behaviour::Refusal,
        Behaviour::Refusal,
        Behaviour::Refusal,
    ]);
    let mut fleet = Fleet::with_fake("workflows-fails-again", &fake);
    fleet.workflow("fragile", FRAGILE);
    fleet.config.workflows.consumer.max_in_flight_per_partition = 1;
    let node = fleet.start(&ROLES).await;
    let run = start_run(&node, "fragile", json!({"topic": "tides"})).await;
    fleet.steps_settled().await;
    let failed = run_view(&node, &run).await.unwrap();
    assert_eq!(failed.run.status, RunStatus::Failed, "{failed:?}");
    assert_eq!(failed.run.failed_step.as_deref(), Some("left"));
    assert_eq!(step(&failed, "right").status, StepStatus::Failed);
    assert_eq!(fake.request_count(), 3, "plan, left and right");

    let resumed = resume(&node, &run).await.unwrap();
    assert_eq!(resumed, ["left", "right"], "both failed branches");
    fleet.steps_settled().await;
    let again = run_view(&node, &run).await.unwrap();
    assert_eq!(
        again.run.status,
        RunStatus::Failed,
        "left failed again, and right's answer came after: {again:?}"
    );
    assert_eq!(again.run.failed_step.as_deref(), Some("left"));
    let error = again.run.error.as_deref().unwrap();
    assert!(error.contains("model_refusal"), "{error}");
    assert_eq!(
        step(&again, "right").status,
        StepStatus::Succeeded,
        "right's answer, arriving at a failed run, is kept"
    );
    assert_eq!(fake.request_count(), 5);

    let resumed = resume(&node, &run)
        .await
        .expect("the failed run resumes again");
    assert_eq!(resumed, ["left"]);
    let view = settled(&node, &run).await;
    assert_eq!(view.run.status, RunStatus::Succeeded, "{view:?}");
    let succeeded = steps_in(&view, StepStatus::Succeeded);
    assert_eq!(succeeded, view.steps.len(), "{view:?}");
    assert_eq!(fake.request_count(), 7, "left and the join");
    node.stop().await.unwrap();
}

/// A step record of a run that goes to the dead-letter topic (here: a step the workflow does
/// not have) fails the run with a pointer to the letter, instead of leaving it running.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_lettered_step_fails_its_run_instead_of_leaving_it_running() {
    let fleet = Fleet::new("workflows-dead-letter");
    let node = fleet.start(&ROLES).await;
    let run = start_run(&node, "content-creation", json!({"topic": "Porto"})).await;
    // Held for approval: running, waiting for a person.
    let view = settled(&node, &run).await;
    assert_eq!(view.run.status, RunStatus::Running, "{view:?}");
    let (workflow, stray) = ("content-creation", "no-such-step");
    fleet.send_step(&run, workflow, stray, "execute").await;
    let failed = run_until(&node, &run, "the run to fail", |view| {
        view.run.status == RunStatus::Failed
    })
    .await;
    let error = failed.run.error.unwrap();
    assert!(
        error.contains("dead-lettered") && error.contains(names::WORKFLOW_STEPS),
        "{error}"
    );
    // A resume record that was not sent by a resume (a stray or replayed one) does not undo
    // the failure; an explicit resume does.
    fleet.send_step(&run, workflow, "story", "resume").await;
    fleet.steps_settled().await;
    let still = run_view(&node, &run).await.unwrap();
    assert_eq!(
        still.run.status,
        RunStatus::Failed,
        "a stray resume record leaves the run failed: {still:?}"
    );
    assert_eq!(still.run.error.as_deref(), Some(error.as_str()));
    resume(&node, &run)
        .await
        .expect("the failed run can be resumed");
    let resumed = run_view(&node, &run).await.unwrap();
    assert_eq!(resumed.run.status, RunStatus::Running);
    node.stop().await.unwrap();
}

/// A worker whose output topic is missing refuses to start, naming it, instead of stalling
/// on the first record that needs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_refuses_to_start_without_its_output_topic() {
    let mut fleet = Fleet::new("workflows-no-output");
    fleet.config.workflows.memory_topic = "memory.nowhere".into();
    let err = failure(fleet.start(&ROLES).await).await;
    assert!(
        err.contains("memory.nowhere") && err.contains("chatgptd topics apply"),
        "{err}"
    );
}

/// A step whose attempts could outlast the consumer's process_timeout would be cut off and
/// run again, model and all: the engine refuses to start, naming the step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_longer_than_the_process_timeout_is_refused_at_start() {
    let mut fleet = Fleet::new("workflows-too-slow");
    fleet.workflow(
        "slow",
        r#"name: slow
description: One step that may take an hour.
input:
  topic: {type: string, required: true}
steps:
  - id: ponder
    agent: atlas-sentinel
    input: "PONDER {{ input.topic }}"
    retry: {max_attempts: 2}
    timeout: 30m
"#,
    );
    let err = failure(fleet.start(&ROLES).await).await;
    assert!(
        err.contains("workflow slow step ponder") && err.contains("process_timeout"),
        "{err}"
    );
}

/// A workflow worker dies in the middle of a step; another takes the step over and the run
/// completes once: each step's record is emitted once and its output stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_during_a_step_completes_the_run_once() {
    let fake = FakeOpenAi::start().await;
    // The first step's model call lasts long enough to be seen running on a loaded machine
    // (the runs are polled over HTTP); the second process's calls are quick.
    fake.set_latency(Duration::from_secs(5));
    let mut fleet = Fleet::with_fake("workflows-killed", &fake);
    // No time to drain: the step in flight is abandoned, uncommitted, as in a crash.
    let drain = fleet.config.workflows.consumer.drain_timeout;
    fleet.config.workflows.consumer.drain_timeout = Duration::from_millis(1);
    let first = fleet.start(&ROLES).await;
    let input = json!({"topic": "Lisbon on foot"});
    let run = start_run(&first, "content-creation", input).await;
    run_until(&first, &run, "the first step running", |view| {
        step(view, "story").status == StepStatus::Running
    })
    .await;
    first.stop().await.unwrap();
    fake.set_latency(Duration::from_millis(300));

    // Another process of the same group, on the same memory.
    fleet.config.workflows.consumer.drain_timeout = drain;
    let second = fleet.start(&ROLES).await;
    let view = run_until(&second, &run, "the run to reach its approval", |view| {
        steps_in(view, StepStatus::WaitingApproval) > 0
    })
    .await;
    assert_eq!(view.steps[0].state.status, StepStatus::Succeeded);
    let approve = format!("/runs/{run}/steps/show/approve");
    let (status, body) = post(&second, &approve, Value::Null).await;
    assert_eq!(status, 202, "{body}");
    let view = settled(&second, &run).await;
    assert_eq!(view.run.status, RunStatus::Succeeded, "{view:?}");

    let steps: Vec<WorkflowStep> = fleet.records(names::WORKFLOW_STEPS, usize::MAX).await;
    let mut emitted: HashMap<&str, usize> = HashMap::new();
    for step in steps.iter().filter(|s| s.run_id == run) {
        if step.kind == "execute" {
            *emitted.entry(&step.step_id).or_default() += 1;
        }
    }
    // `show` twice: held for approval, then sent again by the approval.
    let once_each = [("story", 1), ("visuals", 1), ("show", 2)];
    assert_eq!(emitted, HashMap::from(once_each));
    let results: Vec<MemoryRecord> = fleet.records(names::MEMORY_RECORDS, usize::MAX).await;
    let mut stored: BTreeMap<String, usize> = BTreeMap::new();
    for record in results.iter().filter(|r| r.owner == format!("run:{run}")) {
        *stored.entry(record.id.clone()).or_default() += 1;
    }
    assert_eq!(stored.len(), 3, "one result per step: {stored:?}");
    assert!(
        stored.values().all(|n| *n == 1),
        "no step output stored twice: {stored:?}"
    );
    second.stop().await.unwrap();
}

/// A hundred runs started at once all complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_runs_all_complete() {
    let fleet = Fleet::new("workflows-hundred");
    let node = fleet.start(&ROLES).await;
    let mut runs = Vec::new();
    for i in 0..100 {
        let input = json!({"question": format!("Question {i}?")});
        runs.push(start_run(&node, "research", input).await);
    }
    for run in &runs {
        let view = settled(&node, run).await;
        assert_eq!(view.run.status, RunStatus::Succeeded, "run {run}: {view:?}");
        assert_eq!(steps_in(&view, StepStatus::Succeeded), view.steps.len());
    }
    node.stop().await.unwrap();
}

/// An enriched ticket in the `security` category starts the security audit, whose last step
/// (shield-core's remediation) waits for the approval of the access change it requests; the
/// same ticket delivered again starts nothing new; a ticket of another category starts
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_security_ticket_triggers_the_security_audit_once() {
    let mut fleet = Fleet::new("workflows-triggered");
    fleet.config.workflows.triggers = true;
    let node = fleet.start(&ROLES).await;
    let ticket = |key: &str, category: &str| EnrichedTicket {
        event_id: format!("event-{key}"),
        source: "jira".into(),
        ticket_id: key.to_lowercase(),
        ticket_key: key.into(),
        title: "Phishing email asks staff to reset VPN passwords".into(),
        category: category.into(),
        summary: "Several staff received a convincing VPN reset email.".into(),
        ..chatgptd_types::records::examples::enriched()
    };
    let security = ticket("SEC-1", "security");
    for value in [&security, &security, &ticket("BILL-1", "billing")] {
        let key = value.key();
        fleet.produce(names::TICKETS_ENRICHED, &key, value).await;
    }

    // Every record of the run's partition, not the first two: the engine may emit the run's
    // first step between the two starts.
    let starts = wait_until(WAIT, "the triggered start records", || async {
        let steps: Vec<WorkflowStep> = fleet.records(names::WORKFLOW_STEPS, usize::MAX).await;
        let starts: Vec<WorkflowStep> = steps.into_iter().filter(|s| s.kind == "start").collect();
        (starts.len() >= 2).then_some(starts)
    })
    .await;
    let audit =
        |s: &WorkflowStep| s.workflow == "security-audit" && s.step_id == "ticket:jira:sec-1";
    assert!(starts.iter().all(audit), "{starts:?}");
    assert!(
        starts.iter().all(|s| s.run_id == starts[0].run_id),
        "a redelivered ticket starts the same run"
    );
    let input: Value = serde_json::from_str(&starts[0].input_json).unwrap();
    assert_eq!(input["ticket_key"], "SEC-1");

    let view = settled(&node, &starts[0].run_id).await;
    let remediate = step(&view, "remediate");
    assert_eq!(remediate.status, StepStatus::Waiting, "{view:?}");
    let held = view.steps.iter().find(|s| s.id == "remediate").unwrap();
    assert_eq!(held.approvals.len(), 1, "{held:?}");
    assert!(
        remediate.input.as_deref().unwrap().contains("Phishing"),
        "the waiting step shows what it was asked"
    );
    node.stop().await.unwrap();
}

/// `POST /workflows/{name}/runs` over HTTP on 127.0.0.1: a wait it cannot honour (none, a
/// negative or fractional one, or longer than a held connection should last) is refused with
/// the allowed range, and starts no run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_request_with_an_out_of_range_timeout_is_refused_with_the_range() {
    let mut fleet = Fleet::new("workflows-timeout-range");
    // The engine reads its steps from another, empty cluster: here no run ever starts, let
    // alone finishes, and the steps topic holds only what the requests sent.
    let elsewhere = crate::support::node::kafka();
    let engine = &mut fleet.config.workflows.consumer.properties;
    engine.insert("bootstrap.servers".into(), elsewhere.brokers());
    let node = fleet.start(&ROLES).await;
    let start = |timeout_ms: Value, wait: bool| {
        let request =
            json!({"input": {"question": "Ferries?"}, "wait": wait, "timeout_ms": timeout_ms});
        post(&node, "/workflows/research/runs", request)
    };
    for refused in [
        json!(0),
        json!(-1),
        json!(1.5),
        json!(300_001),
        json!(u64::MAX),
    ] {
        let (status, body) = start(refused.clone(), true).await;
        assert_eq!(status, 400, "timeout_ms {refused}: {body}");
        assert_eq!(body["error"], "timeout_ms out of range", "{body}");
        assert_eq!(
            (body["min_ms"].as_u64(), body["max_ms"].as_u64()),
            (Some(1), Some(300_000))
        );
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("from 1 to 300000"), "{body}");
    }
    // The run never finishes, so the longest wait is asked for without waiting.
    for (accepted, wait) in [(1, true), (300_000, false)] {
        let (status, body) = start(json!(accepted), wait).await;
        assert_eq!(status, 202, "{accepted}: {body}");
        assert!(body["run_id"].is_string(), "{body}");
    }
    let starts: Vec<WorkflowStep> = fleet.records(names::WORKFLOW_STEPS, usize::MAX).await;
    assert_eq!(starts.len(), 2, "only the accepted requests started runs");
    node.stop().await.unwrap();
}
