//! Workflow steps that act (issue 12, §5): a step is a message to its agent, answered by the
//! agent's tool loop with the same policy, approvals, audit and once-only guarantees as any
//! message; its answer comes back to the engine as a `result` record. The real node on the
//! mock cluster, SQLite memory on disk, the offline model or a scripted fake
//! OpenAI-compatible server on 127.0.0.1.

use chatgptd_fleet::StepCall;
use chatgptd_node::Role;
use chatgptd_runtime::http::Scope;
use chatgptd_testkit::fake_openai::{FakeOpenAi, Scripted};
use chatgptd_types::records::{ActionAudit, AgentMessage, ApprovalRequest, Escalation};
use chatgptd_types::topics::names;
use chatgptd_worker_workflows::{RunStatus, RunView, StepStatus};
use serde_json::json;

use crate::support::fleet::{Fleet, get, post_as, run_until, settled, start_run, step};
use crate::support::node::Node;

const ROLES: [Role; 2] = [Role::Agents, Role::Workflows];

/// The audit events of `action`, in the order they happened.
fn events<'a>(audit: &'a [ActionAudit], action: &str) -> Vec<&'a str> {
    let mut mine: Vec<&ActionAudit> = audit.iter().filter(|a| a.action == action).collect();
    mine.sort_by_key(|a| a.at_ms);
    mine.iter().map(|a| a.event.as_str()).collect()
}

/// The security audit of a phishing report, started over the API.
async fn audit_run(node: &Node) -> String {
    let input = json!({
        "target": "Phishing email asks staff to reset VPN passwords",
        "details": "Several staff clicked the link.",
        "ticket_key": "SEC-7",
    });
    start_run(node, "security-audit", input).await
}

/// Waits until `step` of `run` waits for an approval; the run then, and the approval as
/// `GET /approvals?state=pending` lists it.
async fn waiting_for_approval(node: &Node, run: &str, id: &str) -> (RunView, ApprovalRequest) {
    let view = run_until(node, run, "the step to wait for an approval", |view| {
        view.steps
            .iter()
            .any(|s| s.id == id && s.state.status == StepStatus::Waiting)
    })
    .await;
    assert_eq!(view.run.status, RunStatus::Running, "{view:?}");
    let held = view.steps.iter().find(|s| s.id == id).unwrap();
    assert_eq!(held.approvals.len(), 1, "{held:?}");
    let (status, body) = get(node, "/approvals?state=pending").await;
    assert_eq!(status, 200, "{body}");
    let pending: Vec<ApprovalRequest> = serde_json::from_value(body["approvals"].clone()).unwrap();
    let approval = pending
        .into_iter()
        .find(|a| a.id == held.approvals[0])
        .expect("the step's approval is listed as pending");
    (view, approval)
}

/// The people who decide, with the tokens [`post_as`] sends.
const ALICE: &str = "alice-secret";

fn people(fleet: &mut Fleet) {
    fleet.token("ops", &[Scope::Admin], "ops-secret");
    fleet.token("alice", &[Scope::Approve], ALICE);
}

/// The catalogue with `escalate_to_human` needing approval, so that an approved step can be
/// seen taking effect once: an escalation record.
fn escalation_needs_approval(fleet: &mut Fleet) {
    fleet.agents(|file, text| {
        if file != "actions.yaml" {
            return text;
        }
        let marker = "  - id: escalate_to_human\n";
        assert!(text.contains(marker));
        text.replace(
            marker,
            &format!("{marker}    approval: true\n    approval_expiry: 1h\n"),
        )
    });
}

/// The research example with the offline model: the planner's step asks the market
/// researcher (`message_agent`, from the phrase in its input), waits for the reply in the
/// same conversation, and the run completes with the reply in the plan's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_research_planner_asks_a_researcher_and_the_run_completes_with_the_reply() {
    let fleet = Fleet::new("steps-research");
    let node = fleet.start(&ROLES).await;
    let run = start_run(&node, "research", json!({"question": "Rail passes?"})).await;
    let view = settled(&node, &run).await;
    assert_eq!(view.run.status, RunStatus::Succeeded, "{view:?}");

    let messages: Vec<AgentMessage> = fleet.records(names::AGENT_MESSAGES, usize::MAX).await;
    let plan = StepCall {
        workflow: "research".into(),
        run: run.clone(),
        step: "plan".into(),
        attempt: 1,
    };
    let sent = messages.iter().find(|m| m.id == plan.message_id());
    let sent = sent.expect("the engine sent the plan step to its agent");
    assert_eq!(sent.to, "atlas-sentinel");
    let asked = messages
        .iter()
        .find(|m| m.from == "atlas-sentinel" && m.to == "atlas-researcher-market")
        .expect("the planner asked the market researcher");
    assert_eq!(asked.conversation_id, format!("run:{run}"));
    let reply = messages
        .iter()
        .find(|m| m.from == "atlas-researcher-market" && m.correlation_id == asked.correlation_id)
        .expect("the researcher replied to the planner");
    assert_eq!(reply.kind, "reply");

    let output = step(&view, "plan").output.unwrap();
    assert!(output.contains("atlas-researcher-market"), "{output}");
    let audit: Vec<ActionAudit> = fleet.records(names::AGENT_AUDIT, usize::MAX).await;
    assert_eq!(events(&audit, "message_agent"), ["decided", "executed"]);
    // The fan-out goes on from the plan, with the reply in what it reads.
    let market = step(&view, "market").input.unwrap();
    assert!(market.contains("atlas-researcher-market"), "{market}");
    node.stop().await.unwrap();
}

/// The security-audit example with the offline model: Shield Core's remediation requests
/// an access change (`modify_access`), which the policy holds for approval; the step and the
/// run wait, visibly, holding no worker. Denied, the model is told who denied it and why,
/// and the run finishes without the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_remediation_waits_for_its_approval_and_a_denial_reaches_the_model() {
    let mut fleet = Fleet::new("steps-audit-deny");
    people(&mut fleet);
    let node = fleet.start(&ROLES).await;
    let run = audit_run(&node).await;
    let (view, approval) = waiting_for_approval(&node, &run, "remediate").await;
    assert_eq!(step(&view, "audit").status, StepStatus::Succeeded);
    assert_eq!(
        (&*approval.agent, &*approval.action),
        ("shield-core", "modify_access")
    );
    assert!(approval.arguments.contains("revoke"), "{approval:?}");

    let path = format!("/approvals/{}/deny", approval.id);
    let (status, body) = post_as(&node, ALICE, &path, json!({"reason": "not this week"})).await;
    assert_eq!(status, 200, "{body}");
    let view = run_until(&node, &run, "the run to finish", |view| {
        view.run.status != RunStatus::Running
    })
    .await;
    assert_eq!(view.run.status, RunStatus::Succeeded, "{view:?}");
    let output = step(&view, "remediate").output.unwrap();
    assert!(
        output.contains("denied by alice: not this week"),
        "{output}"
    );
    let audit: Vec<ActionAudit> = fleet.records(names::AGENT_AUDIT, usize::MAX).await;
    // The decision (alice's), then the outcome the model was given; nothing executed.
    assert_eq!(
        events(&audit, "modify_access"),
        ["decided", "approval_requested", "denied", "denied"]
    );
    node.stop().await.unwrap();
}

/// A remediation whose action needs approval and has an executor (here `escalate_to_human`,
/// made to need approval), with a scripted model: approved, the action runs once, the step
/// completes with the model's answer and the run finishes. The step's message delivered
/// again afterwards asks the model nothing and acts nothing again, and the step record
/// delivered again sends nothing new.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approved_remediation_acts_once_and_the_run_finishes() {
    let fake = FakeOpenAi::start().await;
    fake.script([
        Scripted::text("Scope: the VPN."),
        Scripted::text("Finding: no MFA on the VPN."),
        Scripted::tool_call(
            "escalate_to_human",
            json!({"summary": "reset VPN credentials of phished staff"}),
        ),
        Scripted::text("Remediation escalated to the on-duty people."),
    ]);
    let mut fleet = Fleet::with_fake("steps-audit-approve", &fake);
    escalation_needs_approval(&mut fleet);
    people(&mut fleet);
    let node = fleet.start(&ROLES).await;
    let run = audit_run(&node).await;
    let (_, approval) = waiting_for_approval(&node, &run, "remediate").await;
    assert_eq!(approval.action, "escalate_to_human");
    assert_eq!(
        fake.request_count(),
        3,
        "nothing is asked while the step waits"
    );
    let none: Vec<Escalation> = fleet.records(names::AGENT_ESCALATIONS, usize::MAX).await;
    assert!(
        none.is_empty(),
        "nothing done before the approval: {none:?}"
    );

    let path = format!("/approvals/{}/approve", approval.id);
    let (status, body) = post_as(&node, ALICE, &path, json!({"reason": "SEC-7"})).await;
    assert_eq!(status, 200, "{body}");
    let view = run_until(&node, &run, "the run to finish", |view| {
        view.run.status != RunStatus::Running
    })
    .await;
    assert_eq!(view.run.status, RunStatus::Succeeded, "{view:?}");
    let remediate = step(&view, "remediate");
    assert_eq!(
        remediate.output.as_deref(),
        Some("Remediation escalated to the on-duty people.")
    );
    let results = fake.requests()[3]
        .tool_results()
        .iter()
        .map(|(_, r)| r.to_string())
        .collect::<Vec<_>>();
    assert!(results[0].contains("escalated"), "{results:?}");

    // Redelivered: the step's message and the step's record.
    let messages: Vec<AgentMessage> = fleet.records(names::AGENT_MESSAGES, usize::MAX).await;
    let call = StepCall {
        workflow: "security-audit".into(),
        run: run.clone(),
        step: "remediate".into(),
        attempt: 1,
    };
    let sent = messages.iter().find(|m| m.id == call.message_id()).unwrap();
    fleet.produce(names::AGENT_MESSAGES, &sent.to, sent).await;
    fleet
        .send_step(&run, "security-audit", "remediate", "execute")
        .await;
    fleet.steps_settled().await;
    assert_eq!(fake.request_count(), 4, "the model was not asked again");
    let escalations: Vec<Escalation> = fleet.records(names::AGENT_ESCALATIONS, usize::MAX).await;
    assert_eq!(escalations.len(), 1, "acted once: {escalations:?}");
    assert_eq!(escalations[0].id, approval.id);
    let audit: Vec<ActionAudit> = fleet.records(names::AGENT_AUDIT, usize::MAX).await;
    assert_eq!(
        events(&audit, "escalate_to_human"),
        ["decided", "approval_requested", "approved", "executed"]
    );
    let messages: Vec<AgentMessage> = fleet.records(names::AGENT_MESSAGES, usize::MAX).await;
    let sends = messages
        .iter()
        .filter(|m| m.id == call.message_id())
        .count();
    assert_eq!(
        sends, 2,
        "the step was not sent again: only the test's copy"
    );
    let after: RunView = crate::support::fleet::run_view(&node, &run).await.unwrap();
    assert_eq!(after.run, view.run, "the run is as it was");
    node.stop().await.unwrap();
}
