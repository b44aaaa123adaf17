//! The write-back worker: tracker credentials from the process's secrets.

use anyhow::Context;
use chatgptd_worker_writeback::{Writeback, WritebackService};

use crate::stack::Stack;

pub(super) async fn build(stack: &Stack) -> anyhow::Result<WritebackService> {
    let options = &stack.config.writeback;
    let writeback = Writeback::new(options, stack.memory().await?, &stack.secrets)
        .context("building the write-back worker")?;
    Ok(WritebackService::new(options, &stack.context, writeback)?)
}
