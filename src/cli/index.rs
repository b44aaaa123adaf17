//! `chatgptd index rebuild`: rebuild the search index from the memory topic.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use chatgptd_runtime::{Health, WorkerContext};
use chatgptd_types::Secrets;
use chatgptd_worker_indexer::{IndexerService, IndexerWorkerOptions};
use clap::Subcommand;
use rdkafka::consumer::BaseConsumer;
use tokio_util::sync::CancellationToken;

use chatgptd_node::config::Config;
use chatgptd_node::stack::{KafkaMode, resolve_brokers};
use chatgptd_runtime::Service;

use super::progress::Meter;

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Rebuild the search index from the memory topic: index everything the topic still
    /// holds into a fresh directory, then swap it in. Stop the indexer (or `chatgptd up`)
    /// first; the rebuild refuses to run while an indexer holds the index.
    #[command(
        after_help = "Examples:\n  chatgptd index rebuild --brokers kafka:9092\n  \
                            chatgptd index rebuild --brokers kafka:9092 --data-dir /var/lib/chatgptd"
    )]
    Rebuild,
}

pub async fn run(config: Config, command: IndexCommand) -> anyhow::Result<ExitCode> {
    let IndexCommand::Rebuild = command;
    let kafka = resolve_brokers(&config, KafkaMode::ConfiguredOrRunning)?;
    let secrets = Secrets::env();
    let topic = config.indexer.topic.clone();
    let live = chatgptd_search::topic_dir(&config.index_root(), &topic);
    refuse_if_locked(&live)?;

    let staging_root = config.index_root().with_extension("rebuild");
    let _ = std::fs::remove_dir_all(&staging_root);
    let ends = tokio::task::spawn_blocking({
        let kafka = kafka.clone();
        let topic = topic.clone();
        let secrets = secrets.clone();
        move || end_offsets(&kafka, &topic, &secrets)
    })
    .await??;
    let records: i64 = ends.values().sum();
    println!(
        "rebuilding the index of {topic} ({} partitions, up to {records} offsets) in {}",
        ends.len(),
        staging_root.display()
    );

    let health = Health::default();
    let context = WorkerContext::new(&kafka, &health, &secrets)?;
    let mut options: IndexerWorkerOptions = config.indexer.clone();
    // A throwaway group: every shard is new, so every partition is read from its beginning.
    options.consumer.group_id = format!("chatgptd-index-rebuild-{}", uuid::Uuid::new_v4());
    let service = IndexerService::new(&options, &staging_root, &context)?;
    let shards = service.shards();
    let shutdown = CancellationToken::new();
    chatgptd_runtime::shutdown::spawn_signal_handler(shutdown.clone());
    let mut running = tokio::spawn(service.run(shutdown.clone()));
    let mut meter = Meter::stderr("rebuild", "offsets", records as u64);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            // The indexer stopped before reaching the end (missing topic, broker gone).
            ended = &mut running => {
                ended.context("indexer task")??;
                bail!("the indexer stopped before the end of {topic}; the live index is untouched");
            }
        }
        if shutdown.is_cancelled() {
            bail!("interrupted; the live index is untouched");
        }
        let positions = shards.committed_positions();
        let reached = |partition: &i32| positions.get(partition).copied().flatten().unwrap_or(0);
        let indexed: i64 = ends.iter().map(|(p, end)| reached(p).min(*end)).sum();
        meter.set(indexed as u64, records as u64);
        if ends.iter().all(|(p, end)| reached(p) >= *end) {
            meter.finish(indexed as u64, records as u64);
            break;
        }
    }
    shutdown.cancel();
    running.await.context("indexer task")??;

    let staged = chatgptd_search::topic_dir(&staging_root, &topic);
    std::fs::create_dir_all(&staged)?;
    let retired = live.with_extension("old");
    let _ = std::fs::remove_dir_all(&retired);
    if live.exists() {
        std::fs::rename(&live, &retired)
            .with_context(|| format!("moving {} aside", live.display()))?;
    }
    std::fs::create_dir_all(live.parent().unwrap_or(&live))?;
    std::fs::rename(&staged, &live)
        .with_context(|| format!("moving the rebuilt index to {}", live.display()))?;
    let _ = std::fs::remove_dir_all(&retired);
    let _ = std::fs::remove_dir_all(&staging_root);
    println!("index rebuilt: {}", live.display());
    Ok(ExitCode::SUCCESS)
}

/// The end offset of every partition of `topic` (high watermarks, minus nothing: the offset
/// one past the last record).
fn end_offsets(
    kafka: &chatgptd_runtime::KafkaOptions,
    topic: &str,
    secrets: &Secrets,
) -> anyhow::Result<HashMap<i32, i64>> {
    let consumer: BaseConsumer = kafka.base_config("index-rebuild", secrets)?.create()?;
    let watermarks =
        chatgptd_runtime::admin::watermarks(&consumer, topic, Duration::from_secs(10))?;
    if watermarks.is_empty() {
        bail!("topic {topic} does not exist");
    }
    let ends: HashMap<i32, i64> = watermarks
        .into_iter()
        .map(|(partition, low, high)| (partition, if high > low { high } else { 0 }))
        .collect();
    Ok(ends)
}

/// Refuses while another process holds a shard's writer lock: a running indexer would keep
/// writing into the directory the rebuild replaces.
fn refuse_if_locked(live: &std::path::Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(live) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.join("meta.json").exists() {
            continue;
        }
        let index = tantivy::Index::open_in_dir(&dir)?;
        let probe: Result<tantivy::IndexWriter, _> = index.writer_with_num_threads(1, 15_000_000);
        if let Err(err) = probe {
            bail!(
                "an indexer holds {} ({err}): stop `chatgptd worker indexer` or `chatgptd up` first",
                dir.display()
            );
        }
    }
    Ok(())
}
