//! The agent worker: the registry, the brain, and memory from the process's index.

use chatgptd_worker_agents::AgentsService;

use crate::stack::Stack;

pub(super) async fn build(stack: &Stack) -> anyhow::Result<AgentsService> {
    let options = &stack.config.agents;
    let (_, workflows) = stack.definitions()?;
    let registry = stack.live_registry().await?;
    let retriever = stack.retriever("agents", &options.search_url, &options.search_token_env);
    Ok(AgentsService::new(
        options,
        &stack.context,
        registry,
        workflows,
        stack.brain().await?,
        stack.memory().await?,
        retriever,
    )?)
}
