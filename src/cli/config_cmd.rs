//! `chatgptd config check`: validate everything a deployment reads before it runs.

use std::process::ExitCode;

use chatgptd_runtime::http::{AuthMode, Token};
use chatgptd_types::avro::SchemaStore;
use clap::Subcommand;

use chatgptd_node::config::Loaded;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration, topics.yaml and the Avro schemas; exit non-zero with a
    /// readable list of problems.
    #[command(
        after_help = "Examples:\n  chatgptd config check\n  chatgptd config check --config prod.toml --show"
    )]
    Check {
        /// Also print the effective configuration (secrets are never in it: only the names of
        /// the environment variables that hold them)
        #[arg(long)]
        show: bool,
    },
}

pub async fn run(loaded: Loaded, command: ConfigCommand) -> anyhow::Result<ExitCode> {
    let ConfigCommand::Check { show } = command;
    let config = &loaded.config;
    let mut problems: Vec<String> = Vec::new();
    let source = loaded
        .file
        .as_ref()
        .map_or("defaults and environment".to_string(), |f| {
            f.display().to_string()
        });
    println!("config: {source}");

    for (section, options) in config.consumers() {
        if let Err(err) = options.validate() {
            problems.push(format!("{section}: {err}"));
        }
        if let Some(warning) = options.poll_interval_warning() {
            println!("  warning: {section}: {warning}");
        }
    }

    let store = match SchemaStore::builtin() {
        Ok(store) => Some(store),
        Err(err) => {
            problems.push(format!("built-in schemas: {err}"));
            None
        }
    };
    if !config.schemas_dir.as_os_str().is_empty() {
        match SchemaStore::from_dir(&config.schemas_dir) {
            Ok(on_disk) => {
                let versions = on_disk.all_versions().count();
                println!(
                    "schemas: {} ({versions} versions)",
                    config.schemas_dir.display()
                );
                if let Some(builtin) = &store {
                    for schema in on_disk.current_schemas() {
                        let same = builtin
                            .current(&schema.name)
                            .is_some_and(|b| b.fingerprint == schema.fingerprint);
                        if !same {
                            problems.push(format!(
                                "{}: {} differs from the schema compiled into this binary; rebuild, or deploy the matching schemas",
                                schema.file, schema.name
                            ));
                        }
                    }
                }
            }
            Err(err) => problems.push(format!("schemas: {err}")),
        }
    } else if let Some(store) = &store {
        println!(
            "schemas: built in ({} record types)",
            store.current_schemas().len()
        );
    }

    match config.topics() {
        Ok(topics) => {
            println!("topics: {} declared", topics.topics.len());
            if let Some(store) = &store {
                problems.extend(topics.check_schemas(store));
            }
        }
        Err(err) => problems.push(err.to_string()),
    }

    match config.registry() {
        Ok(registry) => {
            println!(
                "agents: {} in {} fleets",
                registry.agents().len(),
                registry.fleets().len()
            );
            for warning in registry.warnings() {
                println!("  warning: {warning}");
            }
            // Whether a secret is set is the deploying environment's business, so a missing
            // one is a warning (the action is refused until it is set), named, never shown.
            let secrets = chatgptd_types::Secrets::env();
            let missing =
                chatgptd_registry::executor::missing_secrets(registry.actions(), |name| {
                    secrets.get(name).is_some()
                });
            for line in missing {
                println!("  warning: actions.yaml: {line}");
            }
            problems.extend(mcp_problems(&registry).await);
            match config.workflow_definitions(&registry) {
                Ok(workflows) => {
                    println!("workflows: {}", workflows.list().len());
                    for warning in workflows.warnings() {
                        println!("  warning: {warning}");
                    }
                }
                Err(err) => problems.extend(definition_problems(&err)),
            }
        }
        Err(err) => problems.extend(definition_problems(&err)),
    }

    problems.extend(token_problems(config));

    if show {
        println!("\n# effective configuration\n{}", config.to_toml());
    }
    if problems.is_empty() {
        println!("ok");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{} problem(s):", problems.len());
        for problem in &problems {
            eprintln!("  - {problem}");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// The API tokens as configured: a name, scopes, and exactly one well-formed `sha256` or
/// `secret_env`. Whether a `secret_env` is set is the deploying environment's business, so
/// it is not looked up here.
fn token_problems(config: &chatgptd_node::Config) -> Vec<String> {
    let http = &config.http;
    if http.auth == AuthMode::None {
        println!("api: no authentication (http.auth = \"none\")");
        return Vec::new();
    }
    let mut problems = Vec::new();
    for (name, options) in &http.tokens {
        if let Err(err) = Token::from_options(name, options, |_| Some("set".to_string())) {
            problems.push(format!("http.tokens.{name}: {err}"));
        }
    }
    if http.tokens.is_empty() {
        println!("api tokens: none (a loopback listener keeps one in <data_dir>/api-token)");
    } else {
        println!("api tokens: {}", http.tokens.len());
    }
    problems
}

/// The declared MCP tools, each confirmed with its server's `tools/list`: a tool the server
/// does not have is a problem; a server that cannot be reached now is a warning (it may be
/// down only here), since its tools cannot be confirmed.
async fn mcp_problems(registry: &chatgptd_registry::Registry) -> Vec<String> {
    let mut problems = Vec::new();
    if registry.mcp_servers().is_empty() {
        return problems;
    }
    let clients = chatgptd_worker_agents::McpClients::new(chatgptd_types::Secrets::env());
    for server in registry.mcp_servers() {
        let declared: Vec<(&str, &str)> = registry
            .actions()
            .iter()
            .filter_map(|action| match action.mcp_tool() {
                Some((id, tool)) if id == server.id => Some((action.id.as_str(), tool)),
                _ => None,
            })
            .collect();
        let listed = clients.list(server).await;
        println!(
            "mcp server {}: {} declared tool(s)",
            server.id,
            declared.len()
        );
        for (action, tool) in declared {
            match &listed {
                Ok(tools) if tools.contains_key(tool) => {
                    println!("  {action}: {tool} (listed by the server)");
                }
                Ok(_) => problems.push(format!(
                    "mcp server `{}` does not list the tool `{tool}` of action `{action}`",
                    server.id
                )),
                Err(_) => println!(
                    "  warning: {action}: {tool} not confirmed: the server could not be reached"
                ),
            }
        }
        if let Err(err) = &listed {
            println!("  warning: {err}");
        }
    }
    problems
}

/// One line per problem of an agent or workflow definition error.
fn definition_problems(err: &chatgptd_registry::Error) -> Vec<String> {
    match err.problems() {
        [] => vec![err.to_string()],
        problems => problems.iter().map(ToString::to_string).collect(),
    }
}
