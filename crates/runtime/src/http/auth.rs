//! Who may call what: API tokens ([`super::token`]) checked once for every route of a
//! process.
//!
//! A request presents `Authorization: Bearer <secret>`; its digest is compared with every
//! token's in constant time. Each route declares the scope it
//! needs ([`super::routes::Routes`]); a route that declares nothing needs `admin`, so a new
//! route is never open by accident. Paths listed as public (`http.public`) and routes
//! declared [`Access::Public`] (the webhooks, which check signatures) need no token.
//!
//! A browser presents the same secret in the `chatgptd_session` cookie (set by the
//! dashboard's `POST /session`), since `EventSource` cannot send headers. A cookie is sent by
//! the browser on its own, so an unsafe method authenticated by it must also carry
//! `x-chatgptd-csrf`, a header another site's form or plain fetch cannot add.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::error_response;
use super::routes::{Access, Declared};
use super::token::{AuthMode, Scope, Token, digest};
use crate::telemetry::ApiRequest;

/// Who made a request: the name of the token it presented (`anonymous` when the API checks
/// no tokens). Handlers take it as an argument to record who did something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    name: Arc<str>,
    /// The token's scopes; `None` when the API checks no tokens (everything is allowed).
    scopes: Option<Arc<[Scope]>>,
}

impl Caller {
    /// The caller of an API that checks no tokens (`http.auth = "none"`).
    pub const ANONYMOUS: &'static str = "anonymous";

    /// The token's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the caller's token holds `scope` (or `admin`): for a route that serves
    /// operations of several scopes (`/mcp`'s tools) and checks each one itself.
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes
            .as_ref()
            .is_none_or(|scopes| scopes.contains(&Scope::Admin) || scopes.contains(&scope))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Only a route served without the check (a public one) has no caller.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| unauthorized("missing_token"))
    }
}

/// The check every request of a process goes through.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    mode: AuthMode,
    tokens: Vec<Token>,
    public: HashSet<String>,
    declared: HashMap<(Method, String), Access>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("mode", &self.inner.mode)
            .field("tokens", &self.inner.tokens)
            .field("public", &self.inner.public)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Checks `tokens` (or nothing, with [`AuthMode::None`]) against what the routes
    /// `declared`; the paths in `public` need no token.
    pub fn new(
        mode: AuthMode,
        tokens: Vec<Token>,
        public: impl IntoIterator<Item = String>,
        declared: &[Declared],
    ) -> Auth {
        let declared = declared
            .iter()
            .map(|d| ((d.method.clone(), d.path.clone()), d.access))
            .collect();
        Auth {
            inner: Arc::new(Inner {
                mode,
                tokens,
                public: public.into_iter().collect(),
                declared,
            }),
        }
    }

    /// What a request for `method` on the route `matched` needs: `None` for a path no route
    /// matches (any valid token, then the 404). Undeclared routes need `admin`.
    fn needs(&self, method: &Method, matched: Option<&str>) -> Option<Access> {
        let matched = matched?;
        let method = if method == Method::HEAD {
            Method::GET
        } else {
            method.clone()
        };
        if let Some(access) = self.inner.declared.get(&(method, matched.to_string())) {
            return Some(*access);
        }
        // Another method on a public route (a GET on a webhook) gets that route's own answer.
        let public = self
            .inner
            .declared
            .iter()
            .any(|((_, path), access)| path == matched && *access == Access::Public);
        Some(if public {
            Access::Public
        } else {
            Access::Scope(Scope::Admin)
        })
    }

    /// The token whose secret is `secret`. Every token's digest is compared, in constant time.
    fn find(&self, secret: &str) -> Option<&Token> {
        let presented = digest(secret);
        let mut found = None;
        for token in &self.inner.tokens {
            if bool::from(token.digest.ct_eq(&presented)) {
                found = Some(token);
            }
        }
        found
    }
}

/// The middleware: lets a request through to its route, or answers 401 or 403.
pub async fn authorize(State(auth): State<Auth>, mut request: Request, next: Next) -> Response {
    if auth.inner.public.contains(request.uri().path()) {
        return next.run(request).await;
    }
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let needs = auth.needs(request.method(), matched.as_deref());
    let scope = match needs {
        Some(Access::Public) => return next.run(request).await,
        Some(Access::Scope(scope)) => Some(scope),
        None => None,
    };
    let started = Instant::now();
    let route = matched.unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().clone();
    let (token, response) = match auth.inner.mode {
        AuthMode::None => {
            request.extensions_mut().insert(Caller {
                name: Caller::ANONYMOUS.into(),
                scopes: None,
            });
            (Caller::ANONYMOUS.to_string(), next.run(request).await)
        }
        AuthMode::Tokens => match presented(&request) {
            None => ("none".to_string(), unauthorized("missing_token")),
            Some(Presented::Cookie(_)) if !csrf_safe(&request) => (
                "none".to_string(),
                error_response(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    json!({"detail": format!(
                        "a {method} authenticated by the session cookie needs the header \
                         `{CSRF_HEADER}: 1`"
                    )}),
                ),
            ),
            Some(presented) => match auth.find(presented.secret()) {
                None => ("none".to_string(), unauthorized("unknown_token")),
                Some(token) => {
                    let name = token.name().to_string();
                    match scope {
                        Some(scope) if !token.allows(scope) => (name, forbidden(token, scope)),
                        _ => {
                            request.extensions_mut().insert(Caller {
                                name: token.name.clone(),
                                scopes: Some(token.scopes.clone().into()),
                            });
                            (name, next.run(request).await)
                        }
                    }
                }
            },
        },
    };
    ApiRequest {
        token: &token,
        method: &method,
        route: &route,
        status: response.status(),
        started,
    }
    .emit();
    response
}

/// The cookie a browser presents the API token in (hex of the secret, so any secret is a
/// valid cookie value).
pub const SESSION_COOKIE: &str = "chatgptd_session";

/// The header an unsafe request authenticated by the cookie must carry.
pub const CSRF_HEADER: &str = "x-chatgptd-csrf";

/// The `Set-Cookie` value that keeps `secret` for the browser's later requests: unreadable
/// by scripts, never sent by another site's requests.
pub fn session_cookie(secret: &str) -> String {
    format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
        hex::encode(secret)
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn expired_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Where a request's secret came from.
enum Presented {
    Bearer(String),
    Cookie(String),
}

impl Presented {
    fn secret(&self) -> &str {
        match self {
            Presented::Bearer(secret) | Presented::Cookie(secret) => secret,
        }
    }
}

/// The bearer header's secret, else the session cookie's.
fn presented(request: &Request) -> Option<Presented> {
    if let Some(secret) = bearer(request) {
        return Some(Presented::Bearer(secret.to_string()));
    }
    session(request).map(Presented::Cookie)
}

/// The secret in the session cookie.
fn session(request: &Request) -> Option<String> {
    for value in request.headers().get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            let Some((name, encoded)) = pair.trim().split_once('=') else {
                continue;
            };
            if name == SESSION_COOKIE {
                let secret = hex::decode(encoded.trim()).ok()?;
                let secret = String::from_utf8(secret).ok()?;
                return (!secret.is_empty()).then_some(secret);
            }
        }
    }
    None
}

/// Whether a cookie-authenticated request may go on: a safe method, or the CSRF header.
fn csrf_safe(request: &Request) -> bool {
    matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) || request.headers().contains_key(CSRF_HEADER)
}

/// The secret of an `Authorization: Bearer <secret>` header.
fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, secret) = value.trim().split_once(' ')?;
    let secret = secret.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !secret.is_empty()).then_some(secret)
}

/// 401: no token, or one nobody configured. Says how to send one, never what was sent.
fn unauthorized(code: &str) -> Response {
    let detail = match code {
        "unknown_token" => "the bearer token is not one of this server's API tokens",
        _ => {
            "send an API token as `Authorization: Bearer <token>`; with no tokens configured, \
             a loopback server keeps one in <data_dir>/api-token"
        }
    };
    let mut response = error_response(StatusCode::UNAUTHORIZED, code, json!({"detail": detail}));
    let challenge = if code == "unknown_token" {
        "Bearer realm=\"chatgptd\", error=\"invalid_token\""
    } else {
        "Bearer realm=\"chatgptd\""
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// 403: a known token without the scope the route needs.
fn forbidden(token: &Token, scope: Scope) -> Response {
    error_response(
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        json!({
            "detail": format!(
                "this route needs a token with the `{scope}` scope; token `{}` has {}",
                token.name(),
                token.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ),
            "scope": scope.as_str(),
            "token": token.name(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_found_by_its_secret_and_admin_allows_everything() {
        let read = Token::from_secret("ci", "s3cret", vec![Scope::Read]).unwrap();
        let sha = hex::encode(digest("other"));
        let admin = Token::from_sha256("ops", &sha, vec![Scope::Admin]).unwrap();
        let auth = Auth::new(AuthMode::Tokens, vec![read, admin], [], &[]);
        assert_eq!(auth.find("s3cret").map(Token::name), Some("ci"));
        assert_eq!(auth.find("other").map(Token::name), Some("ops"));
        assert!(auth.find("s3cre").is_none() && auth.find("").is_none());
        let ops = auth.find("other").unwrap();
        assert!(Scope::ALL.iter().all(|scope| ops.allows(*scope)));
        let ci = auth.find("s3cret").unwrap();
        assert!(ci.allows(Scope::Read) && !ci.allows(Scope::Send));
    }

    #[test]
    fn an_undeclared_route_needs_admin() {
        let declared = [Declared {
            method: Method::GET,
            path: "/agents".into(),
            access: Access::Scope(Scope::Read),
        }];
        let auth = Auth::new(AuthMode::Tokens, vec![], [], &declared);
        let read = Some(Access::Scope(Scope::Read));
        let admin = Some(Access::Scope(Scope::Admin));
        assert_eq!(auth.needs(&Method::GET, Some("/agents")), read);
        assert_eq!(auth.needs(&Method::HEAD, Some("/agents")), read);
        assert_eq!(auth.needs(&Method::POST, Some("/agents")), admin);
        assert_eq!(auth.needs(&Method::GET, Some("/new")), admin);
        assert_eq!(auth.needs(&Method::GET, None), None);
    }

    #[test]
    fn only_a_bearer_header_carries_a_secret() {
        let with = |value: &str| {
            Request::builder()
                .header(header::AUTHORIZATION, value)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        assert_eq!(bearer(&with("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&with("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&with("Basic abc")), None);
        assert_eq!(bearer(&with("Bearer ")), None);
    }

    #[test]
    fn the_session_cookie_carries_the_secret_and_unsafe_methods_need_the_csrf_header() {
        let cookie = session_cookie("s3cret; x");
        let value = cookie.split(';').next().unwrap().to_string();
        let request = |method: Method, csrf: bool| {
            let mut builder = Request::builder()
                .method(method)
                .header(header::COOKIE, format!("theme=dark; {value}"));
            if csrf {
                builder = builder.header(CSRF_HEADER, "1");
            }
            builder.body(axum::body::Body::empty()).unwrap()
        };
        let get = request(Method::GET, false);
        assert!(matches!(presented(&get), Some(Presented::Cookie(s)) if s == "s3cret; x"));
        assert!(csrf_safe(&get));
        assert!(!csrf_safe(&request(Method::POST, false)));
        assert!(csrf_safe(&request(Method::POST, true)));
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    }
}
