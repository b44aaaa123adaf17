//! Which provider answers, and where it lives: the options completed from the secrets (the
//! environment in production), as the OpenAI SDKs do (`OPENAI_API_KEY`, `OPENAI_BASE_URL`).

use chatgptd_types::Secrets;

use crate::error::Error;
use crate::openai::{ApiKey, Endpoint};
use crate::options::{ModelOptions, ProviderKind};

/// The environment variable of the base URL, as the OpenAI SDKs read it.
pub const BASE_URL_ENV: &str = "OPENAI_BASE_URL";

/// The OpenAI API.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// The provider chosen for a client.
#[derive(Debug, Clone)]
pub enum Resolved {
    OpenAi(Endpoint),
    Offline,
}

/// Resolves `options`, looking names up in `secrets` (blank values count as unset).
pub fn resolve(options: &ModelOptions, secrets: &Secrets) -> Result<Resolved, Error> {
    let lookup = |name: &str| secrets.get(name).filter(|value| !value.trim().is_empty());
    let configured_url = Some(options.base_url.trim().to_string()).filter(|url| !url.is_empty());
    let env_url = lookup(BASE_URL_ENV);
    let api_key_env = options.api_key_env.trim();
    let api_key = if api_key_env.is_empty() {
        None
    } else {
        lookup(api_key_env)
    };

    let openai = match options.provider {
        ProviderKind::OpenAi => true,
        ProviderKind::Offline => false,
        ProviderKind::Auto => configured_url.is_some() || env_url.is_some() || api_key.is_some(),
    };
    if !openai {
        return Ok(Resolved::Offline);
    }

    let mut headers: Vec<(String, String, bool)> = options
        .extra_headers
        .iter()
        .map(|(name, value)| (name.clone(), value.clone(), false))
        .collect();
    for (name, variable) in &options.secret_headers {
        let value = lookup(variable).ok_or_else(|| {
            Error::Config(format!(
                "secret header {name}: environment variable {variable} is not set"
            ))
        })?;
        headers.push((name.clone(), value, true));
    }
    Ok(Resolved::OpenAi(Endpoint {
        base_url: configured_url
            .or(env_url)
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string()),
        api_key: api_key.map(ApiKey::new),
        headers,
        query: options
            .extra_query
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        timeout: options.request_timeout,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &'static [(&'static str, &'static str)]) -> Secrets {
        Secrets::from_map(pairs.iter().copied())
    }

    #[test]
    fn auto_is_offline_without_url_or_key() {
        let options = ModelOptions::default();
        assert!(matches!(
            resolve(&options, &secrets(&[])).unwrap(),
            Resolved::Offline
        ));
        assert!(matches!(
            resolve(&options, &secrets(&[("OPENAI_API_KEY", " ")])).unwrap(),
            Resolved::Offline
        ));
    }

    #[test]
    fn auto_is_openai_with_a_key_or_url() {
        let options = ModelOptions::default();
        let Resolved::OpenAi(endpoint) =
            resolve(&options, &secrets(&[("OPENAI_API_KEY", "sk-x")])).unwrap()
        else {
            panic!("expected openai");
        };
        assert_eq!(endpoint.base_url, DEFAULT_BASE_URL);
        assert!(endpoint.api_key.is_some());

        let Resolved::OpenAi(endpoint) = resolve(
            &options,
            &secrets(&[("OPENAI_BASE_URL", "http://llm:8000/v1")]),
        )
        .unwrap() else {
            panic!("expected openai");
        };
        assert_eq!(endpoint.base_url, "http://llm:8000/v1");
        assert!(endpoint.api_key.is_none());

        let configured = ModelOptions {
            base_url: "http://configured/v1".into(),
            ..ModelOptions::default()
        };
        let Resolved::OpenAi(endpoint) = resolve(
            &configured,
            &secrets(&[("OPENAI_BASE_URL", "http://env/v1")]),
        )
        .unwrap() else {
            panic!("expected openai");
        };
        assert_eq!(endpoint.base_url, "http://configured/v1");
    }

    #[test]
    fn explicit_provider_wins_and_secret_headers_need_their_variable() {
        let offline = ModelOptions {
            provider: ProviderKind::Offline,
            ..ModelOptions::default()
        };
        assert!(matches!(
            resolve(&offline, &secrets(&[("OPENAI_API_KEY", "sk-x")])).unwrap(),
            Resolved::Offline
        ));

        let azure = ModelOptions {
            provider: ProviderKind::OpenAi,
            secret_headers: [("api-key".to_string(), "AZURE_KEY".to_string())].into(),
            ..ModelOptions::default()
        };
        assert!(matches!(
            resolve(&azure, &secrets(&[])),
            Err(Error::Config(_))
        ));
        let Resolved::OpenAi(endpoint) = resolve(&azure, &secrets(&[("AZURE_KEY", "k")])).unwrap()
        else {
            panic!("expected openai");
        };
        assert_eq!(
            endpoint.headers,
            vec![("api-key".to_string(), "k".to_string(), true)]
        );
    }
}
