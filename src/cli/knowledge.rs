//! `chatgptd knowledge add`: documents into the knowledge base of a running `up` (or any
//! node serving the indexer's routes), through its `POST /knowledge`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use chatgptd_node::config::Config;

const EXAMPLES: &str = r#"Examples:
  chatgptd knowledge add docs/vpn.md --tag it          # source: the path as given
  chatgptd knowledge add handbook/*.md --tag handbook  # one document per file
  chatgptd knowledge add notes.txt --source "IT handbook: printers" --tag it
  chatgptd knowledge add vpn.md --url http://node:8080 --token-env CHATGPTD_TOKEN

Adding a source again replaces its chunks. Agents and the ticket enrichment draw on the
knowledge base; `chatgptd search "vpn" --kind knowledge` shows what is in it."#;

/// `chatgptd knowledge ...`
#[derive(Debug, Subcommand)]
pub enum KnowledgeCommand {
    /// Add (or replace) documents: text, or Markdown for .md files.
    Add(AddArgs),
}

/// Arguments of `chatgptd knowledge add`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct AddArgs {
    /// The files to add, one document each
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The source name (only with one file; default: the file's path as given)
    #[arg(long)]
    pub source: Option<String>,
    /// A tag for every document (repeatable)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// `markdown` or `text` (default: Markdown for .md and .markdown files)
    #[arg(long)]
    pub format: Option<String>,
    /// The node's base URL (default: the running `up` of the data directory)
    #[arg(long)]
    pub url: Option<String>,
    /// An environment variable holding the API token (default: `<data_dir>/api-token`)
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
}

pub async fn run(config: Config, command: KnowledgeCommand) -> anyhow::Result<ExitCode> {
    match command {
        KnowledgeCommand::Add(args) => add(&config, args).await,
    }
}

async fn add(config: &Config, args: AddArgs) -> anyhow::Result<ExitCode> {
    if args.source.is_some() && args.files.len() > 1 {
        anyhow::bail!("--source names one document: give one file, or leave it out");
    }
    let url = match &args.url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => chatgptd_node::discovery::read(&config.data_dir)
            .map(|info| info.http)
            .with_context(|| {
                format!(
                    "no running `chatgptd up` with data directory {}: start one, or pass --url",
                    config.data_dir.display()
                )
            })?,
    };
    let token = match &args.token_env {
        Some(var) => std::env::var(var).with_context(|| format!("{var} is not set"))?,
        None => chatgptd_node::auth::read_token_file(&chatgptd_node::auth::token_file(
            &config.data_dir,
        ))?,
    };
    chatgptd_model::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let mut failed = false;
    for file in &args.files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let source = args
            .source
            .clone()
            .unwrap_or_else(|| file.display().to_string());
        let mut body = json!({"source": source, "text": text, "tags": args.tags});
        if let Some(format) = &args.format {
            body["format"] = json!(format);
        }
        let response = client
            .post(format!("{url}/knowledge"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("posting {} to {url}", file.display()))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or_default();
        if status.is_success() {
            println!(
                "{source}: {} chunk(s), on partition {} at offset {}",
                answer["chunks"], answer["partition"], answer["offset"]
            );
        } else {
            failed = true;
            let detail = answer["detail"].as_str().unwrap_or_default();
            eprintln!(
                "{source}: HTTP {status}: {} {detail}",
                answer["error"].as_str().unwrap_or("refused")
            );
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
