//! Credentials: looked up in the process's [`Secrets`] (its environment, or a test's map),
//! never printed.

use std::fmt;

use chatgptd_types::Secrets;

use crate::options::WritebackOptions;

/// A secret string whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    /// The secret called `name`, trimmed, if set and not blank.
    fn look_up(secrets: &Secrets, name: &str) -> Option<Secret> {
        let value = secrets.get(name)?;
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
pub(crate) struct Credentials {
    /// Jira's API token (the user is `jira.email`).
    pub(crate) jira_api_token: Option<Secret>,
    /// ServiceNow's password (the user is `servicenow.username`).
    pub(crate) servicenow_password: Option<Secret>,
    /// GitHub's token.
    pub(crate) github_token: Option<Secret>,
}

impl Credentials {
    /// Looks the secrets the options name up in `secrets`, for enabled sources only.
    pub(crate) fn look_up(options: &WritebackOptions, secrets: &Secrets) -> Credentials {
        let read = |enabled: bool, variable: &str| {
            if enabled {
                Secret::look_up(secrets, variable)
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
            github_token: Some(Secret("ghp_very_secret".to_string())),
            ..Default::default()
        };
        let shown = format!("{credentials:?}");
        assert!(!shown.contains("very_secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn disabled_sources_read_no_variable() {
        let options = WritebackOptions::default();
        let secrets = Secrets::from_map([
            (options.jira.api_token_env.as_str(), "token"),
            (options.github.token_env.as_str(), "token"),
        ]);
        let credentials = Credentials::look_up(&options, &secrets);
        assert!(credentials.jira_api_token.is_none() && credentials.github_token.is_none());
    }

    #[test]
    fn enabled_sources_take_their_secret_trimmed_and_skip_a_blank_one() {
        let mut options = WritebackOptions::default();
        options.jira.enabled = true;
        options.github.enabled = true;
        options.servicenow.enabled = true;
        let secrets = Secrets::from_map([
            (options.jira.api_token_env.as_str(), " jira-token\n"),
            (options.github.token_env.as_str(), "  "),
        ]);
        let credentials = Credentials::look_up(&options, &secrets);
        assert_eq!(
            credentials.jira_api_token.as_ref().map(Secret::expose),
            Some("jira-token")
        );
        assert!(credentials.github_token.is_none(), "blank is unset");
        assert!(credentials.servicenow_password.is_none(), "not in the map");
    }
}
