//! The webhook gateway: its routes, on the process's memory backend for dedupe.

use anyhow::Context;
use chatgptd_worker_ingest::Ingest;

use crate::stack::Stack;

pub(super) async fn build(stack: &Stack) -> anyhow::Result<Ingest> {
    Ingest::new(
        stack.config.ingest.clone(),
        &stack.context,
        stack.memory().await?,
        &stack.secrets,
    )
    .context("building the webhook gateway")
}
