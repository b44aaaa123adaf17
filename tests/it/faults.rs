//! The fault suite (issue 11 §5): the pipeline as separate worker processes (one ingest, two
//! enrich and two write-back replicas) on tansu and a real redis-server, while tickets flow:
//! replicas killed with SIGKILL and started again, Redis stopped and started empty, and (with
//! `FAULT_BROKER_RESTART=1`, see below) the broker stopped and started again. Asserted at the
//! fake tracker: every webhook the gateway acknowledged is commented on exactly once, and
//! nothing is dead-lettered.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatgptd_testkit::fake_openai::{FakeOpenAi, FakeOptions};
use chatgptd_testkit::fake_trackers::FakeTrackers;
use chatgptd_testkit::process::ServerProcess;
use chatgptd_testkit::redis::RedisServer;
use chatgptd_testkit::tansu::Tansu;
use chatgptd_testkit::webhooks::{SECRET as WEBHOOK_SECRET, fixture};
use chatgptd_testkit::{free_port, http_client, wait_until};
use chatgptd_types::topics::names::DEAD_LETTER;
use chatgptd_worker_ingest::signature::sign_hex;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{Value, json};

use crate::support::chatgptd;
use crate::support::pipeline::{MODEL_KEY, SECRETS};

const OWNER: &str = "Codertocat";
const REPO: &str = "Hello-World";
/// Tickets sent (`FAULT_TICKETS` sets another count), spread over `SENDING`: the faults
/// below happen while they flow.
const TICKETS: u64 = 150;
const SENDING: Duration = Duration::from_secs(30);

fn from_env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The configuration of every worker process: the fakes, Redis for memory, and consumer
/// timeouts short enough that a killed replica's partitions move on within seconds.
fn config(model: &FakeOpenAi, trackers: &FakeTrackers, redis: &RedisServer) -> String {
    let mut writeback = trackers.writeback_sections(&["KT"], &[&format!("{OWNER}/{REPO}")]);
    writeback["request_timeout"] = json!("5s");
    writeback["consumer"] = consumer();
    let sections = json!({
        "memory": { "redis_url": redis.url() },
        "model": {
            "provider": "openai",
            "base_url": model.base_url(),
            "api_key_env": "E2E_OPENAI_API_KEY",
            "default_limits": {
                "requests_per_minute": 0, "tokens_per_minute": 0, "max_concurrency": 0
            },
        },
        "ingest": {
            "github": {
                "secret_env": "E2E_GITHUB_WEBHOOK_SECRET",
                "repositories": [format!("{OWNER}/{REPO}")],
            },
        },
        "enrich": { "consumer": consumer() },
        "writeback": writeback,
    });
    toml::to_string(&sections).unwrap()
}

fn consumer() -> Value {
    json!({ "session_timeout": "6s", "drain_timeout": "2s" })
}

/// A `chatgptd worker <kind>` process and what it takes to start it again.
struct Worker {
    name: String,
    command: Box<dyn Fn() -> std::process::Command + Send>,
    log: PathBuf,
    process: Option<ServerProcess>,
}

impl Worker {
    fn new(dir: &Path, config: &Path, brokers: &str, kind: &str, n: usize, http: u16) -> Worker {
        let name = format!("{kind}-{n}");
        let (config, brokers, data) = (config.to_path_buf(), brokers.to_string(), dir.join(&name));
        let kind = kind.to_string();
        let command = move || {
            let mut command = chatgptd();
            for name in ["OPENAI_API_KEY", "OPENAI_BASE_URL"] {
                command.env_remove(name);
            }
            command.envs(SECRETS).arg("--config").arg(&config);
            command
                .args(["--brokers", &brokers, "--data-dir"])
                .arg(&data);
            command.args(["--http-listen", &format!("127.0.0.1:{http}")]);
            command.args(["worker", &kind]);
            command
        };
        let mut worker = Worker {
            log: dir.join(format!("{name}.log")),
            name,
            command: Box::new(command),
            process: None,
        };
        worker.start();
        worker
    }

    fn start(&mut self) {
        let process = ServerProcess::spawn((self.command)(), &self.log).expect("spawn worker");
        self.process = Some(process);
    }

    /// SIGKILL, as a crash, then a new process in its place.
    fn crash_and_restart(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
        self.start();
    }

    fn log_tail(&self) -> String {
        let tail = self.process.as_ref().map(ServerProcess::log_tail);
        format!("--- {} ---\n{}", self.name, tail.unwrap_or_default())
    }
}

/// The octokit `issues.opened` example about issue `number`, and its signature.
fn webhook(template: &Value, number: u64) -> (Vec<u8>, String) {
    let mut payload = template.clone();
    let issue = &mut payload["issue"];
    issue["number"] = number.into();
    issue["id"] = (444_500_000 + number).into();
    issue["node_id"] = format!("fault-issue-{number}").into();
    issue["title"] = format!("Spelling error in the README file ({number})").into();
    issue["html_url"] = format!("https://github.com/{OWNER}/{REPO}/issues/{number}").into();
    let body = serde_json::to_vec(&payload).unwrap();
    let signature = sign_hex(WEBHOOK_SECRET.as_bytes(), &body);
    (body, signature)
}

/// Records on `topic` (all partitions), from the watermarks.
fn count(brokers: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .unwrap();
            high - low
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kills_and_an_outage_of_redis_lose_nothing_and_repeat_nothing() {
    chatgptd_testkit::init_logging();
    let tickets: u64 = from_env("FAULT_TICKETS", TICKETS);
    let redis_outage = Duration::from_secs(from_env("FAULT_REDIS_OUTAGE_SECS", 8));
    let send_every = SENDING / tickets as u32;
    let dir = tempfile::tempdir().unwrap();
    let mut tansu = Tansu::start().await;
    let brokers = tansu.brokers();
    let mut redis = RedisServer::start().await;
    let model = FakeOpenAi::start_with(FakeOptions {
        api_key: Some(MODEL_KEY.to_string()),
        latency: Duration::from_millis(20),
        ..FakeOptions::default()
    })
    .await;
    let trackers = FakeTrackers::start().await;
    for number in 1..=tickets {
        trackers.add_github_issue(OWNER, REPO, number);
    }
    let config_file = dir.path().join("chatgptd.toml");
    std::fs::write(&config_file, config(&model, &trackers, &redis)).unwrap();
    let applied = chatgptd()
        .args(["topics", "apply", "--brokers", &brokers])
        .output()
        .unwrap();
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    let ingest_port = free_port();
    let spawn = |kind: &str, n: usize, port: u16| {
        Worker::new(dir.path(), &config_file, &brokers, kind, n, port)
    };
    let ingest = spawn("ingest", 1, ingest_port);
    let mut replicas = [
        spawn("enrich", 1, 0),
        spawn("enrich", 2, 0),
        spawn("writeback", 1, 0),
        spawn("writeback", 2, 0),
    ];
    let url = format!("http://127.0.0.1:{ingest_port}/webhooks/github");
    let client = http_client();
    wait_until(Duration::from_secs(60), "the gateway to answer", || {
        let request = client.get(format!("http://127.0.0.1:{ingest_port}/healthz"));
        async move { request.send().await.ok().filter(|r| r.status() == 200) }
    })
    .await;

    // The sender: every ticket in turn, each retried until the gateway acknowledges it.
    let acknowledged: Arc<Mutex<Vec<u64>>> = Arc::default();
    let refused = Arc::new(AtomicUsize::new(0));
    let template: Value =
        serde_json::from_slice(&fixture("github/issues.opened.octokit-webhooks.json")).unwrap();
    let sender = tokio::spawn({
        let (client, url, acknowledged) = (client.clone(), url.clone(), acknowledged.clone());
        let refused = refused.clone();
        async move {
            for number in 1..=tickets {
                let (body, signature) = webhook(&template, number);
                let delivery = format!("fault-{number}");
                loop {
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("x-github-event", "issues")
                        .header("x-github-delivery", &delivery)
                        .header("x-hub-signature-256", &signature)
                        .body(body.clone())
                        .send()
                        .await;
                    match response.map(|r| r.status().as_u16()) {
                        Ok(202) => break,
                        // 503 while Redis or the broker is away: the sender tries again.
                        Ok(503) | Err(_) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        Ok(other) => panic!("ticket {number}: the gateway answered {other}"),
                    }
                }
                acknowledged.lock().unwrap().push(number);
                tokio::time::sleep(send_every).await;
            }
        }
    });

    // The faults, while tickets flow: a crash every few seconds, then Redis, then the broker.
    for victim in [0, 2, 1, 3] {
        tokio::time::sleep(Duration::from_secs(3)).await;
        replicas[victim].crash_and_restart();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.stop();
    tokio::time::sleep(redis_outage).await;
    redis.restart().await;
    // tansu 0.6 can panic in its storage after a restart while producers that lived
    // through it go on ("more or less than one row", tansu-storage src/lite.rs:503, seen once
    // in four runs, and the broker then answers nothing): the broker restart runs only when
    // asked (`FAULT_BROKER_RESTART=1`). `up` is not exposed: its broker restarts only
    // with the process and its producers.
    if from_env("FAULT_BROKER_RESTART", 0u8) == 1 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        tansu.stop().await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        tansu.restart().await;
    }
    sender.await.unwrap();

    // Every acknowledged ticket gets its comment; then nothing more arrives.
    let logs = || {
        let mut all: Vec<String> = replicas.iter().map(Worker::log_tail).collect();
        all.push(ingest.log_tail());
        all.join("\n")
    };
    let commented = |number: u64| trackers.github_comments(OWNER, REPO, number).len();
    let done = tokio::time::timeout(Duration::from_secs(180), async {
        while (1..=tickets).any(|n| commented(n) == 0) {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    let missing: Vec<u64> = (1..=tickets).filter(|&n| commented(n) == 0).collect();
    assert!(done.is_ok(), "never commented: {missing:?}\n{}", logs());
    tokio::time::sleep(Duration::from_secs(5)).await;

    let acknowledged = acknowledged.lock().unwrap().clone();
    assert_eq!(acknowledged.len() as u64, tickets);
    // The outages were felt where a sender sees them.
    assert!(
        refused.load(Ordering::Relaxed) > 0,
        "the gateway never refused a webhook"
    );
    let twice: Vec<u64> = (1..=tickets).filter(|&n| commented(n) > 1).collect();
    assert!(
        twice.is_empty(),
        "commented more than once: {twice:?}\n{}",
        logs()
    );
    let brokers_now = brokers.clone();
    let dead = tokio::task::spawn_blocking(move || count(&brokers_now, DEAD_LETTER))
        .await
        .unwrap();
    assert_eq!(dead, 0, "dead letters\n{}", logs());
}
