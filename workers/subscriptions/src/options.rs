use std::time::Duration;

use chatgptd_runtime::ConsumerOptions;
use chatgptd_types::backoff::Backoff;
use chatgptd_types::topics::names;
use serde::{Deserialize, Serialize};

/// How the subscriptions worker stores subscriptions and delivers to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubscriptionsOptions {
    /// The compacted topic the subscriptions live on.
    pub subscriptions_topic: String,
    /// The topics a subscription may name; the worker consumes all of them.
    pub topics: Vec<String>,
    /// How long one request to a subscriber may take.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long a record is retried for one subscription before it goes to the dead-letter
    /// topic with its reason; the subscription's later records wait behind it until then.
    #[serde(with = "humantime_serde")]
    pub dead_letter_after: Duration,
    /// Spacing of retries; a subscriber's `Retry-After` is honoured up to `backoff.max`.
    pub backoff: Backoff,
    /// Deliveries kept per subscription for `GET /subscriptions/{id}`.
    pub delivery_log: usize,
    /// Consumer settings (group `chatgptd-subscriptions` by default).
    pub consumer: ConsumerOptions,
}

impl Default for SubscriptionsOptions {
    fn default() -> Self {
        SubscriptionsOptions {
            subscriptions_topic: names::WEBHOOK_SUBSCRIPTIONS.to_string(),
            topics: vec![
                names::TICKETS_ENRICHED.to_string(),
                names::AGENT_MESSAGES.to_string(),
                names::WORKFLOW_STEPS.to_string(),
                names::AGENT_AUDIT.to_string(),
                names::AGENT_APPROVALS.to_string(),
                names::AGENT_ESCALATIONS.to_string(),
                names::TICKET_ACTIONS.to_string(),
            ],
            request_timeout: Duration::from_secs(10),
            dead_letter_after: Duration::from_secs(3600),
            backoff: Backoff {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(60),
            },
            delivery_log: 50,
            consumer: ConsumerOptions::default(),
        }
    }
}
