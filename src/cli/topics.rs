//! `chatgptd topics apply|list`.

use std::process::ExitCode;

use chatgptd_runtime::admin::{self, TopicReport, TopicState};
use chatgptd_types::Secrets;
use chatgptd_types::topics::TopicsFile;
use clap::Subcommand;

use chatgptd_node::config::Config;
use chatgptd_node::stack::{KafkaMode, resolve_brokers};

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create the topics of topics.yaml that are missing and report how existing ones differ
    /// (they are never altered). Safe to run again.
    #[command(
        after_help = "Examples:\n  chatgptd topics apply --brokers kafka:9092\n  \
                            CHATGPTD_TOPICS_FILE=topics.prod.yaml chatgptd topics apply"
    )]
    Apply,
    /// Show the topics of topics.yaml and their state in the cluster.
    #[command(
        after_help = "Examples:\n  chatgptd topics list --brokers kafka:9092\n  \
                            chatgptd topics list            # against a running `chatgptd up`"
    )]
    List,
}

pub async fn run(config: Config, command: TopicsCommand) -> anyhow::Result<ExitCode> {
    let topics = config.topics()?;
    let kafka = resolve_brokers(&config, KafkaMode::ConfiguredOrRunning)?;
    let secrets = Secrets::env();
    let reports = match command {
        TopicsCommand::Apply => admin::apply(&kafka, &topics, &secrets).await?,
        TopicsCommand::List => admin::list(&kafka, &topics, &secrets).await?,
    };
    print_table(&topics, &reports);
    let failed = reports
        .iter()
        .any(|r| matches!(r.state, TopicState::Failed(_)));
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_table(topics: &TopicsFile, reports: &[TopicReport]) {
    println!(
        "{:<24} {:>10} {:>3} {:>9} {:<8} {:<24} STATE",
        "TOPIC", "PARTITIONS", "RF", "RETENTION", "CLEANUP", "VALUE SCHEMA"
    );
    for report in reports {
        let Some(spec) = topics.get(&report.name) else {
            continue;
        };
        let state = match &report.state {
            TopicState::Created => "created".to_string(),
            TopicState::Exists => "exists".to_string(),
            TopicState::Missing => "MISSING".to_string(),
            TopicState::Failed(reason) => format!("FAILED: {reason}"),
        };
        println!(
            "{:<24} {:>10} {:>3} {:>9} {:<8} {:<24} {state}",
            spec.name,
            spec.partitions,
            spec.replication_factor,
            spec.retention,
            spec.cleanup_policy,
            spec.value_schema
        );
        println!("    key: {}", spec.key);
        for difference in &report.differences {
            println!("    ! {difference}");
        }
    }
}
