//! What the dashboard lists, on the real node: `GET /runs` (runs started over HTTP and on the
//! topic, filtered and paged, a redelivered start listed once), `GET /dead-letters` (a bad
//! record's letter with its reason) and `GET /usage` (messages, tokens from the fake model's
//! `usage`, cost from the configured prices, `null` for an unpriced model).

use std::collections::BTreeSet;

use chatgptd_model::Price;
use chatgptd_node::Role;
use chatgptd_testkit::fake_openai::FakeOpenAi;
use chatgptd_testkit::kafka::{produce, producer};
use chatgptd_testkit::wait_until;
use chatgptd_types::records::AgentMessage;
use chatgptd_types::topics::names;
use chatgptd_worker_workflows::{RunStatus, start_record};
use serde_json::{Value, json};

use crate::support::fleet::{Fleet, WAIT, get, post, settled, start_run};

const ROLES: [Role; 2] = [Role::Agents, Role::Workflows];

fn ids(page: &Value) -> Vec<String> {
    page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_are_listed_newest_first_filtered_and_paged_and_a_redelivered_start_once() {
    let fleet = Fleet::new("listings-runs");
    let node = fleet.start(&ROLES).await;
    let mut research = Vec::new();
    for i in 0..3 {
        let run = start_run(&node, "research", json!({"question": format!("Q{i}?")})).await;
        assert_eq!(settled(&node, &run).await.run.status, RunStatus::Succeeded);
        research.push(run);
    }
    // Its last step waits for a person to approve publishing.
    let waiting = start_run(&node, "content-creation", json!({"topic": "Lisbon trams"})).await;
    settled(&node, &waiting).await;
    // Started on the topic with an input the workflow refuses: it fails at once.
    let failed = "run-with-bad-input";
    let start = start_record(failed, "research", &json!({}), "test");
    fleet.produce(names::WORKFLOW_STEPS, failed, &start).await;
    // The same start delivered again: still one run.
    fleet.produce(names::WORKFLOW_STEPS, failed, &start).await;
    fleet.steps_settled().await;

    let (status, all) = get(&node, "/runs").await;
    assert_eq!(status, 200, "{all}");
    let listed = ids(&all);
    assert_eq!(listed.len(), 5, "{all}");
    assert_eq!(listed.iter().filter(|id| *id == failed).count(), 1, "{all}");
    let started: Vec<i64> = all["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["started_at_ms"].as_i64().unwrap())
        .collect();
    assert!(
        started.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {all}"
    );
    // The research runs, newest first, after the content-creation run started after them.
    let mut newest_first = research.clone();
    newest_first.reverse();
    let position = |id: &str| listed.iter().position(|l| l == id).unwrap();
    assert!(position(&waiting) < position(&newest_first[0]));
    let research_run = all["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|run| run["id"] == research[0].as_str())
        .unwrap();
    assert_eq!(research_run["workflow"], "research");
    assert_eq!(research_run["state"], "succeeded");
    assert!(research_run["steps_total"].as_u64().unwrap() > 1);
    assert_eq!(research_run["steps_done"], research_run["steps_total"]);

    let (_, by_workflow) = get(&node, "/runs?workflow=research").await;
    let research_listed = ids(&by_workflow);
    assert_eq!(research_listed.len(), 4, "{by_workflow}");
    assert!(!research_listed.contains(&waiting));
    let (_, waiting_runs) = get(&node, "/runs?state=waiting").await;
    assert_eq!(ids(&waiting_runs), [waiting.as_str()], "{waiting_runs}");
    let (_, failed_runs) = get(&node, "/runs?state=failed").await;
    assert_eq!(ids(&failed_runs), [failed], "{failed_runs}");
    let (_, succeeded) = get(&node, "/runs?workflow=research&state=succeeded").await;
    assert_eq!(ids(&succeeded), newest_first, "{succeeded}");

    // Pages of two walk the whole list once, in order.
    let mut paged = Vec::new();
    let mut path = "/runs?limit=2".to_string();
    loop {
        let (status, page) = get(&node, &path).await;
        assert_eq!(status, 200, "{page}");
        let page_ids = ids(&page);
        assert!(page_ids.len() <= 2);
        paged.extend(page_ids);
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/runs?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(paged, listed);

    for bad in [
        "/runs?limit=0",
        "/runs?limit=501",
        "/runs?state=resting",
        "/runs?cursor=yesterday",
    ] {
        let (status, body) = get(&node, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_record_is_listed_as_a_dead_letter_with_its_reason() {
    let fleet = Fleet::new("listings-dead-letters");
    let node = fleet.start(&ROLES).await;
    let (_, none) = get(&node, "/dead-letters").await;
    assert_eq!(none["dead_letters"], json!([]), "{none}");

    let producer = producer(&fleet.kafka.brokers());
    let garbage = b"not an avro record";
    produce(
        &producer,
        names::AGENT_MESSAGES,
        None,
        Some(b"wanderweave"),
        garbage,
        &[],
    )
    .await;
    let letters = wait_until(WAIT, "the bad record's dead letter", || async {
        let (status, body) = get(&node, "/dead-letters?source_topic=agents.messages").await;
        assert_eq!(status, 200, "{body}");
        let letters = body["dead_letters"].as_array().cloned().unwrap_or_default();
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter["source_topic"], names::AGENT_MESSAGES);
    assert_eq!(letter["key"], "wanderweave");
    assert!(letter["source_offset"].as_i64().unwrap() >= 0);
    assert!(letter["failed_at_ms"].as_i64().unwrap() > 0);
    let class = letter["error_class"].as_str().unwrap();
    assert!(!class.is_empty());
    assert!(
        !letter["error_message"].as_str().unwrap().is_empty(),
        "{letter}"
    );

    let (_, by_class) = get(
        &node,
        &format!("/dead-letters?error_class={class}&key=wanderweave"),
    )
    .await;
    assert_eq!(by_class["dead_letters"].as_array().unwrap().len(), 1);
    let (_, other_key) = get(&node, "/dead-letters?key=someone-else").await;
    assert_eq!(other_key["dead_letters"], json!([]));
    let (_, other_topic) = get(&node, "/dead-letters?source_topic=tickets.events").await;
    assert_eq!(other_topic["dead_letters"], json!([]));
    let (status, _) = get(&node, "/dead-letters?limit=0").await;
    assert_eq!(status, 400);
    node.stop().await.unwrap();
}

/// The priced model of these tests: the configured default, at 2 USD per million input
/// tokens and 8 per million output tokens.
const PRICE: Price = Price {
    input_per_million: 2.0,
    output_per_million: 8.0,
    cached_input_per_million: 0.0,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usage_counts_messages_and_tokens_once_and_prices_them_by_model() {
    let fake = FakeOpenAi::start().await;
    let mut fleet = Fleet::with_fake("listings-usage", &fake);
    let priced = fleet.config.model.model.clone();
    fleet.config.model.prices.insert(priced.clone(), PRICE);
    let node = fleet.start(&ROLES).await;
    // An agent on a model with no price.
    let (status, body) = post(
        &node,
        "/agents",
        json!({"id": "scout", "name": "Scout", "fleet": "creative", "description": "Finds places.",
            "tier": "standard", "system_prompt": "You find places.", "actions": ["reply"],
            "model": {"name": "unpriced-model"}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    for (agent, text) in [
        ("wanderweave", "A weekend in Porto"),
        ("wanderweave", "Night trains to Vienna"),
        ("scout", "Quiet beaches near Lisbon"),
    ] {
        let path = format!("/agents/{agent}/messages");
        let (status, body) = post(&node, &path, json!({"body": text, "wait": true})).await;
        assert_eq!(status, 200, "{body}");
    }
    fleet.steps_settled().await;
    // What the fake said each answer cost, from the answers' provenance.
    let messages: Vec<AgentMessage> = fleet.records(names::AGENT_MESSAGES, 6).await;
    let spent = |agent: &str| {
        messages
            .iter()
            .filter(|m| m.from == agent && m.kind == "reply")
            .filter_map(|m| m.provenance.as_ref())
            .fold((0, 0), |(i, o), p| {
                (i + p.prompt_tokens, o + p.completion_tokens)
            })
    };
    let (wander_in, wander_out) = spent("wanderweave");
    let (scout_in, scout_out) = spent("scout");
    assert!(wander_in > 0 && wander_out > 0 && scout_in > 0);

    let check = |usage: &Value| {
        let agents = usage["agents"].as_array().unwrap();
        let agent = |id: &str| agents.iter().find(|a| a["agent"] == id).unwrap().clone();
        let wander = agent("wanderweave");
        assert_eq!(wander["messages"], 2, "{usage}");
        assert_eq!(wander["fleet"], "creative");
        let cost = (wander_in as f64 * 2.0 + wander_out as f64 * 8.0) / 1e6;
        assert_eq!(
            wander["models"],
            json!([{"model": priced, "input_tokens": wander_in, "output_tokens": wander_out,
                "cost": (cost * 1e6).round() / 1e6}]),
            "{usage}"
        );
        let scout = agent("scout");
        assert_eq!(scout["messages"], 1);
        assert_eq!(
            scout["models"],
            json!([{"model": "unpriced-model", "input_tokens": scout_in,
                "output_tokens": scout_out, "cost": null}])
        );
        assert_eq!(scout["cost"], Value::Null);
        assert_eq!(usage["totals"]["messages"], 3);
        assert_eq!(usage["totals"]["cost"], wander["cost"]);
        assert_eq!(
            usage["totals"]["unpriced_models"],
            json!(["unpriced-model"])
        );
        assert_eq!(usage["fleets"]["creative"]["messages"], 3);
    };
    let (status, usage) = get(&node, "/usage").await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["currency"], "USD");
    check(&usage);

    // Every message delivered again: the ledger answers them from what it recorded, and the
    // counts stay.
    let requests: BTreeSet<String> = messages
        .iter()
        .filter(|m| m.kind == "request")
        .map(|m| m.id.clone())
        .collect();
    assert_eq!(requests.len(), 3);
    for message in messages.iter().filter(|m| m.kind == "request") {
        fleet
            .produce(names::AGENT_MESSAGES, &message.to, message)
            .await;
    }
    fleet.steps_settled().await;
    let (_, again) = get(
        &node,
        &format!("/usage?day={}", usage["day"].as_str().unwrap()),
    )
    .await;
    check(&again);

    let (_, agent) = get(&node, "/agents/wanderweave").await;
    assert_eq!(agent["usage_today"]["messages"], 2, "{agent}");
    let wander = again["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent"] == "wanderweave");
    assert_eq!(agent["usage_today"]["cost"], wander.unwrap()["cost"]);
    let (_, yesterday) = get(&node, "/usage?day=2000-01-01").await;
    assert_eq!(yesterday["agents"], json!([]));
    assert_eq!(yesterday["totals"]["cost"], Value::Null);
    let (status, _) = get(&node, "/usage?day=today").await;
    assert_eq!(status, 400);
    node.stop().await.unwrap();
}
