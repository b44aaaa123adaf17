//! The workflow engine: the workflow definitions, the registry and memory; steps
//! are answered by their agents, through the agent worker.

use chatgptd_worker_workflows::WorkflowsService;

use crate::stack::Stack;

pub(super) async fn build(stack: &Stack) -> anyhow::Result<WorkflowsService> {
    let (registry, workflows) = stack.definitions()?;
    Ok(WorkflowsService::new(
        &stack.config.workflows,
        &stack.context,
        workflows,
        registry,
        stack.memory().await?,
    )?)
}
