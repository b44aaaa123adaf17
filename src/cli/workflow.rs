//! `chatgptd workflow list|run|status|resume|approve`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chatgptd_runtime::{Health, WorkerContext};
use chatgptd_types::Secrets;
use chatgptd_worker_workflows::{RunStatus, RunStore, RunView, WorkflowsClient};
use clap::Subcommand;

use chatgptd_node::config::Config;
use chatgptd_node::stack::{KafkaMode, open_memory, resolve_brokers};

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// The workflows and their steps.
    #[command(after_help = "Examples:\n  chatgptd workflow list")]
    List,
    /// Start a run.
    #[command(after_help = "Examples:\n  \
        chatgptd workflow run research --input '{\"question\":\"Rail passes next to flights?\"}' --wait\n  \
        chatgptd workflow run content-creation --input '{\"topic\":\"Lisbon on foot\"}'")]
    Run {
        /// The workflow
        name: String,
        /// The run's input, as JSON
        #[arg(long, default_value = "{}")]
        input: String,
        /// Wait until the run finishes (or waits for an approval), then show it
        #[arg(long)]
        wait: bool,
        /// How long to wait
        #[arg(long, default_value = "5m")]
        timeout: humantime::Duration,
    },
    /// A run: its status and each step's state, attempts, output and timing.
    #[command(
        after_help = "Examples:\n  chatgptd workflow status 7f9c...\n  chatgptd workflow status 7f9c... --json"
    )]
    Status {
        /// The run id
        run: String,
        /// Print the run as JSON (as GET /runs/{id})
        #[arg(long)]
        json: bool,
    },
    /// Run a failed run again from where it stopped: every unfinished step whose
    /// dependencies succeeded.
    #[command(after_help = "Examples:\n  chatgptd workflow resume 7f9c...")]
    Resume {
        /// The run id
        run: String,
    },
    /// Approve a step that waits for approval.
    #[command(after_help = "Examples:\n  chatgptd workflow approve 7f9c... show")]
    Approve {
        /// The run id
        run: String,
        /// The step id
        step: String,
    },
}

async fn client(config: &Config) -> anyhow::Result<WorkflowsClient> {
    let registry = config.registry().context("loading the agent registry")?;
    let workflows = config
        .workflow_definitions(&registry)
        .context("loading the workflows")?;
    let kafka = resolve_brokers(config, KafkaMode::ConfiguredOrRunning)?;
    let health = Health::default();
    let secrets = Secrets::env();
    let context = WorkerContext::new(&kafka, &health, &secrets)?;
    let memory = open_memory(config, &health, &secrets).await?;
    let store = RunStore::new(memory, config.workflows.run_ttl);
    Ok(WorkflowsClient::new(
        context.producer.clone(),
        store,
        Arc::new(workflows),
        &config.workflows.topic,
    ))
}

pub async fn run(config: Config, command: WorkflowCommand) -> anyhow::Result<ExitCode> {
    match command {
        WorkflowCommand::List => {
            let registry = config.registry()?;
            let workflows = config.workflow_definitions(&registry)?;
            for spec in workflows.list() {
                println!("{}: {}", spec.name, spec.description);
                for step in spec.topological_order() {
                    let after = if step.depends_on.is_empty() {
                        String::new()
                    } else {
                        format!(" after {}", step.depends_on.join(", "))
                    };
                    println!("  - {} ({}){after}", step.id, step.agent);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkflowCommand::Run {
            name,
            input,
            wait,
            timeout,
        } => {
            let input: serde_json::Value =
                serde_json::from_str(&input).context("--input is not JSON")?;
            let client = client(&config).await?;
            let run = client.start(&name, &input, "cli").await?;
            println!("run {run} started");
            if !wait {
                return Ok(ExitCode::SUCCESS);
            }
            let view = client.wait(&run, Duration::from(timeout)).await?;
            print_run(&view);
            Ok(exit_code(&view))
        }
        WorkflowCommand::Status { run, json } => {
            let view = client(&config).await?.view(&run).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print_run(&view);
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkflowCommand::Resume { run } => {
            let steps = client(&config).await?.resume(&run, "cli").await?;
            println!("run {run} resumed at: {}", steps.join(", "));
            Ok(ExitCode::SUCCESS)
        }
        WorkflowCommand::Approve { run, step } => {
            client(&config).await?.approve(&run, &step, "cli").await?;
            println!("step {step} of run {run} approved");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn exit_code(view: &RunView) -> ExitCode {
    match view.run.status {
        RunStatus::Succeeded => ExitCode::SUCCESS,
        RunStatus::Failed => ExitCode::FAILURE,
        RunStatus::Running => ExitCode::from(3),
    }
}

fn print_run(view: &RunView) {
    let run = &view.run;
    let took = run
        .finished_at_ms
        .map(|end| format!(" in {:.1}s", (end - run.started_at_ms) as f64 / 1000.0))
        .unwrap_or_default();
    println!(
        "run {} of {}: {:?}{took} (started by {})",
        view.run_id, run.workflow, run.status, run.started_by
    );
    if let Some(error) = &run.error {
        println!("error: {error}");
    }
    for step in &view.steps {
        let state = &step.state;
        let took = match (state.started_at_ms, state.finished_at_ms) {
            (Some(start), Some(end)) => format!(" {:.1}s", (end - start) as f64 / 1000.0),
            _ => String::new(),
        };
        println!(
            "\n[{:?}] {} ({}), {} attempt(s){took}",
            state.status, step.id, state.agent, state.attempts
        );
        if let Some(error) = &state.error {
            println!("  error: {error}");
        }
        if let Some(output) = &state.output {
            let shown: String = output.chars().take(600).collect();
            println!("  {}", shown.replace('\n', "\n  "));
        }
    }
}
