//! The subscriptions worker: webhooks out, on the process's Kafka.

use chatgptd_worker_subscriptions::SubscriptionsService;

use crate::stack::Stack;

pub(super) fn build(stack: &Stack) -> anyhow::Result<SubscriptionsService> {
    Ok(SubscriptionsService::new(
        &stack.config.subscriptions,
        &stack.context,
    )?)
}
