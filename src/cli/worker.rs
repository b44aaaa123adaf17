//! `chatgptd worker <kind>`: one kind of worker against real Kafka (and Redis).

use std::process::ExitCode;

use anyhow::Context;
use chatgptd_types::Secrets;
use clap::Args;
use tokio_util::sync::CancellationToken;

use chatgptd_node::config::Config;
use chatgptd_node::{KafkaMode, Role, Stack};

const EXAMPLES: &str = "\
Examples:
  chatgptd worker memory-writer --brokers kafka:9092            # memory writer, Redis from config
  CHATGPTD_MEMORY__REDIS_URL=redis://redis:6379 chatgptd worker memory-writer --brokers kafka:9092
  chatgptd worker indexer --brokers kafka:9092 --http-listen 0.0.0.0:8081   # also serves /search

Beyond 127.0.0.1 the HTTP API needs API tokens ([http.tokens.<name>]; see chatgptd.example.toml).
Run more replicas of a worker to scale it: they share its consumer group and split the partitions.";

/// Arguments of `chatgptd worker`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct WorkerArgs {
    /// The worker to run
    #[arg(value_enum)]
    pub kind: Role,
}

pub async fn run(config: Config, args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let stack = Stack::start(config, Secrets::env(), KafkaMode::Configured).await?;
    let listener = tokio::net::TcpListener::bind(stack.config.http.listen)
        .await
        .with_context(|| format!("listening on {}", stack.config.http.listen))?;
    tracing::info!(worker = args.kind.name(), http = %listener.local_addr()?, brokers = %stack.context.kafka.brokers, "worker starting");
    let shutdown = CancellationToken::new();
    chatgptd_runtime::shutdown::spawn_signal_handler(shutdown.clone());

    let result = chatgptd_node::run(&stack, &[args.kind], listener, shutdown).await;
    result.map(|()| ExitCode::SUCCESS)
}
