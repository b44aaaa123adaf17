//! `chatgptd model check`.

use std::process::ExitCode;

use chatgptd_model::{Classify, ModelClient};
use chatgptd_types::Secrets;
use clap::Subcommand;

use chatgptd_node::config::Config;

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Send one tiny request to the configured provider and report its answer and the rate
    /// limits it advertises (x-ratelimit-* headers). The offline model answers without
    /// network.
    #[command(after_help = "Examples:\n  \
        OPENAI_API_KEY=sk-... chatgptd model check\n  \
        OPENAI_BASE_URL=http://localhost:11434/v1 chatgptd model check   # Ollama\n  \
        chatgptd model check                                             # offline without a key")]
    Check,
}

pub async fn run(config: Config, command: ModelCommand) -> anyhow::Result<ExitCode> {
    let ModelCommand::Check = command;
    let client = ModelClient::new(&config.model, None, &Secrets::env()).await?;
    match client.check().await {
        Ok(report) => {
            print!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("error: the model check failed ({}): {err}", err.class());
            Ok(ExitCode::FAILURE)
        }
    }
}
