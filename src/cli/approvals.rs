//! `chatgptd approvals list|show|approve|deny`: the approval queue of agents' actions.

use std::process::ExitCode;

use anyhow::Context;
use chatgptd_actions::Decision;
use chatgptd_runtime::{Health, WorkerContext};
use chatgptd_types::Secrets;
use chatgptd_types::records::ApprovalRequest;
use chatgptd_worker_agents::{ApprovalError, ApprovalsClient};
use clap::Subcommand;

use chatgptd_node::config::Config;
use chatgptd_node::stack::{KafkaMode, open_memory, resolve_brokers};

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Approval requests, oldest first.
    #[command(
        after_help = "Examples:\n  chatgptd approvals list\n  chatgptd approvals list --state all --json"
    )]
    List {
        /// pending, approved, denied, expired or all
        #[arg(long, default_value = "pending")]
        state: String,
        /// Print them as JSON (as GET /approvals)
        #[arg(long)]
        json: bool,
    },
    /// One approval request, as JSON.
    #[command(after_help = "Examples:\n  chatgptd approvals show act-3f2a...")]
    Show {
        /// The approval id (act-...)
        id: String,
    },
    /// Approve: the action runs and the agent's conversation goes on.
    #[command(
        after_help = "Examples:\n  chatgptd approvals approve act-3f2a... --by alice --reason 'ticket SEC-12'"
    )]
    Approve {
        /// The approval id (act-...)
        id: String,
        /// Who approves
        #[arg(long)]
        by: String,
        /// Why
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Deny: the agent's model is told who denied it and why.
    #[command(
        after_help = "Examples:\n  chatgptd approvals deny act-3f2a... --by alice --reason 'not without a change ticket'"
    )]
    Deny {
        /// The approval id (act-...)
        id: String,
        /// Who denies
        #[arg(long)]
        by: String,
        /// Why (the agent is told)
        #[arg(long)]
        reason: String,
    },
}

async fn client(config: &Config) -> anyhow::Result<ApprovalsClient> {
    let kafka = resolve_brokers(config, KafkaMode::ConfiguredOrRunning)?;
    let health = Health::default();
    let secrets = Secrets::env();
    let context = WorkerContext::new(&kafka, &health, &secrets)?;
    let memory = open_memory(config, &health, &secrets)
        .await
        .context("opening memory, where approvals are kept")?;
    Ok(ApprovalsClient::new(
        &config.agents,
        memory,
        context.producer.clone(),
        context.codec.clone(),
    ))
}

pub async fn run(config: Config, command: ApprovalsCommand) -> anyhow::Result<ExitCode> {
    let client = client(&config).await?;
    match command {
        ApprovalsCommand::List { state, json } => {
            let filter = (state != "all").then_some(state.as_str());
            let list = client.list(filter).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no {state} approvals");
            } else {
                list.iter().for_each(print_line);
            }
            Ok(ExitCode::SUCCESS)
        }
        ApprovalsCommand::Show { id } => match client.get(&id).await? {
            Some(approval) => {
                println!("{}", serde_json::to_string_pretty(&approval)?);
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!("no approval {id}");
                Ok(ExitCode::from(2))
            }
        },
        ApprovalsCommand::Approve { id, by, reason } => {
            decide(&client, &id, Decision::Approve, &by, &reason).await
        }
        ApprovalsCommand::Deny { id, by, reason } => {
            decide(&client, &id, Decision::Deny, &by, &reason).await
        }
    }
}

async fn decide(
    client: &ApprovalsClient,
    id: &str,
    decision: Decision,
    by: &str,
    reason: &str,
) -> anyhow::Result<ExitCode> {
    match client.decide(id, decision, by, reason).await {
        Ok(approval) => {
            println!(
                "{} {}: {} may {}",
                approval.id, approval.state, approval.agent, approval.action
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(ApprovalError::Store(
            err @ (chatgptd_actions::Error::UnknownApproval(_)
            | chatgptd_actions::Error::AlreadyDecided { .. }),
        )) => {
            eprintln!("{err}");
            Ok(ExitCode::from(2))
        }
        Err(err) => Err(err.into()),
    }
}

fn print_line(approval: &ApprovalRequest) {
    println!(
        "{}  {:<8} {} wants {} {} (risk {}): {}",
        approval.id,
        approval.state,
        approval.agent,
        approval.action,
        approval.arguments,
        approval.risk_score,
        approval.reasons.join("; ")
    );
}
