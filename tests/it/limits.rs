//! Waiting is never a failure: a backlog behind a rate limit, ours or a gateway's, is
//! enriched in full, with no dead letter, however short `process_timeout` is next to the wait.
//!
//! The enrichment worker runs in a node (`[Role::Enrich]`) on the mock cluster against the fake
//! model. Each test queues more tickets than the limit lets through within one
//! `process_timeout`, with two attempts per record: counting the wait as work, or a 429 as a
//! failed attempt, dead-letters tickets.

use std::time::Duration;

use chatgptd_model::{LimitOptions, ModelOptions, ProviderKind, RetryOptions};
use chatgptd_node::Role;
use chatgptd_runtime::ConsumerOptions;
use chatgptd_testkit::fake_openai::{FakeOpenAi, FakeOptions, HeaderStyle};
use chatgptd_testkit::kafka::{consume, produce, producer};
use chatgptd_types::avro::Codec;
use chatgptd_types::topics::names;

use crate::support::node::{self, NO_SECRETS, Node};
use crate::support::ticket;

/// Tickets in the backlog.
const TICKETS: usize = 30;
/// The limit's window, shortened from a minute so that the backlog takes seconds.
const WINDOW: Duration = Duration::from_secs(1);
/// Requests per window: the backlog needs three windows.
const LIMIT: u32 = 10;

/// Runs the backlog through a node running enrich with `limits` on our side, against `fake`;
/// returns how many tickets were enriched and how many dead-lettered.
async fn backlog(fake: &FakeOpenAi, limits: LimitOptions) -> (usize, usize) {
    let (kafka, dir) = (node::kafka(), tempfile::tempdir().unwrap());
    let brokers = kafka.brokers();
    let mut config = node::config(&kafka, dir.path(), "limits");
    config.model = ModelOptions {
        provider: ProviderKind::OpenAi,
        base_url: fake.base_url(),
        limit_window: WINDOW,
        default_limits: limits,
        retry: RetryOptions {
            max_attempts: 2,
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            retry_after_cap: Duration::from_secs(5),
        },
        cache_ttl: Duration::ZERO,
        ..ModelOptions::default()
    };
    config.enrich.consumer = ConsumerOptions {
        max_attempts: 2,
        // Far below the seconds the last tickets wait for their turn.
        process_timeout: Duration::from_millis(700),
        drain_timeout: Duration::from_secs(2),
        ..config.enrich.consumer
    };
    let node = Node::start(config, NO_SECRETS, &[Role::Enrich]).await;

    // One partition: the whole backlog is in flight on one member at once.
    let producer = producer(&brokers);
    let codec = Codec::builtin();
    for i in 0..TICKETS {
        let payload = codec.encode(&ticket(i)).unwrap();
        let key = format!("PROJ-{i}");
        produce(
            &producer,
            names::TICKET_EVENTS,
            Some(0),
            Some(key.as_bytes()),
            &payload,
            &[],
        )
        .await;
    }

    let enriched = tokio::task::spawn_blocking({
        let brokers = brokers.clone();
        move || {
            consume(
                &brokers,
                names::TICKETS_ENRICHED,
                TICKETS,
                Duration::from_secs(60),
            )
        }
    })
    .await
    .unwrap();
    let dead = tokio::task::spawn_blocking(move || {
        consume(&brokers, names::DEAD_LETTER, 1, Duration::from_secs(2))
    })
    .await
    .unwrap();
    node.stop().await.unwrap();
    (enriched.len(), dead.len())
}

fn unlimited() -> LimitOptions {
    LimitOptions {
        requests_per_minute: 0,
        tokens_per_minute: 0,
        max_concurrency: 0,
        ..LimitOptions::default()
    }
}

#[tokio::test]
async fn a_backlog_behind_our_own_limit_waits_instead_of_timing_out() {
    let fake = FakeOpenAi::start().await;
    let ours = LimitOptions {
        requests_per_minute: LIMIT,
        burst_fraction: 0.1,
        ..unlimited()
    };

    let (enriched, dead) = backlog(&fake, ours).await;

    assert_eq!(dead, 0, "a wait for our own limiter dead-lettered tickets");
    assert_eq!(enriched, TICKETS);
}

/// A gateway limits us; we are configured with no limit at all. Every 429 is waited out,
/// and a limit the gateway advertises is adopted, so that the backlog costs fewer than
/// `most_refused` 429s.
async fn behind_a_gateway(style: HeaderStyle, most_refused: usize) {
    let fake = FakeOpenAi::start_with(FakeOptions {
        requests_per_window: Some(LIMIT),
        window: WINDOW,
        header_style: style,
        ..FakeOptions::default()
    })
    .await;

    let (enriched, dead) = backlog(&fake, unlimited()).await;

    assert_eq!(
        dead, 0,
        "{style:?}: rate-limited tickets were dead-lettered"
    );
    assert_eq!(enriched, TICKETS, "{style:?}");
    let refused = fake.requests().iter().filter(|r| r.status == 429).count();
    assert!(
        refused < most_refused,
        "{style:?}: {refused} requests got a 429 for {TICKETS} tickets"
    );
}

#[tokio::test]
async fn behind_openai_limits() {
    behind_a_gateway(HeaderStyle::OpenAi, TICKETS).await;
}

#[tokio::test]
async fn behind_azure_limits() {
    // Azure says what remains, never the limit: nothing to adopt, but a 429 that says none
    // remains pauses every caller for its retry-after.
    behind_a_gateway(HeaderStyle::Azure, 2 * TICKETS).await;
}

#[tokio::test]
async fn behind_a_litellm_deployment_limit() {
    behind_a_gateway(HeaderStyle::LiteLlmDeployment, TICKETS).await;
}

#[tokio::test]
async fn behind_a_litellm_key_limit() {
    behind_a_gateway(HeaderStyle::LiteLlmKey, TICKETS).await;
}
