//! Credentials: read from the environment (or given by tests), never printed.

use std::fmt;

use crate::options::WritebackOptions;

/// A secret string whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The variable's value, if set and not blank.
    fn from_env(variable: &str) -> Option<Secret> {
        let value = std::env::var(variable).ok()?;
        (!value.trim().is_empty()).then(|| Secret(value.trim().to_string()))
    }

    /// The secret itself, for building an `Authorization` header (marked sensitive).
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One credential per tracker; `None` means the source's records are skipped.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Jira's API token (the user is `jira.email`).
    pub jira_api_token: Option<Secret>,
    /// ServiceNow's password (the user is `servicenow.username`).
    pub servicenow_password: Option<Secret>,
    /// GitHub's token.
    pub github_token: Option<Secret>,
}

impl Credentials {
    /// Reads the variables named by the options, for enabled sources only.
    pub fn from_env(options: &WritebackOptions) -> Credentials {
        let read = |enabled: bool, variable: &str| {
            if enabled {
                Secret::from_env(variable)
            } else {
                None
            }
        };
        Credentials {
            jira_api_token: read(options.jira.enabled, &options.jira.api_token_env),
            servicenow_password: read(options.servicenow.enabled, &options.servicenow.password_env),
            github_token: read(options.github.enabled, &options.github.token_env),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_secret() {
        let credentials = Credentials {
            github_token: Some(Secret::new("ghp_very_secret")),
            ..Default::default()
        };
        let shown = format!("{credentials:?}");
        assert!(!shown.contains("very_secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn disabled_sources_read_no_variable() {
        let options = WritebackOptions::default();
        let credentials = Credentials::from_env(&options);
        assert!(credentials.jira_api_token.is_none() && credentials.github_token.is_none());
    }
}
