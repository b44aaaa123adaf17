use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chatgptd_types::records::{EnrichedTicket, Provenance};
use serde_json::json;

use super::*;

fn builtin() -> (Registry, Workflows) {
    let registry = Registry::builtin();
    let workflows = Workflows::builtin(&registry);
    (registry, workflows)
}

fn ids(steps: Vec<&StepSpec>) -> Vec<&str> {
    steps.into_iter().map(|s| s.id.as_str()).collect()
}

fn outputs(ids: &[&str]) -> BTreeMap<String, String> {
    ids.iter()
        .map(|id| (id.to_string(), format!("output of {id}")))
        .collect()
}

#[test]
fn builtin_workflows_load_without_problems_or_warnings() {
    let registry = Registry::builtin();
    let sources = source::builtin("workflows", builtin::WORKFLOW_FILES);
    let (workflows, problems) = build(&sources, &registry);
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(
        workflows.warnings().is_empty(),
        "{:#?}",
        workflows.warnings()
    );
    let names: Vec<&str> = workflows.list().iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["content-creation", "research", "security-audit"]);

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows");
    let loaded = Workflows::load(&dir, &registry).unwrap();
    assert_eq!(loaded.list(), workflows.list());
}

#[test]
fn the_whole_builtin_check_is_clean() {
    let report = crate::check(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    assert!(report.is_ok(), "{report:#?}");
    assert!(report.warnings.is_empty(), "{report:#?}");
    assert_eq!((report.fleets, report.workflows), (8, 3));
    assert_eq!(crate::check::check_builtin(), report);
}

#[test]
fn content_creation_runs_the_three_creatives_in_sequence() {
    let (_, workflows) = builtin();
    let workflow = workflows.get("content-creation").unwrap();
    let agents: Vec<&str> = workflow
        .topological_order()
        .iter()
        .map(|s| s.agent.as_str())
        .collect();
    assert_eq!(agents, ["wanderweave", "design-studio-pro", "showbuilder"]);
    assert_eq!(workflow.step("show").unwrap().approval, Approval::Required);
    assert_eq!(workflow.step("story").unwrap().approval, Approval::Auto);
    assert_eq!(ids(workflow.leaves()), ["show"]);
    // The last step reads the first's output through the middle one.
    assert_eq!(workflow.step("show").unwrap().reads(), ["story", "visuals"]);
}

#[test]
fn security_audit_runs_aegis_then_sentinel_then_shield() {
    let (_, workflows) = builtin();
    let workflow = workflows.get("security-audit").unwrap();
    let agents: Vec<&str> = workflow
        .topological_order()
        .iter()
        .map(|s| s.agent.as_str())
        .collect();
    assert_eq!(
        agents,
        ["aegis-sentinel", "sentinel-audit-nexus", "shield-core"]
    );
    // The remediation's access change waits for a person through the action's policy
    // (`modify_access` needs approval), not through a gate on the whole step.
    let remediate = workflow.step("remediate").unwrap();
    assert_eq!(remediate.approval, Approval::Auto);
    assert!(remediate.input.contains("revoke"), "{}", remediate.input);
}

#[test]
fn research_fans_out_to_three_parallel_researchers_and_fans_in() {
    let (_, workflows) = builtin();
    let workflow = workflows.get("research").unwrap();
    assert_eq!(ids(workflow.roots()), ["plan"]);
    let fan_out = ids(workflow.dependents("plan"));
    assert_eq!(fan_out, ["market", "technology", "risk"]);
    for id in &fan_out {
        assert_eq!(ids(workflow.dependencies(id)), ["plan"]);
        assert!(!workflow.is_fan_in(id));
    }
    assert!(workflow.is_fan_in("synthesize"));
    assert_eq!(
        ids(workflow.dependencies("synthesize")),
        ["market", "technology", "risk"]
    );
    assert_eq!(ids(workflow.leaves()), ["synthesize"]);
    assert_eq!(workflow.step("synthesize").unwrap().agent, "atlas-sentinel");
    assert_eq!(workflow.step("plan").unwrap().agent, "atlas-sentinel");

    // What the engine sees as the run progresses.
    assert_eq!(ids(workflow.ready(&outputs(&[]))), ["plan"]);
    assert_eq!(
        ids(workflow.ready(&outputs(&["plan"]))),
        ["market", "technology", "risk"]
    );
    assert_eq!(
        ids(workflow.ready(&outputs(&["plan", "risk"]))),
        ["market", "technology"]
    );
    assert!(
        workflow
            .ready(&outputs(&["plan", "market", "risk"]))
            .iter()
            .all(|s| s.id != "synthesize")
    );
    assert_eq!(
        ids(workflow.ready(&outputs(&["plan", "market", "technology", "risk"]))),
        ["synthesize"]
    );
    assert_eq!(
        ids(workflow.ancestors("synthesize")),
        ["plan", "market", "technology", "risk"]
    );
}

#[test]
fn steps_render_with_the_runs_input_and_earlier_outputs() {
    let (_, workflows) = builtin();
    let workflow = workflows.get("research").unwrap();
    let input = workflow
        .prepare_input(&json!({"question": "Rail passes in Europe?"}))
        .unwrap();
    assert_eq!(input["context"], "");
    let done = outputs(&["plan", "market", "technology", "risk"]);
    let text = workflow
        .step("synthesize")
        .unwrap()
        .render_input(&input, &done)
        .unwrap();
    assert!(text.contains("SYNTHESISE one brief answering: Rail passes in Europe?"));
    assert!(text.contains("output of market") && text.contains("output of risk"));
}

#[test]
fn topological_order_respects_depends_on_whatever_the_file_order() {
    // A diamond written bottom-up: d <- (b, c) <- a.
    let workflow = fixture_workflow(
        "diamond",
        "
steps:
  - {id: d, agent: wanderweave, input: x, depends_on: [b, c]}
  - {id: c, agent: wanderweave, input: x, depends_on: [a]}
  - {id: b, agent: wanderweave, input: x, depends_on: [a]}
  - {id: a, agent: wanderweave, input: x}
",
    );
    let order = ids(workflow.topological_order());
    assert_eq!(order, ["a", "c", "b", "d"]);
    for step in &workflow.steps {
        let position = |id: &str| order.iter().position(|o| *o == id).unwrap();
        for dependency in &step.depends_on {
            assert!(position(dependency) < position(&step.id));
        }
    }
    assert!(workflow.is_fan_in("d"));
    assert_eq!(ids(workflow.roots()), ["a"]);
}

#[test]
fn prepare_input_fills_defaults_and_lists_every_mismatch() {
    let (_, workflows) = builtin();
    let workflow = workflows.get("content-creation").unwrap();
    let prepared = workflow.prepare_input(&json!({"topic": "Lisbon"})).unwrap();
    assert_eq!(prepared["length_words"], 900);
    assert_eq!(prepared["format"], "article");

    let err = workflow
        .prepare_input(&json!({"length_words": "long", "colour": "blue"}))
        .unwrap_err();
    let message = err.to_string();
    for expected in [
        "`topic` is required",
        "`length_words` must be of type integer",
        "`colour` is not a declared",
    ] {
        assert!(message.contains(expected), "{message}");
    }
    assert!(message.contains("content-creation"), "{message}");
    assert!(workflow.prepare_input(&json!("Lisbon")).is_err());
}

#[test]
fn retry_delays_double_up_to_the_cap() {
    let retry = RetryPolicy {
        max_attempts: 5,
        backoff: Backoff {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(12),
        },
    };
    let delays: Vec<u64> = (1..=5).map(|a| retry.delay_before(a).as_secs()).collect();
    assert_eq!(delays, [0, 5, 10, 12, 12]);
    assert_eq!(retry.delay_before(100), Duration::from_secs(12));
}

fn ticket(category: &str, labels: &[&str]) -> EnrichedTicket {
    EnrichedTicket {
        event_id: "e1".into(),
        source: "jira".into(),
        ticket_id: "10001".into(),
        ticket_key: "SEC-42".into(),
        title: "Leaked API key in public repo".into(),
        url: None,
        category: category.into(),
        suggested_priority: "high".into(),
        sentiment: "negative".into(),
        language: "en".into(),
        summary: "A deploy key was committed to a public repository.".into(),
        suggested_reply: String::new(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        confidence: 0.9,
        related_tickets: vec![],
        provenance: Provenance::default(),
        enriched_at_ms: 0,
    }
}

#[test]
fn security_audit_is_triggered_by_security_tickets() {
    let (_, workflows) = builtin();
    let triggered = workflows.triggered_by(&ticket("Security", &[]));
    assert_eq!(triggered.len(), 1);
    let workflow = triggered[0];
    assert_eq!(workflow.name, "security-audit");
    assert!(workflows.triggered_by(&ticket("billing", &[])).is_empty());

    let trigger = workflow.trigger.as_ref().unwrap();
    assert_eq!(trigger.on, TriggerEvent::Ticket);
    let input = trigger.input_for(&ticket("security", &[])).unwrap();
    let input = workflow.prepare_input(&input).unwrap();
    assert_eq!(input["target"], "Leaked API key in public repo");
    assert_eq!(input["ticket_key"], "SEC-42");
    let text = workflow
        .step("triage")
        .unwrap()
        .render_input(&input, &BTreeMap::new())
        .unwrap();
    assert!(text.contains("Ticket: SEC-42"), "{text}");
}

#[test]
fn trigger_conditions_accept_lists_and_labels() {
    let trigger: Trigger =
        serde_yaml::from_str("{on: ticket, where: {category: [security, access], labels: soc2}}")
            .unwrap();
    assert!(trigger.matches(&ticket("access", &["SOC2", "infra"])));
    assert!(!trigger.matches(&ticket("access", &["infra"])));
    assert!(!trigger.matches(&ticket("bug", &["soc2"])));
}

#[test]
fn ticket_fields_are_the_fields_of_an_enriched_ticket() {
    let json = serde_json::to_value(ticket("security", &[])).unwrap();
    let mut actual: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut declared = TICKET_FIELDS.to_vec();
    actual.sort();
    declared.sort();
    assert_eq!(actual, declared);
    for field in MATCH_FIELDS {
        assert!(TICKET_FIELDS.contains(field));
    }
}

// ---- Validation fixtures: each rule fails with a problem naming the file and the item.

const HEADER: &str = "description: A fixture.
input:
  topic: {type: string, required: true}
";

/// Loads one workflow file `<name>.yaml` (with `body` after `name` and the header) against
/// the built-in registry.
fn load_fixture(name: &str, body: &str) -> Result<Workflows, Error> {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("name: {name}\n{HEADER}{body}");
    std::fs::write(dir.path().join(format!("{name}.yaml")), text).unwrap();
    Workflows::load(dir.path(), &Registry::builtin())
}

fn fixture_workflow(name: &str, body: &str) -> WorkflowSpec {
    let body = body.replace("input: x", "input: '{{ input.topic }}'");
    let workflows = load_fixture(name, &body).unwrap();
    workflows.get(name).unwrap().clone()
}

#[track_caller]
fn problems(name: &str, body: &str) -> Vec<Problem> {
    match load_fixture(name, body) {
        Ok(_) => panic!("{name} loaded without problems"),
        Err(err) => err.problems().to_vec(),
    }
}

#[track_caller]
fn assert_problem(problems: &[Problem], item: &str, message: &str) {
    let found = problems
        .iter()
        .find(|p| p.item.contains(item) && p.message.contains(message));
    let Some(problem) = found else {
        panic!("no problem about {item} saying {message:?}; got: {problems:#?}");
    };
    assert!(problem.file.ends_with(".yaml"), "{problem}");
    let line = problem.to_string();
    assert!(
        line.contains(&problem.file) && line.contains(item),
        "{line}"
    );
}

#[test]
fn steps_must_use_existing_enabled_agents() {
    let problems = problems(
        "fx",
        "
steps:
  - {id: a, agent: nobody, input: '{{ input.topic }}'}
  - {id: b, agent: lab-trend-scout, input: '{{ input.topic }}'}
",
    );
    assert_problem(
        &problems,
        "step `a`",
        "agent `nobody` is not in the registry",
    );
    assert_problem(&problems, "step `b`", "agent `lab-trend-scout` is disabled");
    assert!(problems.iter().all(|p| p.file.ends_with("fx.yaml")));
}

#[test]
fn depends_on_must_name_steps_once_and_ids_must_be_unique() {
    let problems = problems(
        "fx",
        "
steps:
  - {id: a, agent: wanderweave, input: '{{ input.topic }}'}
  - {id: a, agent: wanderweave, input: '{{ input.topic }}'}
  - {id: b, agent: wanderweave, input: '{{ input.topic }}', depends_on: [a, a, ghost]}
  - {id: Bad Id, agent: wanderweave, input: '{{ input.topic }}'}
",
    );
    assert_problem(&problems, "step `a`", "duplicate step id");
    assert_problem(&problems, "step `b`", "lists `a` twice");
    assert_problem(
        &problems,
        "step `b`",
        "depends_on `ghost`, which is not a step",
    );
    assert_problem(&problems, "step `Bad Id`", "lowercase letters");
}

#[test]
fn cycles_are_reported_with_their_path() {
    let problems = problems(
        "fx",
        "
steps:
  - {id: a, agent: wanderweave, input: '{{ input.topic }}', depends_on: [c]}
  - {id: b, agent: wanderweave, input: '{{ input.topic }}', depends_on: [a]}
  - {id: c, agent: wanderweave, input: '{{ input.topic }}', depends_on: [b]}
  - {id: d, agent: wanderweave, input: '{{ input.topic }}', depends_on: [d]}
",
    );
    assert_problem(&problems, "step `a`", "cycle: a -> c -> b -> a");
    assert_problem(&problems, "step `d`", "cycle: d -> d");
    let cycles = problems
        .iter()
        .filter(|p| p.message.contains("cycle"))
        .count();
    assert_eq!(cycles, 2, "each cycle once: {problems:#?}");
}

#[test]
fn templates_may_only_read_declared_inputs_and_earlier_steps() {
    let problems = problems(
        "fx",
        "
steps:
  - {id: plan, agent: atlas-sentinel, input: '{{ input.topic }}'}
  - {id: left, agent: atlas-researcher-market, input: '{{ steps.plan.output }} {{ steps.right.output }}', depends_on: [plan]}
  - {id: right, agent: atlas-researcher-risk, input: '{{ steps.plan.output }} {{ input.audience }}', depends_on: [plan]}
  - {id: end, agent: atlas-sentinel, input: '{{ steps.ghost.output }} {{ input.topic.words }} {{ steps.end.output }}', depends_on: [left]}
  - {id: broken, agent: atlas-sentinel, input: '{{ input.topic'}
",
    );
    assert_problem(
        &problems,
        "step `left`",
        "`right` does not run before `left`: add it to depends_on",
    );
    assert_problem(
        &problems,
        "step `right`",
        "`audience` is not a declared input field",
    );
    assert_problem(
        &problems,
        "step `end`",
        "`ghost` is not a step of this workflow",
    );
    assert_problem(
        &problems,
        "step `end`",
        "`topic` is of type string, which has no fields",
    );
    assert_problem(&problems, "step `end`", "`end` does not run before `end`");
    assert_problem(&problems, "step `broken`", "without a closing");
}

#[test]
fn retries_timeouts_and_durations_are_checked() {
    let problems = problems(
        "fx",
        "
steps:
  - id: a
    agent: wanderweave
    input: '{{ input.topic }}'
    retry: {max_attempts: 0, backoff: {initial: 2m, max: 10s}}
    timeout: 0s
",
    );
    assert_problem(&problems, "step `a`", "max_attempts must be at least 1");
    assert_problem(
        &problems,
        "step `a`",
        "initial (2m) is longer than retry.backoff.max (10s)",
    );
    assert_problem(&problems, "step `a`", "timeout must be longer than 0s");

    // A duration that does not parse is a parse error naming the file and the field path.
    let problems = problems_of_parse(
        "
steps:
  - {id: a, agent: wanderweave, input: '{{ input.topic }}', timeout: five minutes}
",
    );
    assert!(problems.file.ends_with("fx.yaml"), "{problems}");
    assert!(problems.message.contains("steps[0].timeout"), "{problems}");
}

fn problems_of_parse(body: &str) -> Problem {
    let all = problems("fx", body);
    assert_eq!(all.len(), 1, "{all:#?}");
    all[0].clone()
}

#[test]
fn the_name_is_the_file_name_and_the_header_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let text = "name: other\ndescription: ''\ninput:\n  Topic: {type: string, required: true, default: x}\n  n: {type: integer, default: many}\nsteps: []\n";
    std::fs::write(dir.path().join("fx.yaml"), text).unwrap();
    let err = Workflows::load(dir.path(), &Registry::builtin()).unwrap_err();
    let problems = err.problems();
    assert_problem(
        problems,
        "workflow `other`",
        "the file name without `.yaml`: `fx`",
    );
    assert_problem(problems, "workflow `other`", "description is empty");
    assert_problem(problems, "workflow `other`", "has no steps");
    assert_problem(problems, "input `Topic`", "snake_case");
    assert_problem(problems, "input `Topic`", "takes no default");
    assert_problem(problems, "input `n`", "is not of type integer");
}

#[test]
fn unreferenced_input_fields_are_warnings() {
    let body = "
  extra: {type: string}
steps:
  - {id: a, agent: wanderweave, input: 'Write something.'}
";
    let workflows = load_fixture("fx", body).unwrap();
    let warnings: Vec<String> = workflows.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("input `topic`: required field that no step's input references"))
    );
    assert!(warnings.iter().all(|w| w.contains("fx.yaml")));
}

#[test]
fn triggers_are_checked() {
    let problems = problems(
        "fx",
        "
  count: {type: integer}
trigger:
  on: ticket
  where: {category: security, colour: blue, language: []}
  input:
    count: '{{ ticket.confidence }}'
    ghost: '{{ ticket.title }}'
steps:
  - {id: a, agent: wanderweave, input: '{{ input.topic }} {{ input.count }}'}
",
    );
    assert_problem(
        &problems,
        "trigger",
        "where `colour`: not a field triggers can test",
    );
    assert_problem(
        &problems,
        "trigger",
        "where `language`: values must be non-empty",
    );
    assert_problem(&problems, "trigger", "input `count` is of type integer");
    assert_problem(
        &problems,
        "trigger",
        "input `ghost` is not a declared input field",
    );
    assert_problem(
        &problems,
        "trigger",
        "does not fill the required input `topic`",
    );

    let problems = problems_of_parse_trigger("{on: ticket, input: {topic: '{{ ticket.colour }}'}}");
    assert_problem(
        &problems,
        "trigger",
        "`ticket.colour` is not `ticket.<field>`",
    );

    let problems = problems_of_parse_trigger("{on: email}");
    assert!(
        problems[0].message.contains("unknown variant `email`"),
        "{problems:#?}"
    );
}

fn problems_of_parse_trigger(trigger: &str) -> Vec<Problem> {
    problems(
        "fx",
        &format!(
            "trigger: {trigger}\nsteps:\n  - {{id: a, agent: wanderweave, input: '{{{{ input.topic }}}}'}}\n"
        ),
    )
}

#[test]
fn all_problems_of_all_files_are_collected() {
    let dir = tempfile::tempdir().unwrap();
    let bad_step = "name: one\ndescription: d\nsteps:\n  - {id: a, agent: nobody, input: x, depends_on: [zz]}\n";
    let bad_yaml = "name: two\ndescription: d\nsteps: [\n";
    std::fs::write(dir.path().join("one.yaml"), bad_step).unwrap();
    std::fs::write(dir.path().join("two.yaml"), bad_yaml).unwrap();
    std::fs::write(dir.path().join("README.md"), "not a workflow").unwrap();
    let err = Workflows::load(dir.path(), &Registry::builtin()).unwrap_err();
    let problems = err.problems();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[..2].iter().all(|p| p.file.ends_with("one.yaml")));
    assert!(problems[2].file.ends_with("two.yaml"));
    assert!(err.to_string().starts_with("3 problem(s):"), "{err}");
}

#[test]
fn check_reports_agent_and_workflow_problems_together() {
    let root = tempfile::tempdir().unwrap();
    let agents = root.path().join("agents");
    let workflows = root.path().join("workflows");
    std::fs::create_dir_all(&agents).unwrap();
    std::fs::create_dir_all(&workflows).unwrap();
    for (name, text) in builtin::AGENT_FILES {
        std::fs::write(agents.join(name), text).unwrap();
    }
    // Break one agent, and a workflow that uses another agent.
    let aegis = std::fs::read_to_string(agents.join("aegis.yaml")).unwrap();
    std::fs::write(
        agents.join("aegis.yaml"),
        aegis.replace("tier: core", "tier: experimental"),
    )
    .unwrap();
    std::fs::write(
        workflows.join("fx.yaml"),
        "name: fx\ndescription: d\nsteps:\n  - {id: a, agent: nobody, input: hi}\n",
    )
    .unwrap();
    let report = crate::check(root.path());
    assert!(!report.is_ok());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("aegis.yaml: agent `shield-core`") && p.contains("modify_access")),
        "{report:#?}"
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("fx.yaml: step `a`: agent `nobody`")),
        "{report:#?}"
    );
    assert_eq!(report.workflows, 1);
    assert!(report.summary().contains("8 fleets"));
}
