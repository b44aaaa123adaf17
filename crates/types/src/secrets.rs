//! Where secrets come from: one lookup, handed to every part that needs one.
//!
//! Configuration names the variable that holds a secret (`redis_password_env`,
//! `api_key_env`, a webhook's `secret_env`), never the secret itself. The process looks those
//! names up in its environment; a test hands the node a map instead, since it cannot set the
//! environment of a process it shares with other tests (and `unsafe` is forbidden here).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A lookup of secrets by name: the environment by default, or a fixed map.
///
/// Cheap to clone. Its `Debug` names where secrets come from and which names a map holds,
/// never a value, so a `Secrets` in a logged struct leaks nothing.
#[derive(Clone, Default)]
pub struct Secrets {
    source: Source,
}

#[derive(Clone, Default)]
enum Source {
    #[default]
    Environment,
    Map(Arc<BTreeMap<String, String>>),
}

impl Secrets {
    /// The process's environment.
    pub fn env() -> Self {
        Secrets::default()
    }

    /// A fixed map of names to values, and nothing else (the environment is not consulted).
    pub fn from_map<K, V>(entries: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let map = entries
            .into_iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect();
        Secrets {
            source: Source::Map(Arc::new(map)),
        }
    }

    /// The secret called `name`; `None` when it is unset, empty or (in the environment) not
    /// Unicode. An empty value counts as unset: `FOO=` in a compose file is a missing secret,
    /// not an empty password.
    pub fn get(&self, name: &str) -> Option<String> {
        let value = match &self.source {
            Source::Environment => std::env::var(name).ok(),
            Source::Map(map) => map.get(name).cloned(),
        };
        value.filter(|value| !value.is_empty())
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::Environment => f.write_str("Secrets(environment)"),
            Source::Map(map) => f.debug_tuple("Secrets").field(&map.keys()).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_answers_only_its_names_and_never_prints_a_value() {
        let secrets = Secrets::from_map([("JIRA_SECRET", "s3cret"), ("EMPTY", "")]);
        assert_eq!(secrets.get("JIRA_SECRET").as_deref(), Some("s3cret"));
        assert_eq!(secrets.get("EMPTY"), None, "an empty value is unset");
        // PATH is set in every test process: a map does not fall back to the environment.
        assert_eq!(secrets.get("PATH"), None);
        let printed = format!("{secrets:?}");
        assert!(
            printed.contains("JIRA_SECRET") && !printed.contains("s3cret"),
            "{printed}"
        );
    }

    #[test]
    fn the_environment_is_the_default() {
        // Cargo sets CARGO_PKG_NAME for every test process.
        assert_eq!(
            Secrets::default().get("CARGO_PKG_NAME").as_deref(),
            Some("chatgptd-types")
        );
        assert_eq!(format!("{:?}", Secrets::env()), "Secrets(environment)");
    }
}
