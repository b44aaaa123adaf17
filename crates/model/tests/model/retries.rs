//! Retries: what is retried, how long between attempts, and what is not retried at all.

use std::time::{Duration, Instant};

use chatgptd_model::{
    ChatMessage, ChatRequest, Classify, Error, ErrorKind, ModelClient, ModelOptions,
};
use chatgptd_testkit::fake_openai::{Behaviour, FakeOpenAi, FakeOptions};

use crate::fixture::{client, options, statuses};

fn request(text: &str) -> ChatRequest {
    ChatRequest::new("v1", vec![ChatMessage::user(text)])
}

#[tokio::test]
async fn rate_limited_retry_waits_for_retry_after() {
    let fake = FakeOpenAi::start().await;
    let client = client(&options(&fake)).await;
    fake.push(Behaviour::RateLimited {
        retry_after: Duration::from_secs(1),
    });

    let reply = client.chat(&request("hello")).await.unwrap();

    assert_eq!(reply.content, "echo: hello");
    let log = fake.requests();
    assert_eq!(statuses(&log), vec![429, 200]);
    let gap = log[1].at.duration_since(log[0].at);
    assert!(
        gap >= Duration::from_secs(1),
        "retried after {gap:?}, retry-after was 1s"
    );
    assert!(gap < Duration::from_secs(3), "retried after {gap:?}");
}

#[tokio::test]
async fn insufficient_quota_is_not_retried() {
    let fake = FakeOpenAi::start().await;
    let client = client(&options(&fake)).await;
    fake.push(Behaviour::InsufficientQuota);

    let err = client.chat(&request("hello")).await.unwrap_err();

    assert!(matches!(err, Error::InsufficientQuota(_)), "{err}");
    assert_eq!(
        err.kind(),
        ErrorKind::Unavailable,
        "a spent quota stalls, it does not dead-letter"
    );
    assert_eq!(err.class(), "model_quota");
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let fake = FakeOpenAi::start().await;
    let client = client(&options(&fake)).await;
    fake.push_all([Behaviour::ServerError(500), Behaviour::ServerError(503)]);

    let reply = client.chat(&request("hello")).await.unwrap();

    assert_eq!(reply.content, "echo: hello");
    assert_eq!(statuses(&fake.requests()), vec![500, 503, 200]);
}

#[tokio::test]
async fn server_errors_exhaust_the_attempts() {
    let fake = FakeOpenAi::start().await;
    let client = client(&options(&fake)).await;
    fake.push_all([
        Behaviour::ServerError(502),
        Behaviour::ServerError(502),
        Behaviour::ServerError(502),
    ]);

    let err = client.chat(&request("hello")).await.unwrap_err();

    assert!(
        matches!(
            err,
            Error::ServerError {
                status: 502,
                attempts: 3,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Retryable);
    assert_eq!(fake.request_count(), 3);
}

#[tokio::test]
async fn slow_replies_time_out_after_every_attempt() {
    let fake = FakeOpenAi::start().await;
    let options = ModelOptions {
        request_timeout: Duration::from_millis(200),
        ..options(&fake)
    };
    let client = client(&options).await;
    fake.push_all(std::iter::repeat_n(
        Behaviour::Slow(Duration::from_secs(2)),
        3,
    ));

    let started = Instant::now();
    let err = client.chat(&request("hello")).await.unwrap_err();

    assert!(matches!(err, Error::Timeout { attempts: 3 }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Retryable);
    assert_eq!(fake.request_count(), 3);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "each attempt gave up at its timeout"
    );
}

#[tokio::test]
async fn a_wrong_key_is_a_permanent_4xx_without_retries() {
    let fake = FakeOpenAi::start_with(FakeOptions {
        api_key: Some("sk-the-right-one".to_string()),
        ..FakeOptions::default()
    })
    .await;
    let client = client(&options(&fake)).await;

    let err = client.chat(&request("hello")).await.unwrap_err();

    assert!(matches!(err, Error::Http4xx { status: 401, .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Permanent);
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_unavailable_after_retries() {
    let fake = FakeOpenAi::start().await;
    let options = ModelOptions {
        base_url: format!("http://127.0.0.1:{}/v1", chatgptd_testkit::free_port()),
        ..options(&fake)
    };
    let client = client(&options).await;

    let err = client.chat(&request("hello")).await.unwrap_err();

    assert!(matches!(err, Error::Unavailable(_)), "{err}");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}

#[tokio::test]
async fn other_keys_keep_flowing_while_one_waits_for_its_retry() {
    let fake = FakeOpenAi::start().await;
    let mut options = options(&fake);
    options.default_limits.max_concurrency = 1;
    let client = client(&options).await;
    fake.push(Behaviour::RateLimited {
        retry_after: Duration::from_secs(2),
    });

    let waiting = {
        let client: ModelClient = client.clone();
        tokio::spawn(async move { client.chat(&request("first key")).await })
    };
    chatgptd_testkit::wait_until(Duration::from_secs(5), "the first call's 429", || async {
        (fake.request_count() == 1).then_some(())
    })
    .await;
    let started = Instant::now();
    let other = client.chat(&request("second key")).await.unwrap();

    assert_eq!(other.content, "echo: second key");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the retry wait held the only concurrency permit: {:?}",
        started.elapsed()
    );
    assert_eq!(waiting.await.unwrap().unwrap().content, "echo: first key");
}
