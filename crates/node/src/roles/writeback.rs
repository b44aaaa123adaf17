//! The write-back worker: tracker credentials from the process's secrets. The role runs two
//! services with those credentials: the write-back of enriched tickets, and agents' ticket
//! actions. One role rather than two keeps the credentials, allow-lists and rate limits of
//! the trackers configured in one section and deployed in one place, and every deployment
//! that writes back can also act: an agent's action never waits on a role nobody started.

use anyhow::Context;
use chatgptd_worker_writeback::{TicketActions, TicketActionsService, Writeback, WritebackService};

use crate::stack::Stack;

pub(super) async fn build(
    stack: &Stack,
) -> anyhow::Result<(WritebackService, TicketActionsService)> {
    let options = &stack.config.writeback;
    let memory = stack.memory().await?;
    let writeback = Writeback::new(options, memory.clone(), &stack.secrets)
        .context("building the write-back worker")?;
    let actions = TicketActions::new(options, memory, &stack.secrets)
        .context("building the ticket actions")?;
    Ok((
        WritebackService::new(options, &stack.context, writeback)?,
        TicketActionsService::new(options, &stack.context, actions)?,
    ))
}
