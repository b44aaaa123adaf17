//! A fake OpenAI-compatible server on 127.0.0.1 that behaves like the real one where our
//! client cares: bearer auth, chat completions with usage, `x-request-id`, `x-ratelimit-*`
//! headers computed from its own limits over its own sliding window, and 429s (with
//! `retry-after` and `retry-after-ms`) when a request would exceed them. [`HeaderStyle`]
//! makes it speak as a gateway in front of a model does (Azure OpenAI, LiteLLM with a
//! deployment limit or a key limit), headers included.
//!
//! Tests script what the next requests get ([`Behaviour`]: rate limited, quota exhausted,
//! 5xx, slow, malformed JSON, refusal, `length`, `content_filter`, exact content); after the
//! script, requests are answered normally. Every request is logged with its arrival instant
//! and body, for assertions on timing and counts.
//!
//! Tokens are counted as OpenAI counts them for rate limits: the prompt (four characters per
//! token plus a few per message) plus the completion budget (`max_completion_tokens` or
//! `max_tokens`). The `reset` headers say when the oldest counted request leaves the window,
//! i.e. when capacity next grows.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// The completion budget assumed when a request sets none.
const DEFAULT_COMPLETION_BUDGET: u64 = 4096;

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

/// The rate-limit headers of a real server or gateway, as documented and as seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HeaderStyle {
    /// OpenAI: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`; a 429 carries
    /// `retry-after` and `retry-after-ms`.
    #[default]
    OpenAi,
    /// Azure OpenAI: `x-ratelimit-remaining-*` only (no limit, no reset); a 429 carries
    /// `retry-after-ms` and `retry-after`.
    Azure,
    /// LiteLLM whose deployment limit is hit: 200s carry `x-ratelimit-limit-requests` and
    /// `x-ratelimit-remaining-requests` without a reset; a 429 carries only the provider's
    /// `llm_provider-retry-after`, no plain `retry-after`.
    LiteLlmDeployment,
    /// LiteLLM with a key limit: `x-ratelimit-api_key-{limit,remaining}-*`; a 429 says
    /// `retry-after` with the whole window in seconds.
    LiteLlmKey,
}

impl HeaderStyle {
    /// Rewrites a reply's headers, written OpenAI's way, in this style.
    fn restyle(self, headers: &mut HeaderMap, window: Duration) {
        let take = |headers: &mut HeaderMap, name: &str| headers.remove(name);
        let limit_names = [
            "x-ratelimit-limit-requests",
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-remaining-tokens",
        ];
        let resets = ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"];
        match self {
            HeaderStyle::OpenAi => {}
            HeaderStyle::Azure => {
                for name in resets.iter().chain(&limit_names[..2]) {
                    take(headers, name);
                }
            }
            HeaderStyle::LiteLlmDeployment => {
                for name in resets {
                    take(headers, name);
                }
                take(headers, "retry-after-ms");
                if let Some(value) = take(headers, "retry-after") {
                    headers.insert("llm_provider-retry-after", value);
                }
            }
            HeaderStyle::LiteLlmKey => {
                for name in resets {
                    take(headers, name);
                }
                for name in limit_names {
                    if let Some(value) = take(headers, name) {
                        let keyed = name.replace("x-ratelimit-", "x-ratelimit-api_key-");
                        headers.insert(
                            axum::http::HeaderName::from_bytes(keyed.as_bytes())
                                .expect("header name"),
                            value,
                        );
                    }
                }
                take(headers, "retry-after-ms");
                if headers.remove("retry-after").is_some() {
                    let whole = window.as_secs_f64().ceil().to_string();
                    headers.insert("retry-after", header_value(&whole));
                }
            }
        }
    }
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

/// The most requests and tokens any sliding `window` saw, over `log` entries that `count`.
pub fn max_in_any_window(
    log: &[LoggedRequest],
    window: Duration,
    count: impl Fn(&LoggedRequest) -> bool,
) -> (usize, u64) {
    let mut entries: Vec<(Instant, u64)> = log
        .iter()
        .filter(|r| count(r))
        .map(|r| (r.at, r.tokens))
        .collect();
    entries.sort_by_key(|(at, _)| *at);
    let (mut max_requests, mut max_tokens) = (0, 0);
    for (i, (start, _)) in entries.iter().enumerate() {
        let inside = entries[i..]
            .iter()
            .take_while(|(at, _)| *at < *start + window);
        let (requests, tokens) = inside.fold((0, 0), |(n, t), (_, tokens)| (n + 1, t + tokens));
        max_requests = max_requests.max(requests);
        max_tokens = max_tokens.max(tokens);
    }
    (max_requests, max_tokens)
}

struct Shared {
    options: FakeOptions,
    latency: Mutex<Duration>,
    script: Mutex<VecDeque<Behaviour>>,
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

/// What the limits say about one request.
struct Limits {
    headers: Vec<(&'static str, String)>,
    /// `Some(wait, which)` when the request is refused.
    refused: Option<(Duration, &'static str)>,
}

impl Shared {
    /// Counts a request of `tokens` against the window, unless it would exceed a limit.
    fn admit(&self, now: Instant, tokens: u64) -> Limits {
        let options = &self.options;
        let mut window = lock(&self.window);
        while window
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= options.window)
        {
            window.pop_front();
        }
        let used_requests = window.len() as u64;
        let used_tokens: u64 = window.iter().map(|(_, t)| t).sum();
        // When the window will have room for `needed` more of something.
        let room_after = |needed: u64, tokens_kind: bool, limit: u64| -> Duration {
            let mut used = if tokens_kind {
                used_tokens
            } else {
                used_requests
            };
            for (at, t) in window.iter() {
                if used + needed <= limit {
                    break;
                }
                used -= if tokens_kind { *t } else { 1 };
                if used + needed <= limit {
                    return (*at + options.window).saturating_duration_since(now);
                }
            }
            Duration::ZERO
        };

        let mut refused = None;
        if let Some(limit) = options.requests_per_window.map(u64::from)
            && used_requests + 1 > limit
        {
            refused = Some((room_after(1, false, limit), "requests"));
        }
        if let Some(limit) = options.tokens_per_window
            && refused.is_none()
            && used_tokens + tokens > limit
        {
            let wait = if tokens > limit {
                options.window
            } else {
                room_after(tokens, true, limit)
            };
            refused = Some((wait, "tokens"));
        }
        let (requests_now, tokens_now) = if refused.is_none() {
            window.push_back((now, tokens));
            (used_requests + 1, used_tokens + tokens)
        } else {
            (used_requests, used_tokens)
        };
        // When the oldest counted request leaves the window, i.e. when capacity next grows.
        let reset = window.front().map_or(Duration::ZERO, |(at, _)| {
            (*at + options.window).saturating_duration_since(now)
        });
        let mut headers = Vec::new();
        if let Some(limit) = options.requests_per_window.map(u64::from) {
            headers.push(("x-ratelimit-limit-requests", limit.to_string()));
            headers.push((
                "x-ratelimit-remaining-requests",
                limit.saturating_sub(requests_now).to_string(),
            ));
            headers.push(("x-ratelimit-reset-requests", go_duration(reset)));
        }
        if let Some(limit) = options.tokens_per_window {
            headers.push(("x-ratelimit-limit-tokens", limit.to_string()));
            headers.push((
                "x-ratelimit-remaining-tokens",
                limit.saturating_sub(tokens_now).to_string(),
            ));
            headers.push(("x-ratelimit-reset-tokens", go_duration(reset)));
        }
        Limits { headers, refused }
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
                let response = reply(&behaviour, &parsed, &request_id);
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

/// The reply `behaviour` gives to `request`.
fn reply(behaviour: &Behaviour, request: &Value, request_id: &str) -> Response {
    match behaviour {
        Behaviour::RateLimited { retry_after } => rate_limited(
            "Rate limit reached on requests per min.",
            "requests",
            *retry_after,
        ),
        Behaviour::InsufficientQuota => error(
            StatusCode::TOO_MANY_REQUESTS,
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            Some("insufficient_quota"),
        ),
        Behaviour::ServerError(status) => error(
            StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
        Behaviour::MalformedJson => (
            StatusCode::OK,
            [("content-type", "application/json")],
            "{\"id\": \"chatcmpl-broken\", \"choices\": [",
        )
            .into_response(),
        Behaviour::Refusal => completion(
            request,
            request_id,
            None,
            Some("I'm sorry, but I can't help with that."),
            "stop",
        ),
        Behaviour::ContentFilter => completion(request, request_id, None, None, "content_filter"),
        Behaviour::Length => {
            let budget = completion_budget(request) as usize;
            let cut: String = default_content(request)
                .chars()
                .take(budget.max(1))
                .collect();
            completion(request, request_id, Some(&cut), None, "length")
        }
        Behaviour::Content(content) => completion(request, request_id, Some(content), None, "stop"),
        Behaviour::Ok | Behaviour::Slow(_) => completion(
            request,
            request_id,
            Some(&default_content(request)),
            None,
            "stop",
        ),
    }
}

/// A chat completion body.
fn completion(
    request: &Value,
    request_id: &str,
    content: Option<&str>,
    refusal: Option<&str>,
    finish_reason: &str,
) -> Response {
    let prompt = prompt_tokens(request);
    let budget = completion_budget(request);
    let completion = if finish_reason == "length" {
        budget
    } else {
        content
            .map_or(0, |c| (c.chars().count() as u64).div_ceil(4))
            .min(budget)
    };
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let body = json!({
        "id": format!("chatcmpl-{}", request_id.trim_start_matches("req_")),
        "object": "chat.completion",
        "created": created,
        "model": request.get("model").and_then(Value::as_str).unwrap_or("fake-model"),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": refusal},
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
        "system_fingerprint": "fp_fake",
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// An OpenAI-style error body.
fn error(status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    (status, axum::Json(body)).into_response()
}

/// A 429 `rate_limit_exceeded` on limit `kind` (`requests`, `tokens`) asking to wait `wait`.
fn rate_limited(message: &str, kind: &str, wait: Duration) -> Response {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        message,
        kind,
        Some("rate_limit_exceeded"),
    );
    let headers = response.headers_mut();
    headers.insert(
        "retry-after",
        header_value(&wait.as_secs_f64().ceil().to_string()),
    );
    headers.insert(
        "retry-after-ms",
        header_value(&wait.as_millis().to_string()),
    );
    response
}

/// Prompt tokens as OpenAI-compatible servers roughly count them.
fn prompt_tokens(request: &Value) -> u64 {
    let messages = request.get("messages").and_then(Value::as_array);
    let text: u64 = messages
        .into_iter()
        .flatten()
        .map(|m| {
            let content = m.get("content").and_then(Value::as_str).unwrap_or("");
            (content.chars().count() as u64).div_ceil(4) + 4
        })
        .sum();
    text + 3
}

/// The request's completion budget.
fn completion_budget(request: &Value) -> u64 {
    request
        .get("max_completion_tokens")
        .or_else(|| request.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_COMPLETION_BUDGET)
}

/// JSON valid for the requested schema, or an echo of the last user message.
fn default_content(request: &Value) -> String {
    let schema = request.pointer("/response_format/json_schema/schema");
    if let Some(schema) = schema {
        return example(schema, schema, 0).to_string();
    }
    let last_user = request
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|messages| {
            messages
                .iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .and_then(|m| m.get("content").and_then(Value::as_str))
        .unwrap_or("");
    format!("echo: {last_user}")
}

/// A value valid for `schema`: the first enum value, every property, minimal arrays.
fn example(schema: &Value, root: &Value, depth: usize) -> Value {
    if depth > 16 {
        return Value::Null;
    }
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let target = reference.strip_prefix('#').and_then(|p| root.pointer(p));
        return target.map_or(Value::Null, |t| example(t, root, depth + 1));
    }
    if let Some(constant) = schema.get("const") {
        return constant.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|v| v.first())
    {
        return first.clone();
    }
    if let Some(branches) = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
    {
        let branch = branches
            .iter()
            .find(|b| b.get("type").and_then(Value::as_str) != Some("null"))
            .or(branches.first());
        return branch.map_or(Value::Null, |b| example(b, root, depth + 1));
    }
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    let number = |key: &str| schema.get(key).and_then(Value::as_f64);
    match kind {
        "object" => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let object = properties
                .into_iter()
                .flatten()
                .map(|(name, s)| (name.clone(), example(s, root, depth + 1)))
                .collect();
            Value::Object(object)
        }
        "array" => {
            let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
            let items = schema.get("items").unwrap_or(&Value::Null);
            Value::Array((0..min).map(|_| example(items, root, depth + 1)).collect())
        }
        "integer" => {
            let low = number("minimum")
                .or(number("exclusiveMinimum").map(|m| m + 1.0))
                .unwrap_or(0.0);
            json!(low.ceil() as i64)
        }
        "number" => {
            let low = number("minimum").unwrap_or(0.0);
            let high = number("maximum").unwrap_or(low + 1.0);
            json!((low + high) / 2.0)
        }
        "boolean" => Value::Bool(false),
        "null" => Value::Null,
        _ => {
            let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
            let max = schema
                .get("maxLength")
                .and_then(Value::as_u64)
                .map_or(usize::MAX, |m| m as usize);
            let mut text = "example".to_string();
            while text.len() < min {
                text.push('x');
            }
            Value::String(text.chars().take(max).collect())
        }
    }
}

/// A duration as Go prints it, the way OpenAI's reset headers look: `12ms`, `1s`, `6m0s`.
/// Rounded up to the millisecond, so a client that waits this long is never early.
pub fn go_duration(duration: Duration) -> String {
    let millis = duration.as_nanos().div_ceil(1_000_000);
    let duration = Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX));
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let total = duration.as_secs_f64();
    let hours = (total / 3600.0).floor() as u64;
    let minutes = ((total - hours as f64 * 3600.0) / 60.0).floor() as u64;
    let seconds = total - hours as f64 * 3600.0 - minutes as f64 * 60.0;
    let seconds = format!("{:.3}", seconds);
    let seconds = seconds.trim_end_matches('0').trim_end_matches('.');
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_look_like_openai_headers() {
        assert_eq!(go_duration(Duration::from_millis(12)), "12ms");
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_secs(360)), "6m0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
    }

    #[test]
    fn examples_follow_the_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "category": {"type": "string", "enum": ["bug", "billing"]},
                "labels": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "count": {"type": "integer", "exclusiveMinimum": 0}
            }
        });
        let value = example(&schema, &schema, 0);
        assert_eq!(
            value,
            json!({"category": "bug", "labels": ["example"], "confidence": 0.5, "count": 1})
        );
    }

    #[test]
    fn windows_are_counted_from_every_start() {
        let at = Instant::now();
        let entry = |ms: u64, tokens: u64| LoggedRequest {
            at: at + Duration::from_millis(ms),
            uri: String::new(),
            body: Value::Null,
            headers: Vec::new(),
            status: 200,
            tokens,
            behaviour: Behaviour::Ok,
        };
        let log = vec![
            entry(0, 10),
            entry(500, 10),
            entry(999, 10),
            entry(1000, 50),
        ];
        assert_eq!(
            max_in_any_window(&log, Duration::from_secs(1), |_| true),
            (3, 70)
        );
    }
}
