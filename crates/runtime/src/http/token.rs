//! API tokens: a name, scopes and the SHA-256 digest of a secret. The secret itself is never
//! kept, logged or printed; `Debug` shows the name and scopes only.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
    pub(super) name: Arc<str>,
    pub(super) digest: [u8; 32],
    pub(super) scopes: Vec<Scope>,
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

/// The SHA-256 of a secret: what a token keeps, and what a presented secret is compared by.
pub(super) fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
