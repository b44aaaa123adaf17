//! The API tokens of a process: the configured ones or, with none configured on a loopback
//! listener, an admin token of its own kept in the data directory (as Jupyter does), so that
//! `chatgptd up` works with nothing configured; and the refusal to serve an open API beyond
//! loopback.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chatgptd_runtime::http::{Auth, AuthMode, Declared, Scope, Token};
use chatgptd_types::Secrets;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use tracing::{info, warn};

use crate::config::Config;

/// The file in the data directory that holds the generated token.
pub const TOKEN_FILE: &str = "api-token";
/// The name of the generated token: in logs, metrics and the audit trail.
pub const LOCAL_TOKEN: &str = "local";

/// Where the generated token of a process with `data_dir` is kept.
pub fn token_file(data_dir: &Path) -> PathBuf {
    data_dir.join(TOKEN_FILE)
}

/// The tokens of a process, resolved before anything starts.
#[derive(Debug)]
pub struct Tokens {
    mode: AuthMode,
    tokens: Vec<Token>,
    public: Vec<String>,
    listen: SocketAddr,
    generated: Option<PathBuf>,
}

impl Tokens {
    /// The file holding the process's own token, when no tokens are configured.
    pub fn generated(&self) -> Option<&Path> {
        self.generated.as_deref()
    }

    /// Says at start what a caller needs: where the generated token is (never the token),
    /// or, loudly, that the API is open.
    pub fn announce(&self) {
        if self.mode == AuthMode::None {
            warn!(
                listen = %self.listen,
                "http: API authentication is off (http.auth = \"none\"): anyone who reaches \
                 this address may read every topic, message agents, start runs and decide \
                 approvals"
            );
        } else if let Some(file) = &self.generated {
            info!(
                file = %file.display(),
                "http: no API tokens configured; an admin token for this machine is in this \
                 file (send it as `Authorization: Bearer <token>`)"
            );
        } else {
            let names: Vec<&str> = self.tokens.iter().map(Token::name).collect();
            info!(tokens = ?names, "http: API tokens configured");
        }
    }

    /// The check of every request to `declared` routes.
    pub fn check(self, declared: &[Declared]) -> Auth {
        Auth::new(self.mode, self.tokens, self.public, declared)
    }
}

/// The tokens of a process that serves its API on `listen`, from its configuration. Refuses
/// an API open beyond loopback: no tokens on a non-loopback address is an error unless
/// `http.auth = "none"` says so.
pub fn tokens(config: &Config, secrets: &Secrets, listen: SocketAddr) -> anyhow::Result<Tokens> {
    let http = &config.http;
    let public = http.public.clone();
    if http.auth == AuthMode::None {
        return Ok(Tokens {
            mode: AuthMode::None,
            tokens: Vec::new(),
            public,
            listen,
            generated: None,
        });
    }
    let mut tokens = Vec::new();
    for (name, options) in &http.tokens {
        let token = Token::from_options(name, options, |env| secrets.get(env))
            .with_context(|| format!("http.tokens.{name}"))?;
        tokens.push(token);
    }
    if tokens.is_empty() {
        if !listen.ip().is_loopback() {
            bail!(
                "refusing to serve the HTTP API on {listen} with no API tokens: anyone who \
                 reaches it could read every topic, message agents and decide approvals. \
                 Configure a token ([http.tokens.<name>] with `scopes` and `sha256` or \
                 `secret_env`, see chatgptd.example.toml), or listen on 127.0.0.1 \
                 (--http-listen 127.0.0.1:8080), or, on a network you trust, set \
                 http.auth = \"none\""
            );
        }
        let file = token_file(&config.data_dir);
        let secret = local_secret(&file)?;
        tokens.push(Token::from_secret(
            LOCAL_TOKEN,
            &secret,
            vec![Scope::Admin],
        )?);
        return Ok(Tokens {
            mode: AuthMode::Tokens,
            tokens,
            public,
            listen,
            generated: Some(file),
        });
    }
    Ok(Tokens {
        mode: AuthMode::Tokens,
        tokens,
        public,
        listen,
        generated: None,
    })
}

/// The `Authorization` header of a client of another process's API (a worker's remote
/// search) sending the token in the secret `token_env`; none when it names none.
pub fn bearer_headers(worker: &str, secrets: &Secrets, token_env: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if token_env.is_empty() {
        return headers;
    }
    match secrets
        .get(token_env)
        .and_then(|token| HeaderValue::from_str(&format!("Bearer {token}")).ok())
    {
        Some(mut value) => {
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        None => warn!(
            worker,
            env = token_env,
            "the API token for search_url is not set (or not a header value): searches go \
             without one"
        ),
    }
    headers
}

/// The generated token in `file`, created once (readable by its owner only) and kept across
/// restarts.
fn local_secret(file: &Path) -> anyhow::Result<String> {
    if !file.exists() {
        create_token_file(file)?;
    }
    let secret = read_token_file(file)?;
    if secret.is_empty() {
        bail!(
            "the API token file {} is empty; delete it and a new token is made at the next start",
            file.display()
        );
    }
    warn_if_readable_by_others(file);
    Ok(secret)
}

/// The token kept in `file`, trimmed.
pub fn read_token_file(file: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the API token file {}", file.display()))?;
    Ok(text.trim().to_string())
}

/// Writes a new random token to `file`, whole or not at all: written to a file of its own,
/// then linked into place, so a concurrent start never reads half a token and two starts keep
/// the first one.
fn create_token_file(file: &Path) -> anyhow::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))?;
    let secret = hex::encode(rand::random::<[u8; 32]>());
    // Unique per call: two starts in one process (a node and a test or bench reading its
    // token) must not write the same partial file.
    let partial = dir.join(format!(
        ".{TOKEN_FILE}.{}.{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let written = (|| -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut out = options.open(&partial)?;
        writeln!(out, "{secret}")?;
        out.sync_all()?;
        match std::fs::hard_link(&partial, file) {
            Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => Err(err),
            _ => Ok(()),
        }
    })();
    let _ = std::fs::remove_file(&partial);
    written.with_context(|| format!("writing the API token file {}", file.display()))
}

#[cfg(unix)]
fn warn_if_readable_by_others(file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(file)
        && meta.permissions().mode() & 0o077 != 0
    {
        warn!(
            file = %file.display(),
            "http: the API token file is readable by others than its owner (chmod 600 it)"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_file: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        Config {
            data_dir: dir.to_path_buf(),
            ..Config::default()
        }
    }

    #[test]
    fn a_loopback_listener_keeps_one_token_across_starts() {
        let dir = tempfile::tempdir().unwrap();
        let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
        tokens(
            &config(dir.path()),
            &Secrets::from_map::<&str, &str>([]),
            loopback,
        )
        .unwrap();
        let file = token_file(dir.path());
        let first = read_token_file(&file).unwrap();
        assert_eq!(first.len(), 64, "{first}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        tokens(
            &config(dir.path()),
            &Secrets::from_map::<&str, &str>([]),
            loopback,
        )
        .unwrap();
        assert_eq!(read_token_file(&file).unwrap(), first);
    }

    #[test]
    fn no_tokens_beyond_loopback_refuses_unless_auth_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let anywhere: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let secrets = Secrets::from_map::<&str, &str>([]);
        let err = tokens(&config(dir.path()), &secrets, anywhere).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("http.tokens") && text.contains("http.auth = \"none\""),
            "{text}"
        );
        assert!(!token_file(dir.path()).exists());
        let mut open = config(dir.path());
        open.http.auth = AuthMode::None;
        tokens(&open, &secrets, anywhere).unwrap();
    }

    #[test]
    fn a_token_whose_secret_is_unset_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        config.http.tokens.insert(
            "ci".into(),
            chatgptd_runtime::http::TokenOptions {
                scopes: vec![Scope::Read],
                secret_env: "CI_TOKEN".into(),
                ..Default::default()
            },
        );
        let anywhere: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let none = Secrets::from_map::<&str, &str>([]);
        let err = tokens(&config, &none, anywhere).unwrap_err();
        assert!(format!("{err:#}").contains("CI_TOKEN"), "{err:#}");
        let set = Secrets::from_map([("CI_TOKEN", "s3cret")]);
        tokens(&config, &set, anywhere).unwrap();
    }
}
