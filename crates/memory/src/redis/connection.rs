//! From options to connection info: the URL, the password from the secrets, and the URL as it
//! may be shown (no credentials).

use ::redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};
use chatgptd_types::Secrets;

use super::errors::classify;
use crate::{Error, MemoryOptions};

/// Parses the URL and adds the password: the secret `redis_password_env` names, looked up in
/// `secrets` (unset or empty is an error). Errors never quote the URL, which may hold
/// credentials.
pub(super) fn connection_info(
    options: &MemoryOptions,
    secrets: &Secrets,
) -> Result<ConnectionInfo, Error> {
    let mut info = options
        .redis_url
        .as_str()
        .into_connection_info()
        .map_err(|err| classify(&err, "invalid redis_url".to_string()))?;
    if !options.redis_password_env.is_empty() {
        let password = secrets.get(&options.redis_password_env).ok_or_else(|| {
            Error::Backend(format!(
                "redis_password_env names {}, which is not set",
                options.redis_password_env
            ))
        })?;
        let settings = info.redis_settings().clone().set_password(password);
        info = info.set_redis_settings(settings);
    }
    Ok(info)
}

/// The server's URL without user name or password: `redis://host:port/db`.
pub(super) fn display_url(info: &ConnectionInfo) -> String {
    let db = info.redis_settings().db();
    match info.addr() {
        ConnectionAddr::TcpTls { host, port, .. } => format!("rediss://{host}:{port}/{db}"),
        ConnectionAddr::Unix(path) => format!("redis+unix://{}?db={db}", path.display()),
        addr => format!("redis://{addr}/{db}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(url: &str) -> String {
        let options = MemoryOptions {
            redis_url: url.to_string(),
            ..MemoryOptions::default()
        };
        display_url(&connection_info(&options, &Secrets::env()).unwrap())
    }

    #[test]
    fn the_shown_url_has_no_credentials() {
        assert_eq!(shown("redis://127.0.0.1:6379/"), "redis://127.0.0.1:6379/0");
        assert_eq!(
            shown("redis://user:secret@cache.internal:6380/3"),
            "redis://cache.internal:6380/3"
        );
        assert_eq!(
            shown("redis://:secret@cache.internal"),
            "redis://cache.internal:6379/0"
        );
    }

    #[test]
    fn a_bad_url_is_a_backend_error_that_does_not_quote_it() {
        let options = MemoryOptions {
            redis_url: "http://user:secret@host/".to_string(),
            ..MemoryOptions::default()
        };
        let err = connection_info(&options, &Secrets::env()).unwrap_err();
        assert!(!err.is_unavailable(), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn the_password_variable_must_be_set() {
        let options = MemoryOptions {
            redis_url: "redis://127.0.0.1/".to_string(),
            redis_password_env: "CHATGPTD_TEST_SURELY_UNSET_VARIABLE".to_string(),
            ..MemoryOptions::default()
        };
        let err = connection_info(&options, &Secrets::env()).unwrap_err();
        assert!(
            err.to_string()
                .contains("CHATGPTD_TEST_SURELY_UNSET_VARIABLE"),
            "{err}"
        );
        let empty = Secrets::from_map([("CHATGPTD_TEST_SURELY_UNSET_VARIABLE", "")]);
        assert!(
            connection_info(&options, &empty).is_err(),
            "an empty password is a missing one"
        );
        let given = Secrets::from_map([("CHATGPTD_TEST_SURELY_UNSET_VARIABLE", "pw")]);
        let info = connection_info(&options, &given).unwrap();
        assert_eq!(info.redis_settings().password(), Some("pw"));
    }
}
