//! Webhook signing secrets: looked up once, at build, in the process's [`Secrets`] (its
//! environment, or a test's map), and never printed.

use std::fmt;

use chatgptd_types::Secrets;

use crate::Error;
use crate::options::IngestOptions;
use crate::source::Source;

/// A signing secret. `Debug` prints `<redacted>`, so it cannot leak through a log of a
/// struct that holds it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    /// The secret's bytes, for the HMAC key.
    pub(crate) fn expose(&self) -> &[u8] {
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
pub(crate) struct SigningSecrets {
    pub(crate) jira: Option<Secret>,
    pub(crate) servicenow: Option<Secret>,
    pub(crate) github: Option<Secret>,
}

impl SigningSecrets {
    /// Looks each source's `secret_env` up in `secrets`. A configured name that is unset or
    /// empty is an error: failing to start beats silently accepting unsigned webhooks.
    pub(crate) fn look_up(
        options: &IngestOptions,
        secrets: &Secrets,
    ) -> Result<SigningSecrets, Error> {
        let read = |source: Source, env: &str| -> Result<Option<Secret>, Error> {
            if env.is_empty() {
                return Ok(None);
            }
            match secrets.get(env) {
                Some(value) => Ok(Some(Secret(value))),
                None => Err(Error::MissingSecret {
                    source_name: source.as_str(),
                    env: env.to_string(),
                }),
            }
        };
        Ok(SigningSecrets {
            jira: read(Source::Jira, &options.jira.secret_env)?,
            servicenow: read(Source::ServiceNow, &options.servicenow.secret_env)?,
            github: read(Source::GitHub, &options.github.secret_env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_required_when_configured() {
        let mut options = IngestOptions::default();
        options.github.secret_env = "GH_SECRET".into();
        let secrets =
            SigningSecrets::look_up(&options, &Secrets::from_map([("GH_SECRET", "s3cr3t")]))
                .unwrap();
        assert_eq!(secrets.github.as_ref().unwrap().expose(), b"s3cr3t");
        assert!(secrets.jira.is_none());
        let shown = format!("{secrets:?}");
        assert!(
            !shown.contains("s3cr3t") && shown.contains("<redacted>"),
            "{shown}"
        );

        let err = SigningSecrets::look_up(&options, &Secrets::from_map::<&str, &str>([]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ingest.github.secret_env") && err.contains("GH_SECRET"),
            "{err}"
        );
        let empty = SigningSecrets::look_up(&options, &Secrets::from_map([("GH_SECRET", "")]));
        assert!(empty.is_err(), "an empty secret is no secret");
    }
}
