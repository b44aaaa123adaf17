//! The shared limiter: three clients (as three replicas would) draw from one budget in a
//! real redis-server.

use std::time::Duration;

use chatgptd_model::{
    ChatMessage, ChatRequest, Classify, Error, ErrorKind, LimitOptions, ModelClient, ModelOptions,
};
use chatgptd_testkit::fake_openai::{FakeOpenAi, FakeOptions, max_in_any_window};
use chatgptd_testkit::redis::RedisServer;
use chatgptd_types::Secrets;

use crate::fixture::{KEY, client, options, secrets, statuses};
use crate::limits::{WINDOW, hammer};

fn shared_options(fake: &FakeOpenAi, redis: &RedisServer) -> ModelOptions {
    ModelOptions {
        limit_window: WINDOW,
        shared_limits_redis_url: redis.url(),
        default_limits: LimitOptions {
            requests_per_minute: 20,
            tokens_per_minute: 3000,
            max_concurrency: 4,
            burst_fraction: 0.2,
        },
        default_max_completion_tokens: 64,
        ..options(fake)
    }
}

#[tokio::test]
async fn three_clients_sharing_redis_stay_within_one_limit() {
    let redis = RedisServer::start().await;
    let fake = FakeOpenAi::start_with(FakeOptions {
        requests_per_window: Some(20),
        tokens_per_window: Some(3000),
        window: WINDOW,
        latency: Duration::from_millis(20),
        ..FakeOptions::default()
    })
    .await;
    let options = shared_options(&fake, &redis);
    let clients = [
        client(&options).await,
        client(&options).await,
        client(&options).await,
    ];

    let runs: Vec<_> = clients
        .iter()
        .map(|client| {
            let client = client.clone();
            tokio::spawn(async move {
                hammer(&client, 4, Duration::from_secs(6), |w, c| {
                    format!("key {w} call {c}")
                })
                .await
            })
        })
        .collect();
    let mut succeeded = Vec::new();
    for run in runs {
        succeeded.push(run.await.unwrap());
    }

    let log = fake.requests();
    let (max_requests, max_tokens) = max_in_any_window(&log, WINDOW, |_| true);
    eprintln!(
        "{succeeded:?} calls, at most {max_requests} requests, {max_tokens} tokens in a window"
    );
    assert!(
        max_requests <= 20,
        "{max_requests} requests in one {WINDOW:?} window"
    );
    assert!(
        max_tokens <= 3000,
        "{max_tokens} tokens in one {WINDOW:?} window"
    );
    assert!(
        !statuses(&log).contains(&429),
        "the provider never had to refuse"
    );
    let total: usize = succeeded.iter().sum();
    assert!(
        total >= 40,
        "only {total} calls in 6s at 20 per 2s: {succeeded:?}"
    );
    assert!(
        succeeded.iter().all(|n| *n > 0),
        "every replica got a share: {succeeded:?}"
    );
}

#[tokio::test]
async fn a_redis_outage_makes_calls_unavailable_until_it_is_back() {
    let mut redis = RedisServer::start().await;
    let fake = FakeOpenAi::start().await;
    let client = client(&shared_options(&fake, &redis)).await;
    let request = ChatRequest::new("v1", vec![ChatMessage::user("hello")]);
    client.chat(&request).await.unwrap();

    redis.stop();
    let err = client.chat(&request).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err}");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(
        fake.request_count(),
        1,
        "nothing is sent without the limiter's grant"
    );

    redis.restart().await;
    let reply = chatgptd_testkit::wait_until(
        Duration::from_secs(10),
        "the limiter to reconnect",
        || async { client.chat(&request).await.ok() },
    )
    .await;
    assert_eq!(reply.content, "echo: hello");
}

#[tokio::test]
async fn the_shared_limiter_authenticates_with_the_password_from_the_secrets() {
    let redis = RedisServer::start().await;
    let password = "limits-redis-pw";
    redis.require_password(password).await;
    let fake = FakeOpenAi::start().await;
    let options = ModelOptions {
        shared_limits_redis_password_env: "CHATGPTD_TEST_LIMITS_PASSWORD".to_string(),
        ..shared_options(&fake, &redis)
    };
    let request = ChatRequest::new("v1", vec![ChatMessage::user("hello")]);

    let without = ModelClient::new(&options, None, &secrets()).await.unwrap();
    let err = without.chat(&request).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err}");
    assert_eq!(fake.request_count(), 0, "no grant, no call");

    let secrets = Secrets::from_map([
        ("OPENAI_API_KEY", KEY),
        ("CHATGPTD_TEST_LIMITS_PASSWORD", password),
    ]);
    let with = ModelClient::new(&options, None, &secrets).await.unwrap();
    assert_eq!(with.chat(&request).await.unwrap().content, "echo: hello");
}
