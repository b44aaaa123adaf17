//! The test harness: real servers on 127.0.0.1, started per test, stopped on drop.
//!
//! - [`kafka`]: an in-process mock cluster and helpers to produce, consume and read committed
//!   offsets through rdkafka.
//! - [`tansu`]: a real Kafka-protocol broker (tansu, as `chatgptd up` embeds it) on a free port.
//! - [`redis`]: a real `redis-server` on a free port, which can be stopped and restarted.
//! - [`fake_openai`]: an OpenAI-compatible server that behaves like the real one, with
//!   scripted failures and answers (text or tool calls).
//! - [`fake_trackers`]: fake Jira, ServiceNow and GitHub REST APIs.
//! - [`runtime`]: a processor made of a closure, the tests' consumer options, a runtime
//!   spawned in the test, and the process's metrics.
//! - [`records`]: records for tests that need many distinct ones.
//! - [`sse`]: a client of a Server-Sent Events stream.
//! - [`wait_until`], [`free_port`], [`unique`]: small things every test needs.

pub mod fake_openai;
pub mod fake_trackers;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod process;
pub mod records;
pub mod redis;
#[cfg(feature = "kafka")]
pub mod runtime;
pub mod sse;
#[cfg(feature = "tansu")]
pub mod tansu;
pub mod webhooks;

use std::future::Future;
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released: good enough for a test server).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// The value of one sample (`name{labels}`, exactly as rendered) in a Prometheus text
/// rendering; 0 when it is not there (a counter never incremented).
pub fn prometheus_sample(rendered: &str, sample: &str) -> f64 {
    rendered
        .lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// A name no other test uses: `prefix-<random>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

/// Polls `check` until it returns `Some`, or panics after `timeout` with `what`.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if started.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An HTTP client for tests (reqwest needs a TLS crypto provider installed once, even for
/// plain-HTTP loopback calls).
pub fn http_client() -> reqwest::Client {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// An HTTP client for tests that sends `token` as its API token (`Authorization: Bearer`).
pub fn http_client_with_token(token: &str) -> reqwest::Client {
    let _ = http_client();
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .expect("a token is a header value");
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()
        .expect("http client")
}

/// Logs to the test output (captured unless the test fails). Call at the start of a test.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // tansu logs every decoded field of every request at info.
                .unwrap_or_else(|_| "info,librdkafka=warn,rdkafka=warn,tansu=warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// The `Authorization` value of HTTP basic auth (`Basic base64(user:secret)`), to assert on
/// what a client sent.
pub fn basic_auth(user: &str, secret: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
    format!("Basic {encoded}")
}
