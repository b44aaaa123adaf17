//! The `chatgptd` binary as a person uses it: `up`, then `produce`, `tail`, `dlq replay` and
//! the HTTP endpoints from "another terminal", then a signal.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use chatgptd_testkit::sse::Subscriber;
use chatgptd_testkit::webhooks::Webhook;
use chatgptd_testkit::{http_client, wait_until};
use serde_json::Value;

use crate::support::chatgptd;

pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// Runs a chatgptd tool against the `up` in `data_dir`.
pub(crate) fn tool(data_dir: &Path, args: &[&str]) -> Output {
    chatgptd()
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("run chatgptd")
}

/// GETs `url` and reads its JSON body.
async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A `chatgptd up` child process, stopped with SIGTERM on drop.
pub(crate) struct Up {
    child: Child,
    pub(crate) data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Up {
    pub(crate) async fn start() -> Up {
        Self::start_with(&[]).await
    }

    /// Starts `chatgptd up` with `toml` as its `./chatgptd.toml`.
    pub(crate) async fn start_with_config(toml: &str) -> Up {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("chatgptd.toml"), toml).unwrap();
        let mut up = Self::start_in(dir.path(), &[]).await;
        up._dir = Some(dir);
        up
    }

    /// Starts `chatgptd up` with extra environment variables.
    async fn start_with(env: &[(&str, &str)]) -> Up {
        let dir = tempfile::tempdir().unwrap();
        let mut up = Self::start_in(dir.path(), env).await;
        up._dir = Some(dir);
        up
    }

    /// Starts `chatgptd up` in `dir`, keeping its data in `dir/data`: a second `up` in the
    /// same `dir` is a restart.
    async fn start_in(dir: &Path, env: &[(&str, &str)]) -> Up {
        let data_dir = dir.join("data");
        // A killed `up` leaves its file behind; wait for this one's.
        let _ = std::fs::remove_file(data_dir.join("embedded.json"));
        let child = chatgptd()
            .args(["up", "--http-listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .envs(env.iter().copied())
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chatgptd up");
        let up = Up {
            child,
            data_dir,
            _dir: None,
        };
        wait_until(WAIT, "embedded.json", || {
            let exists = up.data_dir.join("embedded.json").exists();
            async move { exists.then_some(()) }
        })
        .await;
        up
    }

    /// An HTTP client sending the admin token `up` keeps in its data directory, as the
    /// README's curl commands do (`$(cat data/api-token)`).
    pub(crate) fn client(&self) -> reqwest::Client {
        let file = chatgptd_node::auth::token_file(&self.data_dir);
        let token = chatgptd_node::auth::read_token_file(&file).expect("up's API token");
        chatgptd_testkit::http_client_with_token(&token)
    }

    /// Waits until `/readyz` says every worker is ready.
    pub(crate) async fn wait_ready(&self) {
        let http = self.info()["http"].as_str().unwrap().to_string();
        let client = self.client();
        wait_until(WAIT, "/readyz to say ready", || {
            let request = client.get(format!("{http}/readyz")).send();
            async move {
                let body: Value = request.await.ok()?.json().await.ok()?;
                (body["ready"] == true).then_some(())
            }
        })
        .await;
    }

    pub(crate) fn info(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.data_dir.join("embedded.json")).unwrap())
            .unwrap()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    async fn wait_exit(&mut self) -> i32 {
        wait_until(WAIT, "chatgptd up to exit", || {
            let status = self.child.try_wait().unwrap();
            async move { status.map(|s| s.code().unwrap_or(-1)) }
        })
        .await
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_health_and_metrics_and_stops_cleanly_on_sigterm() {
    let mut up = Up::start().await;
    let http = up.info()["http"].as_str().unwrap().to_string();
    let client = up.client();
    let health = client.get(format!("{http}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // The API itself needs the token `up` keeps in its data directory.
    let open = http_client()
        .get(format!("{http}/agents"))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 401);
    let agents = client.get(format!("{http}/agents")).send().await.unwrap();
    assert_eq!(agents.status(), 200);
    up.wait_ready().await;
    let search = client
        .get(format!("{http}/search?q=login%20AND%20(sso"))
        .send()
        .await
        .unwrap();
    assert_eq!(search.status(), 400);
    let body: Value = search.json().await.unwrap();
    assert_eq!(body["error"], "query syntax error");
    assert!(body["position"].as_u64().unwrap() > 0, "{body}");
    let deep = client
        .get(format!("{http}/search?q=login&offset=100000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(deep.status(), 400, "a deep page is refused, not allocated");
    let body: Value = deep.json().await.unwrap();
    assert_eq!(body["error"], "invalid query", "{body}");
    let agents = get_json(&client, &format!("{http}/agents")).await;
    assert_eq!(agents["agents"].as_array().unwrap().len(), 32);
    let metrics = client.get(format!("{http}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );

    // A run followed through its event stream, from its first step to its last result.
    let started: Value = client
        .post(format!("{http}/workflows/research/runs"))
        .json(&serde_json::json!({"input": {"question": "Night trains in Europe?"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run_id = started["run_id"].as_str().unwrap().to_string();
    let path = format!("/runs/{run_id}/events");
    let (mut events, _) = Subscriber::open_with(&client, &http, &path, None).await;
    let mut results = Vec::new();
    while results.len() < 5 {
        let event = events.next().await.expect("the run's events go on");
        if event.event == "MemoryRecord" {
            assert_eq!(event.data["key"], format!("run:{run_id}"));
            results.push(event.data["value"]["attributes"]["step"].clone());
        }
    }
    assert_eq!(results[0], "plan");
    assert_eq!(
        results[4], "synthesize",
        "the fan-in comes last: {results:?}"
    );

    // An open stream does not hold the process up.
    up.signal("-TERM");
    assert_eq!(up.wait_exit().await, 0, "a graceful stop exits 0");
    // The stream ends with the process: what it still held (records of the run produced
    // after its fifth result) is read, then it closes instead of hanging.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while events.next().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the stream ended");
    assert!(
        !up.data_dir.join("embedded.json").exists(),
        "discovery file removed"
    );
}

/// The repository's topics plus `demo.scratch`, which no worker consumes, so what the tools
/// put there stays there.
fn topics_with_scratch(dir: &Path) -> PathBuf {
    let mut topics =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("topics.yaml")).unwrap();
    topics.push_str(
        "\n  - name: demo.scratch\n    partitions: 1\n    replication_factor: 1\n    retention: 1d\n    cleanup_policy: delete\n    key: any\n    value_schema: chatgptd.WorkflowStep\n",
    );
    let path = dir.join("topics.yaml");
    std::fs::write(&path, topics).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_tail_and_dead_letter_replay_against_a_running_up() {
    let topics_dir = tempfile::tempdir().unwrap();
    let topics = topics_with_scratch(topics_dir.path());
    let up = Up::start_with(&[("CHATGPTD_TOPICS_FILE", topics.to_str().unwrap())]).await;
    let data_dir = up.data_dir.clone();
    let step = r#"{"run_id":"r1","workflow":"research","step_id":"start"}"#;

    let produced = tool(
        &data_dir,
        &[
            "produce",
            "demo.scratch",
            "--schema",
            "chatgptd.WorkflowStep",
            "--value",
            step,
        ],
    );
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );
    assert!(stdout(&produced).starts_with("produced demo.scratch["));

    let typo = tool(
        &data_dir,
        &[
            "produce",
            "demo.scratch",
            "--schema",
            "chatgptd.WorkflowStep",
            "--value",
            r#"{"run_id":"r1","wrkflow":"x"}"#,
        ],
    );
    assert!(!typo.status.success());
    assert!(String::from_utf8_lossy(&typo.stderr).contains("unknown field `wrkflow`"));

    let tailed = tool(
        &data_dir,
        &[
            "tail",
            "demo.scratch",
            "--from-beginning",
            "--max",
            "1",
            "--format",
            "json",
        ],
    );
    let record: Value = serde_json::from_str(stdout(&tailed).lines().next().unwrap()).unwrap();
    assert_eq!(record["schema"], "chatgptd.WorkflowStep");
    assert_eq!(record["value"]["workflow"], "research");
    assert_eq!(record["key"], "r1");
    assert!(
        record["headers"]["traceparent"]
            .as_str()
            .unwrap()
            .starts_with("00-")
    );

    // A dead letter from the scratch topic: the replayer sends its bytes back there, once.
    let letter = r#"{"source_topic":"demo.scratch","source_partition":0,"source_offset":0,"key":"replayed-key","value":"raw bytes","error_class":"validation","error_message":"bad step","attempts":1,"worker":"test"}"#;
    assert!(
        tool(
            &data_dir,
            &["produce", "chatgptd.deadletter", "--value", letter]
        )
        .status
        .success()
    );

    // Something that is not a dead letter at all: it can only stay where it is.
    assert!(
        tool(
            &data_dir,
            &[
                "produce",
                "chatgptd.deadletter",
                "--schema",
                "chatgptd.WorkflowStep",
                "--value",
                step
            ]
        )
        .status
        .success()
    );

    let dry = tool(&data_dir, &["dlq", "replay", "--dry-run"]);
    assert!(stdout(&dry).contains("1 would replay"), "{}", stdout(&dry));
    // Off a terminal, progress is plain lines on stderr: no bar, no escape codes.
    let progress = String::from_utf8_lossy(&dry.stderr);
    assert!(
        progress.contains("replay: 2/2 letters (100%)") && !progress.contains('\r'),
        "{progress}"
    );
    assert!(
        stdout(&dry).contains("1 unreadable or refused again (left in place)"),
        "{}",
        stdout(&dry)
    );
    let replayed = tool(&data_dir, &["dlq", "replay", "--error-class", "validation"]);
    assert!(
        stdout(&replayed).contains("1 replayed"),
        "{}",
        stdout(&replayed)
    );
    let again = tool(&data_dir, &["dlq", "replay"]);
    assert!(
        stdout(&again).contains("0 replayed"),
        "a second run replays nothing: {}",
        stdout(&again)
    );

    let tailed = tool(
        &data_dir,
        &[
            "tail",
            "demo.scratch",
            "--from-beginning",
            "--max",
            "2",
            "--format",
            "json",
        ],
    );
    let records: Vec<Value> = stdout(&tailed)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let replay = records
        .iter()
        .find(|r| r["key"] == "replayed-key")
        .expect("the replayed record");
    assert_eq!(
        replay["value"]["bytes"], "raw bytes",
        "the original bytes, undecodable as before"
    );
    assert_eq!(replay["headers"]["dlq.replay.count"], "1");

    // Three replays, one of them dry, wrote nothing to the dead-letter topic itself.
    let letters = tool(
        &data_dir,
        &[
            "tail",
            "chatgptd.deadletter",
            "--from-beginning",
            "--idle-timeout",
            "3s",
            "--format",
            "json",
        ],
    );
    assert_eq!(stdout(&letters).lines().count(), 2, "{}", stdout(&letters));
}
/// Produces the ticket `n` onto `tickets.events` of the `up` in `data_dir`.
pub(crate) fn produce_ticket(data_dir: &Path, n: u32) {
    let value = format!(
        r#"{{"event_id":"e{n}","source":"jira","delivery_id":"d{n}",
        "event_type":"jira:issue_created","ticket_id":"{n}","ticket_key":"PROJ-{n}",
        "title":"Cannot log in, case {n}","description":"SSO shows error 500"}}"#
    );
    let produced = tool(data_dir, &["produce", "tickets.events", "--value", &value]);
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );
}

/// The records of `topic` from its beginning, as JSON lines, once none came for a second.
fn tail_all(data_dir: &Path, topic: &str) -> Vec<Value> {
    let tailed = tool(
        data_dir,
        &[
            "tail",
            topic,
            "--from-beginning",
            "--idle-timeout",
            "1s",
            "--format",
            "json",
        ],
    );
    assert!(
        tailed.status.success(),
        "{}",
        String::from_utf8_lossy(&tailed.stderr)
    );
    stdout(&tailed)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Waits until `topic` holds `count` records, and returns their `ticket_key`s.
async fn wait_for_tickets(data_dir: &Path, topic: &str, count: usize) -> Vec<String> {
    wait_until(WAIT, &format!("{count} records on {topic}"), || {
        let records = tail_all(data_dir, topic);
        async move {
            (records.len() >= count).then(|| {
                let mut keys: Vec<String> = records
                    .iter()
                    .map(|r| r["value"]["ticket_key"].as_str().unwrap_or("").to_string())
                    .collect();
                keys.sort();
                keys
            })
        }
    })
    .await
}

/// What `up` accepted survives a restart (issue 11 §1): the topics' records and the
/// consumer groups' offsets live in the data directory. Tickets enriched before a clean
/// restart are still on their topics and are not enriched again; a ticket accepted while the
/// model was down, and still waiting for it when `up` was killed, is enriched after the
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_of_up_keeps_every_record_and_offset_and_finishes_what_waited() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");

    let mut up = Up::start_in(dir.path(), &[]).await;
    for n in 1..=3 {
        produce_ticket(&data_dir, n);
    }
    let enriched = wait_for_tickets(&data_dir, "tickets.enriched", 3).await;
    assert_eq!(enriched, ["PROJ-1", "PROJ-2", "PROJ-3"]);
    up.signal("-TERM");
    assert_eq!(up.wait_exit().await, 0);

    // A model nobody answers at: the fourth ticket is accepted and waits.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let unreachable = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let mut up = Up::start_in(
        dir.path(),
        &[
            ("OPENAI_BASE_URL", &unreachable),
            ("OPENAI_API_KEY", "test-key"),
        ],
    )
    .await;
    produce_ticket(&data_dir, 4);
    assert_eq!(
        wait_for_tickets(&data_dir, "tickets.events", 4).await.len(),
        4
    );
    // Not even a clean stop.
    up.signal("-KILL");
    up.wait_exit().await;

    let _up = Up::start_in(dir.path(), &[]).await;
    let events = tail_all(&data_dir, "tickets.events");
    assert_eq!(
        events.len(),
        4,
        "every accepted event is still on its topic"
    );
    let enriched = wait_for_tickets(&data_dir, "tickets.enriched", 4).await;
    assert_eq!(enriched, ["PROJ-1", "PROJ-2", "PROJ-3", "PROJ-4"]);
    // Resumed from the committed offsets: nothing enriched twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(tail_all(&data_dir, "tickets.enriched").len(), 4);
}

/// The README's "Try it" commands for agents and workflows, and the HTTP API behind them,
/// against a running `up`: what a newcomer types first must work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_agent_and_workflow_commands_work_against_up() {
    let up = Up::start().await;
    let data_dir = up.data_dir.clone();
    let http = up.info()["http"].as_str().unwrap().to_string();
    let client = up.client();
    up.wait_ready().await;
    let run_tool = |args: &[&str]| {
        let output = tool(&data_dir, args);
        assert!(
            output.status.success(),
            "{args:?}: {}{}",
            stdout(&output),
            String::from_utf8_lossy(&output.stderr)
        );
        stdout(&output)
    };

    assert!(run_tool(&["agents", "list"]).contains("wanderweave"));
    assert!(run_tool(&["agents", "show", "wanderweave"]).contains("Wanderweave"));
    let sent = run_tool(&[
        "agents",
        "send",
        "wanderweave",
        "A weekend in Lisbon, on foot",
    ]);
    assert!(sent.contains("── wanderweave (reply)"), "{sent}");

    assert!(run_tool(&["workflow", "list"]).contains("research"));
    let ran = run_tool(&[
        "workflow",
        "run",
        "research",
        "--input",
        r#"{"question":"Rail passes next to flights?"}"#,
        "--wait",
    ]);
    assert!(ran.contains(": Succeeded in"), "{ran}");
    let run = ran
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("run "))
        .and_then(|rest| rest.strip_suffix(" started"))
        .unwrap_or_else(|| panic!("no run id in {ran}"))
        .to_string();
    let status = run_tool(&["workflow", "status", &run]);
    assert!(status.contains("[Succeeded] synthesize"), "{status}");

    // The same through HTTP.
    let agent = get_json(&client, &format!("{http}/agents/wanderweave")).await;
    assert_eq!(agent["id"], "wanderweave", "{agent}");
    let answered: Value = client
        .post(format!("{http}/agents/design-studio-pro/messages"))
        .json(&serde_json::json!({"body": "A cover for the Lisbon story", "timeout_ms": 20000}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answered["status"], "answered", "{answered}");
    assert_eq!(answered["answers"][0]["from"], "design-studio-pro");
    let conversation = answered["message"]["conversation_id"].as_str().unwrap();
    wait_until(WAIT, "the exchange in the agent's history", || {
        let request = client
            .get(format!("{http}/agents/design-studio-pro/messages"))
            .send();
        async move {
            let body: Value = request.await.ok()?.json().await.ok()?;
            body.to_string().contains(conversation).then_some(())
        }
    })
    .await;
    let view = get_json(&client, &format!("{http}/runs/{run}")).await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(view["steps"].as_array().unwrap().len(), 5);
    let missing = client
        .get(format!("{http}/runs/no-such-run"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

/// `chatgptd worker ingest` alone, as its own process against the brokers of a running
/// `up`: a Jira webhook it accepts is enriched by `up`'s workers, and `chatgptd tail` shows
/// the result in its readable form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_ingest_worker_feeds_up_and_tail_shows_the_enriched_ticket() {
    let up = Up::start().await;
    let brokers = up.info()["brokers"].as_str().unwrap().to_string();
    let port = chatgptd_testkit::free_port();
    let ingest_dir = tempfile::tempdir().unwrap();
    // Webhooks must be signed, and about a listed project: configured as the README does.
    let mut ingest = chatgptd()
        .env(
            "CHATGPTD_INGEST__JIRA__SECRET_ENV",
            "E2E_JIRA_WEBHOOK_SECRET",
        )
        .env("E2E_JIRA_WEBHOOK_SECRET", "demo-secret")
        .env("CHATGPTD_INGEST__JIRA__PROJECTS", r#"["KT"]"#)
        .args(["worker", "ingest", "--brokers", &brokers, "--http-listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(ingest_dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chatgptd worker ingest");
    let client = http_client();
    let base = format!("http://127.0.0.1:{port}");
    wait_until(WAIT, "the ingest worker to answer", || {
        let request = client.get(format!("{base}/healthz")).send();
        async move { request.await.ok().map(|_| ()) }
    })
    .await;
    // The payload the README's webhook example posts: it ships with the repository.
    let body = std::fs::read(readme_webhook_body()).expect("the README's webhook payload");
    // Signed with the secret the README sets, not the testkit's.
    let webhook = Webhook::jira(body, "separate-ingest-1").signed_with("demo-secret");
    let accepted = webhook
        .post(&client, &format!("{base}/webhooks/jira"))
        .await;
    assert_eq!(accepted.status(), 202);

    let tailed = tool(
        &up.data_dir,
        &[
            "tail",
            "tickets.enriched",
            "--from-beginning",
            "--max",
            "1",
            "--idle-timeout",
            "30s",
        ],
    );
    let shown = stdout(&tailed);
    for part in [
        "  category ",
        "  summary  ",
        "  reply    ",
        "  by       offline/",
    ] {
        assert!(shown.contains(part), "{part:?} in {shown}");
    }
    let _ = ingest.kill();
    let _ = ingest.wait();
}

/// The file the README's webhook example posts (`body=<path>`), in the repository.
fn readme_webhook_body() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let path = readme
        .lines()
        .find_map(|line| line.strip_prefix("body="))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a body=<path> line in the README");
    assert!(
        !path.starts_with("..") && !path.starts_with('/'),
        "the README's webhook payload must ship with the repository, not {path}"
    );
    root.join(path)
}

#[test]
fn config_check_names_bad_keys_and_bad_topics() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("chatgptd.toml");
    let check = || {
        chatgptd()
            .arg("--config")
            .arg(&config)
            .args(["config", "check"])
            .output()
            .unwrap()
    };
    std::fs::write(&config, "[kafka]\nbrokerz = \"x\"\n").unwrap();
    let output = check();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("brokerz") && stderr.contains("chatgptd.toml"),
        "{stderr}"
    );

    // A token with no scopes and one whose digest is not a SHA-256: both named.
    std::fs::write(
        &config,
        "[http.tokens.ci]\nsha256 = \"abc\"\nscopes = [\"read\"]\n\
         [http.tokens.ops]\nsecret_env = \"OPS_TOKEN\"\n",
    )
    .unwrap();
    let output = check();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("http.tokens.ci") && stderr.contains("64 hex digits"),
        "{stderr}"
    );
    assert!(
        stderr.contains("http.tokens.ops") && stderr.contains("no scopes"),
        "{stderr}"
    );

    let topics = dir.path().join("topics.yaml");
    std::fs::write(&topics, "topics:\n  - name: t\n    partitions: 1\n    replication_factor: 1\n    retention: 1d\n    cleanup_policy: delete\n    key: k\n    value_schema: chatgptd.Nope\n").unwrap();
    std::fs::write(
        &config,
        format!("topics_file = {:?}\n", topics.display().to_string()),
    )
    .unwrap();
    let output = check();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("chatgptd.Nope"));

    std::fs::write(
        &config,
        "[dlq_replay]\ndrain_timeout = \"1m\"\nsession_timeout = \"30s\"\n",
    )
    .unwrap();
    let output = check();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("drain_timeout"));

    // Without --config, ./chatgptd.toml is read: the invalid one, then a valid one.
    let output = chatgptd()
        .args(["config", "check"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    std::fs::write(&config, "data_dir = \"elsewhere\"\n").unwrap();
    let output = chatgptd()
        .args(["config", "check", "--show"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout(&output).contains("data_dir = \"elsewhere\""));
}

/// `config check` names the secrets declared actions need and the environment lacks (a
/// warning: the action is refused until they are set), never a value; a declaration that
/// cannot work is a problem naming its file and action.
#[test]
fn config_check_names_missing_action_secrets_and_bad_executors() {
    let output = chatgptd()
        .args(["config", "check"])
        .env("ACTIONS_BASE_URL", "http://publish.internal.example")
        .env("ACTIONS_TOKEN", "tok-visible-only-if-leaked")
        .env_remove("ACTIONS_SIGNING_KEY")
        .env_remove("GITHUB_TOKEN")
        .output()
        .unwrap();
    let out = stdout(&output);
    assert!(output.status.success(), "{out}");
    assert!(
        out.contains(
            "action `publish_content`: secret ACTIONS_SIGNING_KEY (the signing key) is not set"
        ),
        "{out}"
    );
    assert!(
        out.contains("action `github_open_pull_request`: secret GITHUB_TOKEN"),
        "{out}"
    );
    assert!(!out.contains("secret ACTIONS_BASE_URL"), "it is set: {out}");
    assert!(!out.contains("ACTIONS_TOKEN ("), "it is set: {out}");
    assert!(!out.contains("tok-visible"), "a value was printed: {out}");

    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents");
    std::fs::create_dir_all(&agents).unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("agents");
    for entry in std::fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        if path.ends_with("actions.yaml") {
            text = text.replace("      url: /spend\n", "      url: spend\n");
        }
        std::fs::write(agents.join(path.file_name().unwrap()), text).unwrap();
    }
    let config = dir.path().join("chatgptd.toml");
    std::fs::write(
        &config,
        format!(
            "[agents]\nregistry_dir = {:?}\n",
            agents.display().to_string()
        ),
    )
    .unwrap();
    let output = chatgptd()
        .arg("--config")
        .arg(&config)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("actions.yaml")
            && stderr.contains("action `spend_budget`")
            && stderr.contains("url is a path starting with `/`"),
        "{stderr}"
    );
}

/// `topics apply` against a real Kafka-protocol broker (tansu): it creates what is missing,
/// reports how an existing topic differs without touching it, and a second run creates
/// nothing; `topics list` shows every topic with its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_apply_creates_what_is_missing_once_and_reports_differences() {
    use chatgptd_testkit::kafka::TestCluster;
    use chatgptd_testkit::tansu::Tansu;
    let tansu = Tansu::start().await;
    // Someone created this one by hand, with fewer partitions than topics.yaml says.
    tansu.create_topic("tickets.events", 1).await;
    let brokers = tansu.brokers();
    let topics = |command: &str| {
        let output = chatgptd()
            .args(["--brokers", &brokers, "topics", command])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout(&output)
    };
    let state = |table: &str, topic: &str| -> String {
        table
            .lines()
            .find(|line| line.starts_with(&format!("{topic} ")))
            .unwrap_or_else(|| panic!("{topic} not in {table}"))
            .split_whitespace()
            .last()
            .unwrap()
            .to_string()
    };

    let first = topics("apply");
    assert_eq!(state(&first, "tickets.events"), "exists", "{first}");
    assert!(
        first.contains("! partitions: 1 in the cluster, 6 declared"),
        "the difference is reported: {first}"
    );
    for topic in [
        "tickets.enriched",
        "agents.messages",
        "memory.records",
        "chatgptd.deadletter",
    ] {
        assert_eq!(state(&first, topic), "created", "{first}");
    }
    let second = topics("apply");
    assert!(
        !second.contains("created"),
        "nothing created twice: {second}"
    );
    let list = topics("list");
    assert_eq!(state(&list, "memory.records"), "exists", "{list}");
    assert!(list.contains("key: <source>:<ticket_id>"), "{list}");
}

#[test]
fn tools_without_brokers_say_how_to_get_some() {
    let dir = tempfile::tempdir().unwrap();
    let output = tool(dir.path(), &["tail", "tickets.events"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--brokers") && stderr.contains("chatgptd up"),
        "{stderr}"
    );
}

#[test]
fn every_command_has_help_with_examples() {
    for command in [
        vec!["--help"],
        vec!["up", "--help"],
        vec!["topics", "apply", "--help"],
        vec!["topics", "list", "--help"],
        vec!["config", "check", "--help"],
        vec!["produce", "--help"],
        vec!["tail", "--help"],
        vec!["dlq", "replay", "--help"],
        vec!["approvals", "list", "--help"],
        vec!["approvals", "approve", "--help"],
        vec!["approvals", "deny", "--help"],
    ] {
        let output = chatgptd().args(&command).output().unwrap();
        assert!(output.status.success(), "{command:?}");
        assert!(
            stdout(&output).contains("Examples:"),
            "{command:?} has no examples"
        );
    }
}

/// A second signal during a drain exits at once: an agent waits on a slow model, the first
/// SIGTERM starts draining it, the second ends the process with 130.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once() {
    let fake = chatgptd_testkit::fake_openai::FakeOpenAi::start().await;
    fake.set_latency(Duration::from_secs(30));
    let base_url = fake.base_url();
    let mut up = Up::start_with(&[
        ("OPENAI_BASE_URL", &base_url),
        ("OPENAI_API_KEY", "sk-test"),
    ])
    .await;
    let http = up.info()["http"].as_str().unwrap().to_string();
    let sent = up
        .client()
        .post(format!("{http}/agents/wanderweave/messages"))
        .json(&serde_json::json!({"body": "Plan a weekend", "wait": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202);
    wait_until(WAIT, "the model call in flight", || {
        let n = fake.request_count();
        async move { (n >= 1).then_some(()) }
    })
    .await;
    up.signal("-TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        up.child.try_wait().unwrap().is_none(),
        "still draining the agent's message"
    );
    up.signal("-TERM");
    assert_eq!(up.wait_exit().await, 130);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_check_reports_the_provider_and_its_limits() {
    let dir = tempfile::tempdir().unwrap();
    let offline = chatgptd()
        .args(["model", "check"])
        .current_dir(dir.path())
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .output()
        .unwrap();
    assert!(offline.status.success());
    assert!(stdout(&offline).contains("offline"), "{}", stdout(&offline));

    let fake = chatgptd_testkit::fake_openai::FakeOpenAi::start_with(
        chatgptd_testkit::fake_openai::FakeOptions {
            requests_per_window: Some(500),
            tokens_per_window: Some(200_000),
            ..Default::default()
        },
    )
    .await;
    let base_url = fake.base_url();
    let output = tokio::task::spawn_blocking(move || {
        chatgptd()
            .args(["model", "check"])
            .env("OPENAI_BASE_URL", base_url)
            .env("OPENAI_API_KEY", "sk-test")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = stdout(&output);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("provider:   openai") && text.contains("500"),
        "{text}"
    );
    assert!(
        !text.contains("sk-test") && !String::from_utf8_lossy(&output.stderr).contains("sk-test"),
        "the key is never printed"
    );
    assert_eq!(fake.request_count(), 1);
}

/// The README's "Agents that act" commands against a running `up`: an agent acts, another
/// waits for an approval that `chatgptd approvals` lists and decides (once), and `tail`
/// shows the audit readably.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_acting_and_approval_commands_work_against_up() {
    let up = Up::start().await;
    let data_dir = up.data_dir.clone();
    let http = up.info()["http"].as_str().unwrap().to_string();
    let client = up.client();
    let run_tool = |args: &[&str]| {
        let output = tool(&data_dir, args);
        (
            output.status.code(),
            format!(
                "{}{}",
                stdout(&output),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };
    let (code, sent) = run_tool(&[
        "agents",
        "send",
        "core-dispatcher",
        "ask aegis-threat-intel: is 203.0.113.7 known bad?",
    ]);
    assert_eq!(code, Some(0), "{sent}");
    assert!(
        sent.contains("message_agent") && sent.contains("aegis-threat-intel"),
        "{sent}"
    );

    let sent: Value = client
        .post(format!("{http}/agents/shield-core/messages"))
        .json(&serde_json::json!({"body": "grant sam viewer access", "wait": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let message = sent["message"]["message_id"].as_str().unwrap().to_string();
    let listed = wait_until(WAIT, "the approval to be listed", || {
        let (code, out) = run_tool(&["approvals", "list"]);
        async move { (code == Some(0) && out.contains("modify_access")).then_some(out) }
    })
    .await;
    assert!(
        listed.contains("shield-core") && listed.contains("sam"),
        "{listed}"
    );
    let id = listed.split_whitespace().next().unwrap().to_string();
    let approve = [
        "approvals",
        "approve",
        &id,
        "--by",
        "alice",
        "--reason",
        "ticket SEC-12",
    ];
    let (code, out) = run_tool(&approve);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = run_tool(&approve);
    assert_eq!(code, Some(2), "approving twice is refused: {out}");
    assert!(out.contains("already approved"), "{out}");

    // No executor for access changes here: approved, it is refused with that reason.
    let answer = wait_until(WAIT, "the resumed answer", || {
        let request = client.get(format!("{http}/messages/{message}")).send();
        async move {
            let body: Value = request.await.ok()?.json().await.ok()?;
            body["answers"].as_array()?.first().cloned()
        }
    })
    .await;
    assert!(
        answer["body"].as_str().unwrap().contains("no executor"),
        "{answer}"
    );
    let (code, tailed) = run_tool(&["tail", "agents.audit", "--from-beginning", "--max", "6"]);
    assert_eq!(code, Some(0), "{tailed}");
    assert!(
        tailed.contains("shield-core APPROVED modify_access"),
        "{tailed}"
    );
    assert!(tailed.contains("· by alice"), "{tailed}");
}

/// `chatgptd agents register|disable|enable` against a running `up`, found through its data
/// directory with the token it keeps there; the registration outlives a restart of `up`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_register_disable_and_enable_through_a_running_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = Up::start_in(dir.path(), &[]).await;
    let file = dir.path().join("scout.yaml");
    std::fs::write(
        &file,
        "id: scout\nname: Scout\nfleet: creative\ndescription: Finds places.\n\
         tier: standard\nsystem_prompt: You find places.\nactions: [reply]\n",
    )
    .unwrap();
    let output = tool(
        &up.data_dir,
        &["agents", "register", file.to_str().unwrap()],
    );
    assert!(output.status.success(), "{output:?}");
    assert!(stdout(&output).contains("register scout"), "{output:?}");

    let http = up.info()["http"].as_str().unwrap().to_string();
    let agent = get_json(&up.client(), &format!("{http}/agents/scout")).await;
    assert_eq!(agent["enabled"], true, "{agent}");

    let output = tool(&up.data_dir, &["agents", "disable", "scout"]);
    assert!(output.status.success(), "{output:?}");
    let agent = get_json(&up.client(), &format!("{http}/agents/scout")).await;
    assert_eq!(agent["enabled"], false, "{agent}");

    // Invalid: refused, the problem named on stderr.
    let output = tool(
        &up.data_dir,
        &[
            "agents",
            "register",
            "--json",
            r#"{"id": "x", "fleet": "nowhere"}"#,
        ],
    );
    assert!(!output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("400"),
        "{output:?}"
    );

    // A restart reads the registrations back from the broker's topic.
    up.signal("-TERM");
    assert_eq!(up.wait_exit().await, 0);
    let up = Up::start_in(dir.path(), &[]).await;
    let http = up.info()["http"].as_str().unwrap().to_string();
    let agent = wait_until(WAIT, "scout after the restart", || {
        let (client, url) = (up.client(), format!("{http}/agents/scout"));
        async move {
            let response = client.get(url).send().await.ok()?;
            response
                .json::<Value>()
                .await
                .ok()
                .filter(|a| a["id"] == "scout")
        }
    })
    .await;
    assert_eq!(agent["enabled"], false, "{agent}");
    let output = tool(&up.data_dir, &["agents", "enable", "scout"]);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout(&output).contains("enable scout"), "{output:?}");
}
