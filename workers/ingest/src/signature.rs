//! HMAC-SHA256 webhook signatures over the raw body, compared in constant time
//! (`Mac::verify_slice`), so a forger learns nothing from how long a refusal takes.
//!
//! - Jira and GitHub: `sha256=<lowercase hex>` (`X-Hub-Signature`, `X-Hub-Signature-256`).
//! - ServiceNow: the base64 MAC of `CertificateEncryption.generateMac`, in a configured header.
//!
//! The signing functions are public so senders in tests and benchmarks sign the way the real
//! ones do.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The prefix of hex signatures.
const HEX_PREFIX: &str = "sha256=";

/// Why a signature was refused; the answer is 401 either way, this is for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The header is absent.
    Missing,
    /// The header is not in the expected format.
    Malformed,
    /// The MAC does not match the body.
    Mismatch,
}

impl Refusal {
    /// For the JSON error body.
    pub fn detail(self) -> &'static str {
        match self {
            Refusal::Missing => "the signature header is missing",
            Refusal::Malformed => "the signature header is malformed",
            Refusal::Mismatch => "the signature does not match the body",
        }
    }
}

fn mac(secret: &[u8], body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    mac
}

/// `sha256=<hex>` of `body`, as Jira and GitHub send it.
pub fn sign_hex(secret: &[u8], body: &[u8]) -> String {
    format!(
        "{HEX_PREFIX}{}",
        hex::encode(mac(secret, body).finalize().into_bytes())
    )
}

/// The base64 MAC of `body`, as a ServiceNow Business Rule computes it.
pub fn sign_base64(secret: &[u8], body: &[u8]) -> String {
    BASE64.encode(mac(secret, body).finalize().into_bytes())
}

/// Checks a `sha256=<hex>` header value.
pub fn verify_hex(secret: &[u8], body: &[u8], header: Option<&[u8]>) -> Result<(), Refusal> {
    let header = header.ok_or(Refusal::Missing)?;
    let hex_part = header
        .strip_prefix(HEX_PREFIX.as_bytes())
        .ok_or(Refusal::Malformed)?;
    let expected = hex::decode(hex_part.trim_ascii()).map_err(|_| Refusal::Malformed)?;
    mac(secret, body)
        .verify_slice(&expected)
        .map_err(|_| Refusal::Mismatch)
}

/// Checks a base64 header value.
pub fn verify_base64(secret: &[u8], body: &[u8], header: Option<&[u8]>) -> Result<(), Refusal> {
    let header = header.ok_or(Refusal::Missing)?;
    let expected = BASE64
        .decode(header.trim_ascii())
        .map_err(|_| Refusal::Malformed)?;
    mac(secret, body)
        .verify_slice(&expected)
        .map_err(|_| Refusal::Mismatch)
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    const GITHUB_SECRET: &[u8] = b"It's a Secret to Everybody";
    const GITHUB_BODY: &[u8] = b"Hello, World!";
    const GITHUB_SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn githubs_published_vector_passes() {
        assert_eq!(sign_hex(GITHUB_SECRET, GITHUB_BODY), GITHUB_SIGNATURE);
        assert_eq!(
            verify_hex(
                GITHUB_SECRET,
                GITHUB_BODY,
                Some(GITHUB_SIGNATURE.as_bytes())
            ),
            Ok(())
        );
    }

    #[test]
    fn wrong_missing_and_malformed_signatures_are_refused() {
        let verify = |header: Option<&str>| {
            verify_hex(GITHUB_SECRET, GITHUB_BODY, header.map(str::as_bytes))
        };
        assert_eq!(verify(None), Err(Refusal::Missing));
        assert_eq!(
            verify(Some(&GITHUB_SIGNATURE.replace("sha256=", "sha1="))),
            Err(Refusal::Malformed)
        );
        assert_eq!(verify(Some("sha256=zz")), Err(Refusal::Malformed));
        assert_eq!(
            verify(Some(&GITHUB_SIGNATURE.replace("757107", "757108"))),
            Err(Refusal::Mismatch)
        );
        assert_eq!(verify(Some("sha256=757107ea")), Err(Refusal::Mismatch));
        let other_body = verify_hex(
            GITHUB_SECRET,
            b"Hello, World?",
            Some(GITHUB_SIGNATURE.as_bytes()),
        );
        assert_eq!(other_body, Err(Refusal::Mismatch));
    }

    #[test]
    fn base64_signatures_round_trip() {
        let signature = sign_base64(GITHUB_SECRET, GITHUB_BODY);
        // The same MAC as the hex vector, base64-encoded.
        let from_hex = BASE64.encode(hex::decode(&GITHUB_SIGNATURE[7..]).unwrap());
        assert_eq!(signature, from_hex);
        assert_eq!(
            verify_base64(GITHUB_SECRET, GITHUB_BODY, Some(signature.as_bytes())),
            Ok(())
        );
        assert_eq!(
            verify_base64(b"other key", GITHUB_BODY, Some(signature.as_bytes())),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            verify_base64(GITHUB_SECRET, GITHUB_BODY, Some(b"not base64!")),
            Err(Refusal::Malformed)
        );
    }
}
