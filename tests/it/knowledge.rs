//! The knowledge base and agents' memory on the real node: `POST /knowledge` (chunked,
//! replaced by source), `POST`/`GET /agents/{id}/memory` (one agent's notes, never
//! another's), the knowledge in an agent's prompt, and `chatgptd knowledge add`.

use std::time::Duration;

use chatgptd_node::Role;
use chatgptd_testkit::fake_openai::FakeOpenAi;
use chatgptd_testkit::wait_until;
use serde_json::{Value, json};

use crate::support::chatgptd;
use crate::support::fleet::{Fleet, WAIT, first_prompt, get, post};

/// A Markdown guide long enough for several chunks; the gateway's name is in its last part.
fn guide() -> String {
    let filler = "Staff connect from home through the office network with their badge. ".repeat(8);
    let mut text = String::from("# Remote access\n\n");
    for part in ["Laptops", "Phones", "Printers"] {
        text.push_str(&format!("## {part}\n\n{filler}\n\n"));
    }
    text.push_str("## Gateway\n\nThe quokka gateway answers at vpn-gw-7.example.org.\n");
    text
}

/// The hits of `GET path`, once `check` accepts its answer.
async fn search_until(
    node: &crate::support::node::Node,
    path: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    wait_until(WAIT, what, || {
        let check = &check;
        async move {
            let (status, found) = get(node, path).await;
            assert_eq!(status, 200, "{found}");
            check(&found).then_some(found)
        }
    })
    .await
}

/// A guide ingested through `POST /knowledge` is chunked, searchable, found by an agent's
/// memory search and put in its prompt; ingesting its source again replaces its chunks
/// instead of adding more; a note for one agent is not another's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn knowledge_is_searchable_replaced_by_source_and_in_the_agents_prompt() {
    let fake = FakeOpenAi::start().await;
    let mut fleet = Fleet::with_fake("knowledge", &fake);
    fleet.config.indexer.index.commit_interval = Duration::from_millis(50);
    let node = fleet
        .start(&[Role::Indexer, Role::Agents, Role::Workflows])
        .await;
    let document = json!({"source": "handbook/vpn.md", "text": guide(), "tags": ["it"]});
    let (status, accepted) = post(&node, "/knowledge", document.clone()).await;
    assert_eq!(status, 202, "{accepted}");
    let chunks = accepted["chunks"].as_u64().unwrap();
    assert!(chunks >= 2, "a long guide is several chunks: {accepted}");
    assert_eq!(accepted["owner"], "knowledge:handbook/vpn.md");

    let by_source = "/search?owner=knowledge:handbook/vpn.md&limit=100";
    search_until(&node, by_source, "every chunk indexed", |found| {
        found["total"] == chunks
    })
    .await;
    let found = get(&node, "/search?q=quokka&kind=knowledge").await.1;
    let hit = &found["hits"][0];
    assert!(
        hit["text"]
            .as_str()
            .unwrap()
            .contains("vpn-gw-7.example.org"),
        "{found}"
    );
    assert_eq!(hit["tags"], json!(["it"]));
    assert_eq!(hit["attributes"]["source"], "handbook/vpn.md");

    // Again, then a shorter version: one chunk left, none of the first version's.
    assert_eq!(post(&node, "/knowledge", document.clone()).await.0, 202);
    let short = json!({"source": "handbook/vpn.md", "text": "# VPN\n\nThe capybara gateway replaced the old one."});
    assert_eq!(post(&node, "/knowledge", short).await.0, 202);
    search_until(&node, by_source, "the short version alone", |found| {
        found["total"] == 1
            && found["hits"][0]["text"]
                .as_str()
                .unwrap()
                .contains("capybara")
    })
    .await;
    // And the long one back: as many chunks as the first time, not twice as many.
    assert_eq!(post(&node, "/knowledge", document).await.0, 202);
    search_until(&node, by_source, "the long version back", |found| {
        found["total"] == chunks
    })
    .await;

    // A note for wanderweave: its memory search finds it and the knowledge; another agent's
    // finds the knowledge only.
    let note =
        json!({"text": "The traveller's quokka badge number is zebra-42", "tags": ["badge"]});
    let (status, body) = post(&node, "/agents/wanderweave/memory", note).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["owner"], "agent:wanderweave");
    let own = search_until(
        &node,
        "/agents/wanderweave/memory?q=quokka&limit=20",
        "the note and the knowledge in wanderweave's memory",
        |found| {
            let owners: Vec<&str> = found["hits"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|hit| hit["owner"].as_str())
                .collect();
            owners.contains(&"agent:wanderweave") && owners.contains(&"knowledge:handbook/vpn.md")
        },
    )
    .await;
    assert!(
        own["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|hit| { hit["owner"] == "agent:wanderweave" || hit["kind"] == "knowledge" })
    );
    let (status, other) = get(&node, "/agents/design-studio-pro/memory?q=quokka&limit=20").await;
    assert_eq!(status, 200, "{other}");
    let hits = other["hits"].as_array().unwrap();
    assert!(!hits.is_empty(), "the knowledge is everyone's: {other}");
    assert!(
        hits.iter().all(|hit| hit["kind"] == "knowledge"),
        "not wanderweave's note: {other}"
    );

    // Asked about it, the agent's prompt carries the chunk.
    let message = json!({"body": "How do I reach the quokka gateway from home?", "wait": false});
    let (status, body) = post(&node, "/agents/wanderweave/messages", message).await;
    assert_eq!(status, 202, "{body}");
    let prompt = first_prompt(&fake).await;
    assert!(prompt.contains("vpn-gw-7.example.org"), "{prompt}");

    // Unknown agents and bad documents: JSON errors, nothing sent.
    let (status, body) = get(&node, "/agents/nobody/memory?q=x").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown agent"))
    );
    let (status, _) = post(&node, "/agents/nobody/memory", json!({"text": "x"})).await;
    assert_eq!(status, 404);
    for (document, detail) in [
        (json!({"source": "a.md", "text": "  \n"}), "empty"),
        (json!({"source": "", "text": "text"}), "source"),
        (
            json!({"source": "big.txt", "text": "x".repeat(300 * 1024)}),
            "the most accepted",
        ),
        (
            json!({"source": "a.md", "text": "t", "format": "pdf"}),
            "format",
        ),
    ] {
        let (status, body) = post(&node, "/knowledge", document).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["detail"].as_str().unwrap().contains(detail), "{body}");
    }
    let (status, body) = post(&node, "/agents/wanderweave/memory", json!({"text": " "})).await;
    assert_eq!(status, 400, "{body}");
    node.stop().await.unwrap();
}

/// `chatgptd knowledge add` posts files to a running node: Markdown by extension, the path
/// as the source, the tags given; an empty file is refused with the node's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_adds_files_to_the_knowledge_base() {
    let mut fleet = Fleet::new("knowledge-cli");
    fleet.config.indexer.index.commit_interval = Duration::from_millis(50);
    let node = fleet.start(&[Role::Indexer]).await;
    let files = tempfile::tempdir().unwrap();
    let guide = files.path().join("printers.md");
    std::fs::write(
        &guide,
        "# Printers\n\nThe wombat printer is on floor three.\n",
    )
    .unwrap();
    let empty = files.path().join("empty.txt");
    std::fs::write(&empty, "\n").unwrap();
    let add = |file: &std::path::Path| {
        let mut command = chatgptd();
        command
            .args([
                "knowledge",
                "add",
                "--tag",
                "it",
                "--token-env",
                "KNOWLEDGE_TEST_TOKEN",
            ])
            .args(["--url", &node.url])
            .arg(file)
            .env("KNOWLEDGE_TEST_TOKEN", node.token.clone().unwrap());
        command
    };
    let run = |mut command: std::process::Command| async move {
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    };
    let added = run(add(&guide)).await;
    let stdout = String::from_utf8_lossy(&added.stdout);
    assert!(
        added.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(stdout.contains("1 chunk(s)"), "{stdout}");
    let found = search_until(
        &node,
        "/search?q=wombat&kind=knowledge",
        "the file indexed",
        |found| found["total"] == 1,
    )
    .await;
    let hit = &found["hits"][0];
    assert_eq!(hit["attributes"]["source"], guide.display().to_string());
    assert_eq!(hit["attributes"]["format"], "markdown");
    assert_eq!(hit["tags"], json!(["it"]));

    let refused = run(add(&empty)).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("HTTP 400") && stderr.contains("empty"),
        "{stderr}"
    );
    node.stop().await.unwrap();
}

/// The enrichment's prompt carries the knowledge chunk relevant to the ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_enrichment_prompt_draws_on_the_knowledge_base() {
    let fake = FakeOpenAi::start().await;
    fake.push(crate::support::pipeline::model_answer());
    let mut fleet = Fleet::with_fake("knowledge-enrich", &fake);
    fleet.config.indexer.index.commit_interval = Duration::from_millis(50);
    let node = fleet.start(&[Role::Indexer, Role::Enrich]).await;
    let document = json!({"source": "runbooks/sso.md", "text": "# SSO outages\n\nWhen SSO shows error 500, restart the okapi identity broker first."});
    assert_eq!(post(&node, "/knowledge", document).await.0, 202);
    search_until(
        &node,
        "/search?q=okapi&kind=knowledge",
        "the runbook indexed",
        |found| found["total"] == 1,
    )
    .await;
    let ticket = crate::support::ticket(1);
    fleet
        .produce(
            chatgptd_types::topics::names::TICKET_EVENTS,
            "jira:10001",
            &ticket,
        )
        .await;
    let prompt = first_prompt(&fake).await;
    assert!(prompt.contains("okapi identity broker"), "{prompt}");
    assert!(prompt.contains("[runbooks/sso.md]"), "{prompt}");
    node.stop().await.unwrap();
}
