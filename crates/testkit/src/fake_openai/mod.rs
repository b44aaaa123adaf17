//! A fake OpenAI-compatible server on 127.0.0.1 that behaves like the real one where our
//! client cares: bearer auth, chat completions with usage, `x-request-id`, `x-ratelimit-*`
//! headers computed from its own limits over its own sliding window, and 429s (with
//! `retry-after` and `retry-after-ms`) when a request would exceed them. [`HeaderStyle`]
//! makes it speak as a gateway in front of a model does (Azure OpenAI, LiteLLM with a
//! deployment limit or a key limit), headers included.
//!
//! Tests script what the next requests get ([`Behaviour`]: rate limited, quota exhausted,
//! 5xx, slow, malformed JSON, refusal, `length`, `content_filter`, exact content); after the
//! script, requests are answered normally. What the model says in a normal answer can be
//! scripted too ([`Scripted`]: text or tool calls, in order, optionally only for a request
//! whose last user message contains some text); without a script it echoes the last user
//! message, or answers the requested schema. Every request is logged with its arrival instant
//! and body, for assertions on timing, counts and what was sent (tools, tool results).
//!
//! Tokens are counted as OpenAI counts them for rate limits: the prompt (four characters per
//! token plus a few per message) plus the completion budget (`max_completion_tokens` or
//! `max_tokens`). The `reset` headers say when the oldest counted request leaves the window,
//! i.e. when capacity next grows.

mod limits;
mod reply;
mod script;
mod style;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use axum::routing::post;
use serde_json::Value;

pub use limits::{go_duration, max_in_any_window};
use reply::{completion_budget, error, prompt_tokens, rate_limited, reply};
pub use script::{Scripted, ScriptedCall};
pub use style::HeaderStyle;

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// The API key it expects as `Authorization: Bearer <key>`; `None` accepts any request.
    pub api_key: Option<String>,
    /// Requests allowed per `window`; `None` for no limit (and no request headers).
    pub requests_per_window: Option<u32>,
    /// Tokens allowed per `window`; `None` for no limit (and no token headers).
    pub tokens_per_window: Option<u64>,
    /// The sliding window of the limits (a minute for OpenAI).
    pub window: Duration,
    /// Time taken by every reply.
    pub latency: Duration,
    /// Whether requests are logged (benches turn it off to measure the client alone).
    pub log_requests: bool,
    /// Which server's headers the limits are reported in.
    pub header_style: HeaderStyle,
}

impl Default for FakeOptions {
    fn default() -> Self {
        FakeOptions {
            api_key: None,
            requests_per_window: None,
            tokens_per_window: None,
            window: Duration::from_secs(60),
            latency: Duration::ZERO,
            log_requests: true,
            header_style: HeaderStyle::OpenAi,
        }
    }
}

/// What the next request gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// A normal reply.
    Ok,
    /// 429 `rate_limit_exceeded` with `retry-after` (seconds, rounded up) and
    /// `retry-after-ms`.
    RateLimited { retry_after: Duration },
    /// 429 `insufficient_quota`.
    InsufficientQuota,
    /// This status with an OpenAI-style `server_error` body.
    ServerError(u16),
    /// A normal reply after this extra delay.
    Slow(Duration),
    /// 200 with a body that is not JSON.
    MalformedJson,
    /// `message.refusal` set, no content.
    Refusal,
    /// `finish_reason: length`, the content cut off.
    Length,
    /// `finish_reason: content_filter`, no content.
    ContentFilter,
    /// A normal reply with exactly this content.
    Content(String),
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    /// When it arrived.
    pub at: Instant,
    /// The path and query it was sent to.
    pub uri: String,
    /// The parsed body (`Null` when it was not JSON).
    pub body: Value,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The status it got.
    pub status: u16,
    /// What it counted against the token limit (prompt plus completion budget).
    pub tokens: u64,
    /// The scripted behaviour it got (`Ok` when unscripted or refused earlier).
    pub behaviour: Behaviour,
    /// The scripted answer it got, if any.
    pub scripted: Option<Scripted>,
}

impl LoggedRequest {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Shared {
    options: FakeOptions,
    latency: Mutex<Duration>,
    script: Mutex<VecDeque<Behaviour>>,
    answers: Mutex<VecDeque<Scripted>>,
    log: Mutex<Vec<LoggedRequest>>,
    /// Requests counted in the current window: arrival and tokens.
    window: Mutex<VecDeque<(Instant, u64)>>,
    ids: AtomicU64,
}

/// A running fake server; stops when dropped.
pub struct FakeOpenAi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeOpenAi {
    /// A fake with no key, no limits and no latency.
    pub async fn start() -> FakeOpenAi {
        Self::start_with(FakeOptions::default()).await
    }

    /// A fake configured by `options`.
    pub async fn start_with(options: FakeOptions) -> FakeOpenAi {
        let shared = Arc::new(Shared {
            latency: Mutex::new(options.latency),
            options,
            script: Mutex::new(VecDeque::new()),
            answers: Mutex::new(VecDeque::new()),
            log: Mutex::new(Vec::new()),
            window: Mutex::new(VecDeque::new()),
            ids: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/chat/completions", post(chat))
            .fallback(|| async {
                error(
                    StatusCode::NOT_FOUND,
                    "Not found.",
                    "invalid_request_error",
                    None,
                )
            })
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeOpenAi {
            addr,
            shared,
            server,
        }
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Scripts the next request's behaviour (after those already scripted).
    pub fn push(&self, behaviour: Behaviour) {
        lock(&self.shared.script).push_back(behaviour);
    }

    /// Scripts several behaviours, in order.
    pub fn push_all(&self, behaviours: impl IntoIterator<Item = Behaviour>) {
        lock(&self.shared.script).extend(behaviours);
    }

    /// Scripts what the model answers, in order, after the answers already scripted. A
    /// normal reply takes the first entry that fits its request (see
    /// [`Scripted::WhenUserContains`]); a
    /// request no entry fits is answered as without a script.
    pub fn script(&self, answers: impl IntoIterator<Item = Scripted>) {
        lock(&self.shared.answers).extend(answers);
    }

    /// How many scripted answers are still waiting for their request.
    pub fn scripted_left(&self) -> usize {
        lock(&self.shared.answers).len()
    }

    /// Changes the latency of every reply.
    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.shared.latency) = latency;
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        let mut log = lock(&self.shared.log).clone();
        log.sort_by_key(|r| r.at);
        log
    }

    /// How many requests arrived.
    pub fn request_count(&self) -> usize {
        lock(&self.shared.log).len()
    }

    /// Forgets the logged requests (not the rate-limit window).
    pub fn clear_log(&self) {
        lock(&self.shared.log).clear();
    }
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl Shared {
    /// Takes the first scripted answer that fits `request`.
    fn next_answer(&self, request: &Value) -> Option<Scripted> {
        let mut answers = lock(&self.answers);
        let at = answers.iter().position(|answer| answer.applies(request))?;
        answers.remove(at)
    }
}

async fn chat(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = Instant::now();
    let request_id = format!(
        "req_{:016x}",
        shared.ids.fetch_add(1, Ordering::Relaxed) + 1
    );
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let tokens = if parsed.is_null() {
        0
    } else {
        prompt_tokens(&parsed) + completion_budget(&parsed)
    };

    let authorized = match &shared.options.api_key {
        None => true,
        Some(key) => {
            let expected = format!("Bearer {key}");
            headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
        }
    };
    let mut scripted = None;
    let (status, behaviour, mut response, limit_headers) = if !authorized {
        let response = error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided.",
            "invalid_request_error",
            Some("invalid_api_key"),
        );
        (401, Behaviour::Ok, response, Vec::new())
    } else if parsed.is_null() {
        let response = error(
            StatusCode::BAD_REQUEST,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
            None,
        );
        (400, Behaviour::Ok, response, Vec::new())
    } else {
        let limits = shared.admit(now, tokens);
        match limits.refused {
            Some((wait, which)) => {
                let message = format!(
                    "Rate limit reached on {which} per min. Please try again in {}.",
                    go_duration(wait)
                );
                (
                    429,
                    Behaviour::Ok,
                    rate_limited(&message, which, wait),
                    limits.headers,
                )
            }
            None => {
                let behaviour = lock(&shared.script).pop_front().unwrap_or(Behaviour::Ok);
                if matches!(behaviour, Behaviour::Ok | Behaviour::Slow(_)) {
                    scripted = shared.next_answer(&parsed);
                }
                let response = reply(&behaviour, scripted.as_ref(), &parsed, &request_id);
                (
                    response.status().as_u16(),
                    behaviour,
                    response,
                    limits.headers,
                )
            }
        }
    };

    if shared.options.log_requests {
        let headers = headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    value.to_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        lock(&shared.log).push(LoggedRequest {
            at: now,
            uri: uri.to_string(),
            body: parsed,
            headers,
            status,
            tokens,
            behaviour: behaviour.clone(),
            scripted,
        });
    }

    let mut delay = *lock(&shared.latency);
    if let Behaviour::Slow(extra) = behaviour {
        delay += extra;
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let response_headers = response.headers_mut();
    response_headers.insert("x-request-id", header_value(&request_id));
    for (name, value) in limit_headers {
        response_headers.insert(name, header_value(&value));
    }
    shared
        .options
        .header_style
        .restyle(response_headers, shared.options.window);
    response
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}
