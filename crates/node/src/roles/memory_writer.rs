//! The memory writer, into the process's memory backend.

use chatgptd_worker_memory_writer::MemoryWriterService;

use crate::stack::Stack;

pub(super) async fn build(stack: &Stack) -> anyhow::Result<MemoryWriterService> {
    let config = &stack.config;
    Ok(MemoryWriterService::new(
        &config.memory_writer,
        &config.memory,
        &stack.context,
        stack.memory().await?,
    )?)
}
