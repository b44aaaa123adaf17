//! Small conversions both backends share.

use std::time::Duration;

use crate::Error;

/// The longest expiry we pass on (about 1000 years): far beyond any real TTL, and small
/// enough that Redis accepts it and `now + ttl` fits an `i64` of milliseconds.
const MAX_TTL_MS: u64 = 1000 * 365 * 24 * 3600 * 1000;

/// `ttl` in milliseconds: `0` for none, at least `1` otherwise (a zero TTL still expires
/// rather than meaning "forever").
pub(crate) fn ttl_millis(ttl: Option<Duration>) -> u64 {
    match ttl {
        None => 0,
        Some(ttl) => u64::try_from(ttl.as_millis())
            .unwrap_or(MAX_TTL_MS)
            .clamp(1, MAX_TTL_MS),
    }
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|err| Error::Backend(format!("encoding JSON: {err}")))
}

/// Decodes what `backend` stored; a failure means the stored value is corrupt.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    backend: &str,
    text: &str,
) -> Result<T, Error> {
    serde_json::from_str(text)
        .map_err(|err| Error::Backend(format!("corrupt JSON in {backend}: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_millis_keeps_none_apart_from_zero() {
        assert_eq!(ttl_millis(None), 0);
        assert_eq!(ttl_millis(Some(Duration::ZERO)), 1);
        assert_eq!(ttl_millis(Some(Duration::from_millis(1500))), 1500);
        assert_eq!(ttl_millis(Some(Duration::MAX)), MAX_TTL_MS);
    }
}
