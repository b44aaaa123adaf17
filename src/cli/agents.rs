//! `chatgptd agents list|show|send|register|disable|enable`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use chatgptd_fleet::{AgentsClient, Inbox, agent_health, new_request};
use chatgptd_runtime::{Health, WorkerContext};
use chatgptd_types::Secrets;
use clap::Subcommand;

use chatgptd_node::config::Config;
use chatgptd_node::stack::{KafkaMode, open_memory, resolve_brokers};

use super::registration::{self, ApiArgs, Change};

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// The agents of the registry, by fleet, with their status (active, standby, stale).
    #[command(
        after_help = "Examples:\n  chatgptd agents list\n  chatgptd agents list --fleet creative"
    )]
    List {
        /// Only this fleet
        #[arg(long)]
        fleet: Option<String>,
    },
    /// One agent: persona, model, actions, status.
    #[command(after_help = "Examples:\n  chatgptd agents show wanderweave")]
    Show {
        /// The agent's id
        id: String,
    },
    /// Send a message to an agent (or `fleet:<name>` for every agent of a fleet) and print the
    /// answers. Needs Kafka and the memory backend: a running `chatgptd up`, or config.
    #[command(after_help = "Examples:\n  \
        chatgptd agents send wanderweave \"A rainy weekend in Lisbon, on foot\"\n  \
        chatgptd agents send fleet:creative \"Ideas for a winter campaign\" --timeout 60s\n  \
        chatgptd agents send aegis-sentinel \"Triage: phishing email reported\" --no-wait")]
    Send {
        /// An agent id, or fleet:<name>
        to: String,
        /// The message
        body: String,
        /// Return once Kafka has the message, without waiting for answers
        #[arg(long)]
        no_wait: bool,
        /// How long to wait for the answers
        #[arg(long, default_value = "30s")]
        timeout: humantime::Duration,
        /// Continue this conversation
        #[arg(long)]
        conversation: Option<String>,
        /// Tokens the answer may spend (0: the agent's own budget)
        #[arg(long, default_value_t = 0)]
        budget: i64,
    },
    /// Register an agent at run time through the API of a running `up` (scope admin): a
    /// YAML or JSON file holding one agent with its `fleet`, or `--json` text.
    #[command(after_help = "Examples:\n  \
        chatgptd agents register scout.yaml\n  \
        chatgptd agents register --json '{\"id\":\"scout\",\"fleet\":\"creative\",...}'")]
    Register {
        /// The agent's file (YAML or JSON)
        #[arg(required_unless_present = "json", conflicts_with = "json")]
        file: Option<PathBuf>,
        /// The agent as JSON text
        #[arg(long)]
        json: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Disable an agent (from the files or registered) through the API: messages to it are
    /// refused until it is enabled.
    #[command(after_help = "Examples:\n  chatgptd agents disable scout")]
    Disable {
        /// The agent's id
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Enable a disabled agent through the API.
    #[command(after_help = "Examples:\n  chatgptd agents enable scout")]
    Enable {
        /// The agent's id
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub async fn run(config: Config, command: AgentsCommand) -> anyhow::Result<ExitCode> {
    let registry = config.registry().context("loading the agent registry")?;
    match command {
        AgentsCommand::Register { file, json, api } => {
            let source = match (file, json) {
                (Some(file), _) => file.display().to_string(),
                (None, Some(json)) => json,
                (None, None) => bail!("give a file or --json"),
            };
            registration::run(&config, &api, Change::Register { source }).await
        }
        AgentsCommand::Disable { id, api } => {
            registration::run(&config, &api, Change::Disable { id }).await
        }
        AgentsCommand::Enable { id, api } => {
            registration::run(&config, &api, Change::Enable { id }).await
        }
        AgentsCommand::List { fleet } => {
            let health = Health::default();
            let memory = open_memory(&config, &health, &Secrets::env()).await.ok();
            let agents: Vec<_> = match &fleet {
                Some(fleet) => registry.fleet(fleet),
                None => registry.agents().iter().collect(),
            };
            if agents.is_empty() {
                bail!(
                    "no agents{}",
                    fleet.map(|f| format!(" in fleet {f}")).unwrap_or_default()
                );
            }
            println!(
                "{:<26} {:<20} {:<13} {:<8} ACTIONS",
                "AGENT", "FLEET", "TIER", "STATUS"
            );
            for agent in agents {
                let status = match &memory {
                    Some(memory) => {
                        agent_health(memory.as_ref(), &agent.id, config.agents.heartbeat_interval)
                            .await
                            .map(|h| h.status.as_str().to_string())
                            .unwrap_or_else(|_| "?".into())
                    }
                    None => "?".into(),
                };
                let status = if agent.is_enabled() {
                    status
                } else {
                    "disabled".into()
                };
                println!(
                    "{:<26} {:<20} {:<13} {:<8} {}",
                    agent.id,
                    agent.fleet,
                    agent.tier.as_str(),
                    status,
                    agent.actions.join(",")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        AgentsCommand::Show { id } => {
            let agent = registry
                .get(&id)
                .with_context(|| format!("no agent `{id}`"))?;
            println!(
                "{} ({})  fleet {}  tier {}",
                agent.name,
                agent.id,
                agent.fleet,
                agent.tier.as_str()
            );
            println!("{}\n", agent.description);
            println!(
                "model: {}  temperature {}  max tokens {}",
                agent.model.name_or(&config.model.model),
                agent.model.temperature,
                agent
                    .model
                    .max_completion_tokens
                    .map_or("default".to_string(), |t| t.to_string())
            );
            println!("actions: {}", agent.actions.join(", "));
            for action in registry.actions_of(&agent.id) {
                let approval = if registry.requires_approval(&agent.id, &action.id) {
                    " (needs approval)"
                } else {
                    ""
                };
                println!("  - {}: {:?} risk{approval}", action.id, action.risk);
            }
            println!(
                "token budget {}  max hops {}",
                agent.token_budget,
                agent
                    .max_hops
                    .map_or("default".to_string(), |h| h.to_string())
            );
            println!("\nsystem prompt:\n{}", agent.system_prompt.trim());
            Ok(ExitCode::SUCCESS)
        }
        AgentsCommand::Send {
            to,
            body,
            no_wait,
            timeout,
            conversation,
            budget,
        } => {
            let expected = match to.strip_prefix("fleet:") {
                Some(fleet) => registry.fleet(fleet).len(),
                None => usize::from(registry.get(&to).is_some_and(|a| a.is_enabled())),
            };
            if expected == 0 {
                bail!("no enabled agent `{to}` (see `chatgptd agents list`)");
            }
            let kafka = resolve_brokers(&config, KafkaMode::ConfiguredOrRunning)?;
            let health = Health::default();
            let secrets = Secrets::env();
            let context = WorkerContext::new(&kafka, &health, &secrets)?;
            let memory = open_memory(&config, &health, &secrets).await?;
            let client = AgentsClient::new(
                context.producer.clone(),
                Inbox::new(memory, config.agents.inbox_ttl),
                &config.agents.topic,
            );
            let message = new_request("user:cli", &to, &body, conversation.as_deref(), budget);
            client.send(&message).await?;
            println!(
                "sent {} (conversation {})",
                message.id, message.conversation_id
            );
            if no_wait {
                return Ok(ExitCode::SUCCESS);
            }
            let answers = client
                .wait(&message.id, expected, Duration::from(timeout))
                .await?;
            for answer in &answers {
                println!(
                    "\n── {} ({})",
                    answer["from"].as_str().unwrap_or("?"),
                    answer["kind"].as_str().unwrap_or("?")
                );
                println!("{}", answer["body"].as_str().unwrap_or(""));
            }
            if answers.len() < expected {
                eprintln!(
                    "\n{} of {expected} answer(s) within {timeout}; later ones: chatgptd agents send ... or GET /messages/{}",
                    answers.len(),
                    message.id
                );
                return Ok(ExitCode::from(3));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
