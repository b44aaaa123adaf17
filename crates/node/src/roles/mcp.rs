//! `/mcp`: the fleet as MCP tools (`crates/mcp`), on the clients the agents' and workflows'
//! APIs use, served by processes that run the agents.

use chatgptd_fleet::{AgentsClient, Inbox};
use chatgptd_runtime::http::Routes;
use chatgptd_worker_workflows::{RunStore, WorkflowsClient};
use tokio_util::sync::CancellationToken;

use crate::stack::Stack;

pub(super) async fn routes(stack: &Stack, shutdown: CancellationToken) -> anyhow::Result<Routes> {
    let config = &stack.config;
    let memory = stack.memory().await?;
    let (_, workflows) = stack.definitions()?;
    let producer = stack.context.producer.clone();
    let fleet = chatgptd_mcp::Fleet {
        registry: stack.live_registry().await?,
        agents: AgentsClient::new(
            producer.clone(),
            Inbox::new(memory.clone(), config.agents.inbox_ttl),
            &config.agents.topic,
        ),
        retriever: stack.retriever(
            "mcp",
            &config.agents.search_url,
            &config.agents.search_token_env,
        ),
        workflows: WorkflowsClient::new(
            producer,
            RunStore::new(memory, config.workflows.run_ttl),
            workflows,
            &config.workflows.topic,
        ),
    };
    Ok(chatgptd_mcp::routes(fleet, shutdown))
}
