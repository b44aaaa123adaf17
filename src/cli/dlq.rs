//! `chatgptd dlq replay`.

use std::process::ExitCode;
use std::time::Duration;

use chatgptd_runtime::{Health, WorkerContext};
use chatgptd_types::Secrets;
use chatgptd_worker_dlq_replay::{Filter, Options, replay};
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use super::progress::Following;

use chatgptd_node::config::Config;
use chatgptd_node::stack::{KafkaMode, resolve_brokers};

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Re-publish dead letters to the topic they came from (after a fix), byte for byte.
    /// Runs until it has caught up with the dead-letter topic, then stops. Letters already
    /// replayed by an earlier run are not replayed again.
    #[command(after_help = "Examples:\n  \
        chatgptd dlq replay --dry-run                          # what would be replayed\n  \
        chatgptd dlq replay --source-topic tickets.events --error-class retries_exhausted\n  \
        chatgptd dlq replay --key jira:10001")]
    Replay(ReplayArgs),
}

/// Arguments of `chatgptd dlq replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Only letters from this source topic
    #[arg(long)]
    pub source_topic: Option<String>,
    /// Only letters with this error class (decode, unknown_schema, validation, retries_exhausted, ...)
    #[arg(long)]
    pub error_class: Option<String>,
    /// Only letters with this record key
    #[arg(long)]
    pub key: Option<String>,
    /// Show what would be replayed; publish nothing and commit nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Skip letters already replayed this many times
    #[arg(long, default_value_t = 3)]
    pub max_replays: i32,
    /// The dead-letter topic
    #[arg(long, default_value = chatgptd_types::topics::names::DEAD_LETTER)]
    pub topic: String,
}

pub async fn run(config: Config, command: DlqCommand) -> anyhow::Result<ExitCode> {
    let DlqCommand::Replay(args) = command;
    let kafka = resolve_brokers(&config, KafkaMode::ConfiguredOrRunning)?;
    let context = WorkerContext::new(&kafka, &Health::default(), &Secrets::env())?;
    let options = Options {
        dead_letter_topic: args.topic,
        filter: Filter {
            source_topic: args.source_topic,
            error_class: args.error_class,
            key: args.key,
        },
        dry_run: args.dry_run,
        max_replays: args.max_replays,
        consumer: config.dlq_replay.clone(),
        idle_timeout: Duration::from_secs(30),
        tally: Default::default(),
    };
    let shutdown = CancellationToken::new();
    chatgptd_runtime::shutdown::spawn_signal_handler(shutdown.clone());
    let tally = options.tally.clone();
    let progress = Following::start("replay", "letters", move || tally.get());
    let report = replay(&context, options, shutdown).await;
    progress.end().await;
    let report = report?;
    context.producer.flush(Duration::from_secs(10)).await;
    let verb = if report.dry_run {
        "would replay"
    } else {
        "replayed"
    };
    for letter in &report.matched {
        println!(
            "{verb} {}[{}]@{}  {} after {} attempt(s): {}",
            letter.source_topic,
            letter.source_partition,
            letter.source_offset,
            letter.error_class,
            letter.attempts,
            letter.error_message
        );
    }
    println!(
        "{} {verb}, {} filtered out, {} skipped after too many replays, {} without their value (too large to keep; left in place), {} unreadable or refused again (left in place)",
        report.matched.len(),
        report.filtered_out,
        report.too_many_replays,
        report.without_value,
        report.left_in_place
    );
    Ok(ExitCode::SUCCESS)
}
