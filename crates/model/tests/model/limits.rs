//! The in-process limiter: no sliding window ever sees more than the limits, and the client
//! adapts to what the provider's headers say.

use std::time::{Duration, Instant};

use chatgptd_model::{ChatMessage, ChatRequest, LimitOptions, ModelClient, ModelOptions};
use chatgptd_testkit::fake_openai::{Behaviour, FakeOpenAi, FakeOptions, max_in_any_window};

use crate::fixture::{client, options, statuses};

/// The limits' window, short so a test covers several.
pub const WINDOW: Duration = Duration::from_secs(2);

/// Runs `workers` concurrent loops of calls through `client` for `run`, each call with a
/// message built from the worker and call number. Returns how many calls succeeded.
pub async fn hammer(
    client: &ModelClient,
    workers: usize,
    run: Duration,
    message: fn(usize, usize) -> String,
) -> usize {
    let deadline = Instant::now() + run;
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut succeeded = 0;
            let mut call = 0;
            while Instant::now() < deadline {
                call += 1;
                let mut request =
                    ChatRequest::new("v1", vec![ChatMessage::user(message(worker, call))]);
                request.cache = false;
                if client.chat(&request).await.is_ok() {
                    succeeded += 1;
                }
            }
            succeeded
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total
}

#[tokio::test]
async fn requests_never_exceed_the_limit_in_any_sliding_window() {
    let fake = FakeOpenAi::start_with(FakeOptions {
        requests_per_window: Some(20),
        window: WINDOW,
        latency: Duration::from_millis(20),
        ..FakeOptions::default()
    })
    .await;
    let options = ModelOptions {
        limit_window: WINDOW,
        default_limits: LimitOptions {
            requests_per_minute: 20,
            tokens_per_minute: 0,
            max_concurrency: 8,
            burst_fraction: 0.2,
        },
        ..options(&fake)
    };
    let client = client(&options).await;

    let succeeded = hammer(&client, 8, Duration::from_secs(6), |w, c| {
        format!("key {w} call {c}")
    })
    .await;

    let log = fake.requests();
    let (max_requests, _) = max_in_any_window(&log, WINDOW, |_| true);
    eprintln!("{succeeded} calls, at most {max_requests} requests in a window");
    assert!(
        max_requests <= 20,
        "{max_requests} requests in one {WINDOW:?} window"
    );
    assert!(
        !statuses(&log).contains(&429),
        "the provider never had to refuse"
    );
    // Three windows' worth, less the request cell kept as headroom.
    assert!(succeeded >= 40, "only {succeeded} calls in 6s at 20 per 2s");
}

/// Failed attempts count against the limit too: every retry goes back through the limiter,
/// so a burst of 500s and their retries never exceeds the requests a window allows.
#[tokio::test]
async fn failed_attempts_and_their_retries_count_against_the_limit() {
    let fake = FakeOpenAi::start_with(FakeOptions {
        requests_per_window: Some(10),
        window: WINDOW,
        latency: Duration::from_millis(10),
        ..FakeOptions::default()
    })
    .await;
    fake.push_all(std::iter::repeat_n(Behaviour::ServerError(500), 25));
    let options = ModelOptions {
        limit_window: WINDOW,
        default_limits: LimitOptions {
            requests_per_minute: 10,
            tokens_per_minute: 0,
            max_concurrency: 8,
            burst_fraction: 0.2,
        },
        ..options(&fake)
    };
    let client = client(&options).await;

    let succeeded = hammer(&client, 6, Duration::from_secs(6), |w, c| {
        format!("key {w} call {c}")
    })
    .await;

    let log = fake.requests();
    let failed = statuses(&log).iter().filter(|s| **s == 500).count();
    let (max_requests, _) = max_in_any_window(&log, WINDOW, |_| true);
    eprintln!("{succeeded} calls, {failed} failed attempts, at most {max_requests} in a window");
    assert_eq!(failed, 25, "every scripted failure was an attempt");
    assert!(
        max_requests <= 10,
        "{max_requests} attempts in one {WINDOW:?} window"
    );
    assert!(
        !statuses(&log).contains(&429),
        "the provider never had to refuse"
    );
}

#[tokio::test]
async fn tokens_never_exceed_the_limit_in_any_sliding_window() {
    let fake = FakeOpenAi::start_with(FakeOptions {
        tokens_per_window: Some(2000),
        window: WINDOW,
        latency: Duration::from_millis(10),
        ..FakeOptions::default()
    })
    .await;
    let options = ModelOptions {
        limit_window: WINDOW,
        default_max_completion_tokens: 48,
        default_limits: LimitOptions {
            requests_per_minute: 0,
            tokens_per_minute: 2000,
            max_concurrency: 8,
            burst_fraction: 0.02,
        },
        ..options(&fake)
    };
    let client = client(&options).await;

    // Prompts of 10 to 60 characters: 48 to 70 tokens a call with the completion budget.
    let succeeded = hammer(&client, 8, Duration::from_secs(5), |w, c| {
        "x".repeat(10 + (w * 7 + c) % 51)
    })
    .await;

    let log = fake.requests();
    let (_, max_tokens) = max_in_any_window(&log, WINDOW, |_| true);
    eprintln!("{succeeded} calls, at most {max_tokens} tokens in a window");
    assert!(
        max_tokens <= 2000,
        "{max_tokens} tokens in one {WINDOW:?} window"
    );
    assert!(
        !statuses(&log).contains(&429),
        "the provider never had to refuse"
    );
    assert!(
        succeeded >= 60,
        "only {succeeded} calls in 5s at 2000 tokens per 2s"
    );
}

#[tokio::test]
async fn the_client_pauses_when_the_provider_says_a_limit_is_spent() {
    // The provider allows 5 requests a second; the client is configured with no limit.
    let fake = FakeOpenAi::start_with(FakeOptions {
        requests_per_window: Some(5),
        window: Duration::from_secs(1),
        ..FakeOptions::default()
    })
    .await;
    let mut options = options(&fake);
    options.default_limits.max_concurrency = 1;
    // An advertised limit counts per the limiter's window, a minute for real providers.
    options.limit_window = Duration::from_secs(1);
    let client = client(&options).await;

    let started = Instant::now();
    for call in 0..12 {
        let request = ChatRequest::new("v1", vec![ChatMessage::user(format!("call {call}"))]);
        client.chat(&request).await.unwrap();
    }

    let log = fake.requests();
    assert_eq!(
        statuses(&log),
        vec![200; 12],
        "x-ratelimit-remaining-requests: 0 paused the client"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "12 calls at 5 per second"
    );
}
