//! The workflow engine: the workflow definitions, the registry and the brain.

use chatgptd_worker_workflows::WorkflowsService;

use crate::stack::Stack;

pub(super) async fn build(stack: &Stack) -> anyhow::Result<WorkflowsService> {
    let (registry, workflows) = stack.definitions()?;
    Ok(WorkflowsService::new(
        &stack.config.workflows,
        &stack.context,
        workflows,
        registry,
        stack.brain().await?,
        stack.memory().await?,
    )?)
}
