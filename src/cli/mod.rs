//! The command line. Each subcommand is a module with its arguments and its `run`.

mod agents;
mod approvals;
mod config_cmd;
mod dlq;
mod index;
mod knowledge;
mod model;
mod produce;
mod progress;
mod registration;
mod search;
mod tail;
mod topics;
mod up;
mod worker;
mod workflow;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use chatgptd_node::config::{self, LogFormat, Overrides};

const EXAMPLES: &str = "\
Examples:
  chatgptd up                                  # everything in one process, nothing to install
  chatgptd tail tickets.enriched               # watch results (finds the running `up`)
  chatgptd topics apply --brokers kafka:9092   # create the topics of topics.yaml
  chatgptd config check --config prod.toml     # validate before deploying";

/// GPT agents on an event stream: stateless workers on Kafka.
#[derive(Debug, Parser)]
#[command(name = "chatgptd", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts; they override the config file and the environment.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file [default: ./chatgptd.toml when present]
    #[arg(long, global = true, env = "CHATGPTD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Kafka bootstrap servers (kafka.brokers)
    #[arg(long, global = true, value_name = "HOST:PORT,...")]
    pub brokers: Option<String>,

    /// Data directory of the embedded stack (data_dir)
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// HTTP listen address (http.listen); port 0 picks a free one
    #[arg(long, global = true, value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,

    /// Log format (log.format)
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process: an embedded Kafka-protocol broker (unless brokers are
    /// configured), embedded memory, the offline model, every worker and the HTTP API.
    Up(up::UpArgs),
    /// Run one kind of worker against real Kafka (and Redis); run several to scale out.
    Worker(worker::WorkerArgs),
    /// Search the memory index.
    Search(search::SearchArgs),
    /// Maintain the search index.
    #[command(subcommand)]
    Index(index::IndexCommand),
    /// The knowledge base: add documents agents and the enrichment draw on.
    #[command(subcommand)]
    Knowledge(knowledge::KnowledgeCommand),
    /// Check the model provider.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// The agent fleet: list, show, send messages.
    #[command(subcommand)]
    Agents(agents::AgentsCommand),
    /// The approval queue of agents' actions: list, show, approve, deny.
    #[command(subcommand)]
    Approvals(approvals::ApprovalsCommand),
    /// Workflows: list, run, status, resume, approve.
    #[command(subcommand)]
    Workflow(workflow::WorkflowCommand),
    /// Create or inspect the topics declared in topics.yaml.
    #[command(subcommand)]
    Topics(topics::TopicsCommand),
    /// Validate the configuration.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Encode JSON as Avro and produce it to a topic.
    Produce(produce::ProduceArgs),
    /// Print a topic's records, decoded from Avro.
    Tail(tail::TailArgs),
    /// Work with the dead-letter topic.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
}

impl Command {
    /// Commands whose stdout is their output log only warnings by default.
    fn is_tool(&self) -> bool {
        !matches!(
            self,
            Command::Up(_) | Command::Worker(_) | Command::Index(_)
        )
    }
}

/// Loads the configuration, sets up logging and runs the command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        brokers: cli.global.brokers.clone(),
        data_dir: cli.global.data_dir.clone(),
        http_listen: cli.global.http_listen,
        log_format: cli.global.log_format,
    };
    let loaded = match config::load(cli.global.config.as_deref(), &overrides) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!(
                "error: the configuration is invalid:\n{}",
                config::describe_error(&err)
            );
            return Ok(ExitCode::from(2));
        }
    };
    crate::logging::init(&loaded.config.log, cli.command.is_tool());
    match cli.command {
        Command::Up(args) => up::run(loaded.config, args).await,
        Command::Worker(args) => worker::run(loaded.config, args).await,
        Command::Search(args) => search::run(loaded.config, args).await,
        Command::Index(command) => index::run(loaded.config, command).await,
        Command::Knowledge(command) => knowledge::run(loaded.config, command).await,
        Command::Model(command) => model::run(loaded.config, command).await,
        Command::Agents(command) => agents::run(loaded.config, command).await,
        Command::Workflow(command) => workflow::run(loaded.config, command).await,
        Command::Approvals(command) => approvals::run(loaded.config, command).await,
        Command::Topics(command) => topics::run(loaded.config, command).await,
        Command::Config(command) => config_cmd::run(loaded, command).await,
        Command::Produce(args) => produce::run(loaded.config, args).await,
        Command::Tail(args) => tail::run(loaded.config, args).await,
        Command::Dlq(command) => dlq::run(loaded.config, command).await,
    }
}
