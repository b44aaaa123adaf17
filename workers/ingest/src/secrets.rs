//! Webhook signing secrets: read from the environment once, at build, and never printed.

use std::fmt;

use crate::Error;
use crate::options::IngestOptions;
use crate::source::Source;

/// A signing secret. `Debug` prints `<redacted>`, so it cannot leak through a log of a
/// struct that holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret's bytes, for the HMAC key.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The signing secret of each source; `None` means that source's signatures are not checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    pub jira: Option<Secret>,
    pub servicenow: Option<Secret>,
    pub github: Option<Secret>,
}

impl Secrets {
    /// Reads each source's `secret_env` variable. A configured variable that is unset or
    /// empty is an error: failing to start beats silently accepting unsigned webhooks.
    pub fn from_env(options: &IngestOptions) -> Result<Secrets, Error> {
        Self::from_lookup(options, |name| std::env::var(name).ok())
    }

    /// As [`from_env`](Self::from_env), with the environment given as a function (tests).
    pub fn from_lookup(
        options: &IngestOptions,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Secrets, Error> {
        let read = |source: Source, env: &str| -> Result<Option<Secret>, Error> {
            if env.is_empty() {
                return Ok(None);
            }
            match lookup(env) {
                Some(value) if !value.is_empty() => Ok(Some(Secret(value))),
                _ => Err(Error::MissingSecret {
                    source_name: source.as_str(),
                    env: env.to_string(),
                }),
            }
        };
        Ok(Secrets {
            jira: read(Source::Jira, &options.jira.secret_env)?,
            servicenow: read(Source::ServiceNow, &options.servicenow.secret_env)?,
            github: read(Source::GitHub, &options.github.secret_env)?,
        })
    }

    /// The secret of `source`.
    pub fn get(&self, source: Source) -> Option<&Secret> {
        match source {
            Source::Jira => self.jira.as_ref(),
            Source::ServiceNow => self.servicenow.as_ref(),
            Source::GitHub => self.github.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_required_when_configured() {
        let mut options = IngestOptions::default();
        options.github.secret_env = "GH_SECRET".into();
        let secrets = Secrets::from_lookup(&options, |name| {
            (name == "GH_SECRET").then(|| "s3cr3t".into())
        })
        .unwrap();
        assert_eq!(secrets.github.as_ref().unwrap().expose(), b"s3cr3t");
        assert!(secrets.jira.is_none());
        let shown = format!("{secrets:?}");
        assert!(
            !shown.contains("s3cr3t") && shown.contains("<redacted>"),
            "{shown}"
        );

        let err = Secrets::from_lookup(&options, |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ingest.github.secret_env") && err.contains("GH_SECRET"),
            "{err}"
        );
        let empty = Secrets::from_lookup(&options, |_| Some(String::new()));
        assert!(empty.is_err(), "an empty secret is no secret");
    }
}
