//! `chatgptd up`: the whole system in one process.

use std::process::ExitCode;

use anyhow::Context;
use chatgptd_types::Secrets;
use clap::Args;
use tokio_util::sync::CancellationToken;

use chatgptd_node::config::Config;
use chatgptd_node::discovery::{self, EmbeddedInfo};
use chatgptd_node::{KafkaMode, Role, Stack};

const EXAMPLES: &str = "\
Examples:
  chatgptd up                                   # embedded broker, memory and model
  chatgptd up --http-listen 127.0.0.1:0         # any free HTTP port
  chatgptd up --brokers kafka:9092              # the same workers against a real cluster
  chatgptd up --data-dir /var/lib/chatgptd      # keep memory elsewhere";

/// Arguments of `chatgptd up`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct UpArgs {}

pub async fn run(config: Config, _args: UpArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let stack = Stack::start(config, Secrets::env(), KafkaMode::EmbeddedUnlessConfigured).await?;
    let listener = tokio::net::TcpListener::bind(stack.config.http.listen)
        .await
        .with_context(|| {
            format!(
                "listening on {} (use --http-listen 127.0.0.1:0 for any free port)",
                stack.config.http.listen
            )
        })?;
    let http_addr = listener.local_addr()?;
    // Before anything is announced: an open API beyond loopback stops here.
    let tokens = chatgptd_node::auth::tokens(&stack.config, &stack.secrets, http_addr)?;
    let shutdown = CancellationToken::new();
    chatgptd_runtime::shutdown::spawn_signal_handler(shutdown.clone());

    let brokers = stack.context.kafka.brokers.clone();
    let data_dir = stack.config.data_dir.clone();
    let info = EmbeddedInfo {
        brokers: brokers.clone(),
        http: format!("http://{http_addr}"),
        pid: std::process::id(),
    };
    discovery::write(&data_dir, &info).context("writing embedded.json to the data directory")?;
    print_banner(&stack, &info, tokens.generated());

    let result = chatgptd_node::run(&stack, &Role::ALL, listener, shutdown).await;
    discovery::remove(&data_dir);
    result.map(|()| ExitCode::SUCCESS)
}

fn print_banner(stack: &Stack, info: &EmbeddedInfo, token_file: Option<&std::path::Path>) {
    let kafka_note = match stack.embedded() {
        Some(embedded) if embedded.is_durable() => {
            "embedded broker, kept in the data directory across restarts"
        }
        Some(_) => "embedded broker in memory: gone when `up` stops",
        None => "configured",
    };
    println!("chatgptd is up");
    println!("  kafka   {}  ({kafka_note})", info.brokers);
    println!(
        "  http    {}  (/search /healthz /readyz /metrics)",
        info.http
    );
    println!("  data    {}", stack.config.data_dir.display());
    if let Some(file) = token_file {
        println!(
            "  token   {}  (an admin API token: -H \"Authorization: Bearer $(cat {0})\")",
            file.display()
        );
    }
    let memory = if stack.config.memory.redis_url.is_empty() {
        "sqlite (in the data directory)"
    } else {
        "redis"
    };
    println!("  memory  {memory}");
    let workers: Vec<&str> = Role::ALL.iter().map(|role| role.name()).collect();
    println!("  workers {}", workers.join(", "));
    println!();
    println!("In another terminal:");
    println!(
        "  chatgptd tail tickets.enriched --data-dir {}",
        stack.config.data_dir.display()
    );
    println!("  kcat -b {} -L", info.brokers);
    println!("Ctrl-C stops (drains in-flight work); a second Ctrl-C exits at once.");
}
