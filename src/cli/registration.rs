//! `chatgptd agents register|disable|enable`: run-time registrations through the HTTP API
//! of a running `chatgptd up` (found through its data directory) or node (`--url`), with the
//! admin token `up` keeps in its data directory (or `--token-file`). The API validates and
//! stores them, as it does for `POST /agents`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use chatgptd_node::config::Config;
use chatgptd_node::{auth, discovery};
use clap::Args;
use serde_json::Value;

/// Where the API is and which token to send.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The API's base URL [default: the running `chatgptd up` of the data directory]
    #[arg(long)]
    pub url: Option<String>,
    /// A file holding an API token with `admin` [default: the data directory's `api-token`]
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

/// What to do.
pub enum Change {
    /// `POST /agents` with the agent in `source` (a YAML or JSON file, or JSON text).
    Register { source: String },
    /// `DELETE /agents/{id}`.
    Disable { id: String },
    /// `PATCH /agents/{id}` with `{"status": "enabled"}`.
    Enable { id: String },
}

pub async fn run(config: &Config, api: &ApiArgs, change: Change) -> anyhow::Result<ExitCode> {
    let base = match &api.url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            discovery::read(&config.data_dir)
                .with_context(|| {
                    format!(
                        "no running `chatgptd up` with data directory {} (or give --url)",
                        config.data_dir.display()
                    )
                })?
                .http
        }
    };
    let token_file = api
        .token_file
        .clone()
        .unwrap_or_else(|| auth::token_file(&config.data_dir));
    let token = auth::read_token_file(&token_file)?;
    // reqwest is built without a TLS provider of its own (an `https` --url needs one).
    chatgptd_model::install_crypto_provider();
    let client = reqwest::Client::new();
    let request = match &change {
        Change::Register { source } => client
            .post(format!("{base}/agents"))
            .json(&agent_of(source)?),
        Change::Disable { id } => client.delete(format!("{base}/agents/{id}")),
        Change::Enable { id } => client
            .patch(format!("{base}/agents/{id}"))
            .json(&serde_json::json!({"status": "enabled"})),
    };
    let response = request
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("calling {base}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        eprintln!("{status}: {}", body["error"].as_str().unwrap_or("refused"));
        for problem in body["problems"].as_array().into_iter().flatten() {
            eprintln!(
                "  - {}: {}",
                problem["field"].as_str().unwrap_or(""),
                problem["message"].as_str().unwrap_or("")
            );
        }
        return Ok(ExitCode::FAILURE);
    }
    let agent = &body["agent"];
    println!(
        "{} {} ({}, fleet {}) by {}",
        body["registration"]["change"].as_str().unwrap_or("changed"),
        agent["id"].as_str().unwrap_or("?"),
        if agent["status"] == "disabled" {
            "disabled"
        } else {
            "enabled"
        },
        agent["fleet"].as_str().unwrap_or("?"),
        body["registration"]["changed_by"].as_str().unwrap_or("?"),
    );
    Ok(ExitCode::SUCCESS)
}

/// The agent in `source`: JSON text, or a file of YAML or JSON (one agent, as in an agent
/// file's `agents:` list, with its `fleet`).
fn agent_of(source: &str) -> anyhow::Result<Value> {
    if source.trim_start().starts_with('{') {
        return serde_json::from_str(source).context("parsing the agent JSON");
    }
    let path = Path::new(source);
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: Value =
        serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if !value.is_object() {
        bail!("{} does not hold one agent", path.display());
    }
    Ok(value)
}
