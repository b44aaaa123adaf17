//! `chatgptd worker <kind>`: one kind of worker against real Kafka (and Redis).

use std::process::ExitCode;

use anyhow::Context;
use chatgptd_types::Secrets;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::stack::{KafkaMode, Stack};
use crate::workers::{self, Services, WorkerKind};

const EXAMPLES: &str = "\
Examples:
  chatgptd worker memory-writer --brokers kafka:9092            # memory writer, Redis from config
  CHATGPTD_MEMORY__REDIS_URL=redis://redis:6379 chatgptd worker memory-writer --brokers kafka:9092
  chatgptd worker indexer --brokers kafka:9092 --http-listen 0.0.0.0:8081   # also serves /search

Run more replicas of a kind to scale it: they share its consumer group and split the partitions.";

/// Arguments of `chatgptd worker`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct WorkerArgs {
    /// The kind of worker to run
    #[arg(value_enum)]
    pub kind: WorkerKind,
}

pub async fn run(config: Config, args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let stack = Stack::start(config, KafkaMode::Configured, Secrets::env()).await?;
    let services = Services::open(&stack, &[args.kind]).await?;
    let listener = tokio::net::TcpListener::bind(stack.config.http.listen)
        .await
        .with_context(|| format!("listening on {}", stack.config.http.listen))?;
    tracing::info!(worker = args.kind.name(), http = %listener.local_addr()?, brokers = %stack.context.kafka.brokers, "worker starting");
    let shutdown = CancellationToken::new();
    chatgptd_runtime::shutdown::spawn_signal_handler(shutdown.clone());

    let result = workers::run(&stack, &services, &[args.kind], listener, shutdown).await;
    result.map(|()| ExitCode::SUCCESS)
}
