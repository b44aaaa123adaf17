//! How a gateway in front of a model reports its limits: the fake rewrites its headers, written
//! OpenAI's way, in the style of Azure OpenAI or LiteLLM.

use std::time::Duration;

use axum::http::HeaderMap;

use super::header_value;

/// The rate-limit headers of a real server or gateway, as documented and as seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HeaderStyle {
    /// OpenAI: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`; a 429 carries
    /// `retry-after` and `retry-after-ms`.
    #[default]
    OpenAi,
    /// Azure OpenAI: `x-ratelimit-remaining-*` only (no limit, no reset); a 429 carries
    /// `retry-after-ms` and `retry-after`.
    Azure,
    /// LiteLLM whose deployment limit is hit: 200s carry `x-ratelimit-limit-requests` and
    /// `x-ratelimit-remaining-requests` without a reset; a 429 carries only the provider's
    /// `llm_provider-retry-after`, no plain `retry-after`.
    LiteLlmDeployment,
    /// LiteLLM with a key limit: `x-ratelimit-api_key-{limit,remaining}-*`; a 429 says
    /// `retry-after` with the whole window in seconds.
    LiteLlmKey,
}

impl HeaderStyle {
    /// Rewrites a reply's headers, written OpenAI's way, in this style.
    pub(super) fn restyle(self, headers: &mut HeaderMap, window: Duration) {
        let take = |headers: &mut HeaderMap, name: &str| headers.remove(name);
        let limit_names = [
            "x-ratelimit-limit-requests",
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-remaining-tokens",
        ];
        let resets = ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"];
        match self {
            HeaderStyle::OpenAi => {}
            HeaderStyle::Azure => {
                for name in resets.iter().chain(&limit_names[..2]) {
                    take(headers, name);
                }
            }
            HeaderStyle::LiteLlmDeployment => {
                for name in resets {
                    take(headers, name);
                }
                take(headers, "retry-after-ms");
                if let Some(value) = take(headers, "retry-after") {
                    headers.insert("llm_provider-retry-after", value);
                }
            }
            HeaderStyle::LiteLlmKey => {
                for name in resets {
                    take(headers, name);
                }
                for name in limit_names {
                    if let Some(value) = take(headers, name) {
                        let keyed = name.replace("x-ratelimit-", "x-ratelimit-api_key-");
                        headers.insert(
                            axum::http::HeaderName::from_bytes(keyed.as_bytes())
                                .expect("header name"),
                            value,
                        );
                    }
                }
                take(headers, "retry-after-ms");
                if headers.remove("retry-after").is_some() {
                    let whole = window.as_secs_f64().ceil().to_string();
                    headers.insert("retry-after", header_value(&whole));
                }
            }
        }
    }
}
