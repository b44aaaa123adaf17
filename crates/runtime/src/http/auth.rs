//! Who may call what: API tokens with scopes, checked once for every route of a process.
//!
//! A token is a name, its scopes and the SHA-256 digest of its secret; the secret itself is
//! never kept, logged or compared. A request presents `Authorization: Bearer <secret>`; its
//! digest is compared with every token's in constant time. Each route declares the scope it
//! needs ([`super::routes::Routes`]); a route that declares nothing needs `admin`, so a new
//! route is never open by accident. Paths listed as public (`http.public`) and routes
//! declared [`Access::Public`] (the webhooks, which check signatures) need no token.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error_response;
use super::routes::{Access, Declared};
use crate::telemetry::ApiRequest;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read: agents, fleets, messages, runs, workflows, search, event streams, approvals.
    Read,
    /// Send: messages to agents and fleets, agents' actions, workflow runs.
    Send,
    /// Approve: decide approvals, resume runs, approve workflow steps.
    Approve,
    /// Everything, and every route that declares no scope.
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Send, Scope::Approve, Scope::Admin];

    /// The configuration's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Send => "send",
            Scope::Approve => "approve",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the API checks tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Every route but the public ones needs a token (the default).
    #[default]
    Tokens,
    /// No checks at all: anyone who reaches the port may do anything. For a trusted network.
    None,
}

/// A configured token (`[http.tokens.<name>]`): its scopes and exactly one of `sha256` or
/// `secret_env`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenOptions {
    /// What it may do: `read`, `send`, `approve`, `admin`.
    pub scopes: Vec<Scope>,
    /// The SHA-256 of the secret, in hex (`printf %s "$SECRET" | sha256sum`).
    pub sha256: String,
    /// Or: the environment variable holding the secret itself.
    pub secret_env: String,
}

/// Why a token cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token name `{0}` must be 1 to 64 characters of a-z, 0-9, `-`, `_` or `.`")]
    Name(String),
    #[error("token `{0}` has no scopes; give it some of read, send, approve, admin")]
    NoScopes(String),
    #[error("token `{0}` needs exactly one of `sha256` or `secret_env`")]
    Secret(String),
    #[error("token `{name}`: sha256 must be 64 hex digits (the SHA-256 of the secret)")]
    Digest { name: String },
    #[error("token `{name}`: the environment variable `{env}` (secret_env) is not set")]
    MissingSecret { name: String, env: String },
}

/// A token as the check knows it: never its secret.
#[derive(Clone)]
pub struct Token {
    name: Arc<str>,
    digest: [u8; 32],
    scopes: Vec<Scope>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// A token whose secret is `secret`.
    pub fn from_secret(name: &str, secret: &str, scopes: Vec<Scope>) -> Result<Token, TokenError> {
        Token::new(name, digest(secret), scopes)
    }

    /// A token whose secret's SHA-256 is `sha256_hex`.
    pub fn from_sha256(
        name: &str,
        sha256_hex: &str,
        scopes: Vec<Scope>,
    ) -> Result<Token, TokenError> {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(sha256_hex.trim(), &mut digest).map_err(|_| TokenError::Digest {
            name: name.to_string(),
        })?;
        Token::new(name, digest, scopes)
    }

    /// A configured token, its secret looked up through `secret` when named by `secret_env`.
    pub fn from_options(
        name: &str,
        options: &TokenOptions,
        secret: impl FnOnce(&str) -> Option<String>,
    ) -> Result<Token, TokenError> {
        match (options.sha256.is_empty(), options.secret_env.is_empty()) {
            (false, true) => Token::from_sha256(name, &options.sha256, options.scopes.clone()),
            (true, false) => match secret(&options.secret_env) {
                Some(value) => Token::from_secret(name, &value, options.scopes.clone()),
                None => Err(TokenError::MissingSecret {
                    name: name.to_string(),
                    env: options.secret_env.clone(),
                }),
            },
            _ => Err(TokenError::Secret(name.to_string())),
        }
    }

    fn new(name: &str, digest: [u8; 32], mut scopes: Vec<Scope>) -> Result<Token, TokenError> {
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if !valid {
            return Err(TokenError::Name(name.to_string()));
        }
        if scopes.is_empty() {
            return Err(TokenError::NoScopes(name.to_string()));
        }
        scopes.sort();
        scopes.dedup();
        Ok(Token {
            name: name.into(),
            digest,
            scopes,
        })
    }

    /// Its name: in logs, metrics and the audit trail.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it may call a route that needs `scope`.
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Who made a request: the name of the token it presented (`anonymous` when the API checks
/// no tokens). Handlers take it as an argument to record who did something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    name: Arc<str>,
}

impl Caller {
    /// The caller of an API that checks no tokens (`http.auth = "none"`).
    pub const ANONYMOUS: &'static str = "anonymous";

    /// The token's name.
    pub fn name(&self) -> &str {
        &self.name
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
            });
            (Caller::ANONYMOUS.to_string(), next.run(request).await)
        }
        AuthMode::Tokens => match bearer(&request) {
            None => ("none".to_string(), unauthorized("missing_token")),
            Some(secret) => match auth.find(secret) {
                None => ("none".to_string(), unauthorized("unknown_token")),
                Some(token) => {
                    let name = token.name().to_string();
                    match scope {
                        Some(scope) if !token.allows(scope) => (name, forbidden(token, scope)),
                        _ => {
                            request.extensions_mut().insert(Caller {
                                name: token.name.clone(),
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
        let sha = hex::encode(Sha256::digest(b"other"));
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
    fn configured_tokens_are_checked_and_never_print_their_secret() {
        let options = TokenOptions {
            scopes: vec![Scope::Send],
            secret_env: "CI_TOKEN".into(),
            ..TokenOptions::default()
        };
        let token = Token::from_options("ci", &options, |_| Some("hunter2".into())).unwrap();
        assert!(!format!("{token:?}").contains("hunter2"));
        let missing = Token::from_options("ci", &options, |_| None).unwrap_err();
        assert!(missing.to_string().contains("CI_TOKEN"), "{missing}");
        let both = TokenOptions {
            sha256: "00".repeat(32),
            ..options.clone()
        };
        assert!(matches!(
            Token::from_options("ci", &both, |_| None),
            Err(TokenError::Secret(_))
        ));
        let short = TokenOptions {
            sha256: "abc".into(),
            secret_env: String::new(),
            ..options.clone()
        };
        assert!(Token::from_options("ci", &short, |_| None).is_err());
        assert!(Token::from_secret("Has Space", "x", vec![Scope::Read]).is_err());
        assert!(Token::from_secret("ci", "x", vec![]).is_err());
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
}
