//! Property tests of the signature checks: any header value (absent, empty, non-ASCII,
//! wrong length, another prefix) is a [`Refusal`], never a panic, and the only values
//! accepted are encodings of the body's MAC under the secret. `PROPTEST_CASES=N` hunts
//! longer; the cargo-fuzz target `signature` (fuzz/) calls the same functions.

use proptest::prelude::*;
use proptest::sample::Index;

use crate::proptest_config as config;

use super::*;

fn digest(secret: &[u8], body: &[u8]) -> Vec<u8> {
    mac(secret, body).finalize().into_bytes().to_vec()
}

/// The spec of `verify_hex`: `sha256=` then the MAC in hex (either case), surrounding ASCII
/// whitespace allowed.
fn hex_is_correct(secret: &[u8], body: &[u8], header: &[u8]) -> bool {
    header
        .strip_prefix(b"sha256=")
        .and_then(|hex_part| hex::decode(hex_part.trim_ascii()).ok())
        .is_some_and(|sent| sent == digest(secret, body))
}

/// The spec of `verify_base64`: the MAC in standard padded base64, surrounding ASCII
/// whitespace allowed.
fn base64_is_correct(secret: &[u8], body: &[u8], header: &[u8]) -> bool {
    BASE64
        .decode(header.trim_ascii())
        .is_ok_and(|sent| sent == digest(secret, body))
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// Header values a sender, a proxy or an attacker might send.
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        bytes(96),
        any::<String>().prop_map(String::into_bytes),
        "(sha256=|SHA256=|sha1=|sha256 =| sha256=)?[0-9a-fA-F ]{0,70}".prop_map(String::into_bytes),
        "[A-Za-z0-9+/=_ -]{0,50}".prop_map(String::into_bytes),
        Just(Vec::new()),
        Just(b"sha256=".to_vec()),
    ]
}

/// A change to a correct signature.
#[derive(Debug, Clone)]
enum Edit {
    SetByte(Index, u8),
    Truncate(Index),
    Append(Vec<u8>),
    Prepend(Vec<u8>),
    Insert(Index, char),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Edit::SetByte(at, byte)),
        any::<Index>().prop_map(Edit::Truncate),
        bytes(8).prop_map(Edit::Append),
        bytes(8).prop_map(Edit::Prepend),
        (any::<Index>(), any::<char>()).prop_map(|(at, c)| Edit::Insert(at, c)),
    ]
}

fn apply(signature: &str, edit: Edit) -> Vec<u8> {
    let mut out = signature.as_bytes().to_vec();
    let len = out.len();
    match edit {
        Edit::SetByte(at, byte) => out[at.index(len)] = byte,
        Edit::Truncate(at) => out.truncate(at.index(len)),
        Edit::Append(extra) => out.extend_from_slice(&extra),
        Edit::Prepend(extra) => {
            out.splice(0..0, extra);
        }
        Edit::Insert(at, c) => {
            let at = at.index(len + 1);
            out.splice(at..at, c.to_string().into_bytes());
        }
    }
    out
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn a_signed_body_is_accepted(secret in bytes(80), body in bytes(512)) {
        let hex = sign_hex(&secret, &body);
        prop_assert_eq!(verify_hex(&secret, &body, Some(hex.as_bytes())), Ok(()));
        let base64 = sign_base64(&secret, &body);
        prop_assert_eq!(verify_base64(&secret, &body, Some(base64.as_bytes())), Ok(()));
    }

    #[test]
    fn any_header_is_accepted_only_if_it_is_the_mac(
        secret in bytes(40),
        body in bytes(128),
        header in header_value(),
    ) {
        let hex = verify_hex(&secret, &body, Some(&header));
        prop_assert_eq!(hex.is_ok(), hex_is_correct(&secret, &body, &header));
        if !header.starts_with(b"sha256=") {
            prop_assert_eq!(hex, Err(Refusal::Malformed));
        }
        let base64 = verify_base64(&secret, &body, Some(&header));
        prop_assert_eq!(base64.is_ok(), base64_is_correct(&secret, &body, &header));
    }

    #[test]
    fn an_edited_signature_is_refused_unless_it_still_encodes_the_mac(
        secret in bytes(40),
        body in bytes(128),
        edit in edit(),
    ) {
        let hex = apply(&sign_hex(&secret, &body), edit.clone());
        prop_assert_eq!(
            verify_hex(&secret, &body, Some(&hex)).is_ok(),
            hex_is_correct(&secret, &body, &hex)
        );
        let base64 = apply(&sign_base64(&secret, &body), edit);
        prop_assert_eq!(
            verify_base64(&secret, &body, Some(&base64)).is_ok(),
            base64_is_correct(&secret, &body, &base64)
        );
    }

    #[test]
    fn another_secret_or_body_is_a_mismatch(
        secret in bytes(40),
        other_secret in bytes(40),
        body in bytes(128),
        other_body in bytes(128),
    ) {
        let hex = sign_hex(&secret, &body);
        let base64 = sign_base64(&secret, &body);
        // HMAC pads keys shorter than the block with zeros: `k` and `k\0` are one key.
        let same_key = |a: &[u8], b: &[u8]| {
            let trim = |key: &[u8]| {
                let end = key.iter().rposition(|&byte| byte != 0).map_or(0, |at| at + 1);
                key[..end].to_vec()
            };
            trim(a) == trim(b)
        };
        if !same_key(&secret, &other_secret) {
            prop_assert_eq!(
                verify_hex(&other_secret, &body, Some(hex.as_bytes())),
                Err(Refusal::Mismatch)
            );
            prop_assert_eq!(
                verify_base64(&other_secret, &body, Some(base64.as_bytes())),
                Err(Refusal::Mismatch)
            );
        }
        if body != other_body {
            prop_assert_eq!(
                verify_hex(&secret, &other_body, Some(hex.as_bytes())),
                Err(Refusal::Mismatch)
            );
            prop_assert_eq!(
                verify_base64(&secret, &other_body, Some(base64.as_bytes())),
                Err(Refusal::Mismatch)
            );
        }
    }

    #[test]
    fn an_absent_header_is_missing(secret in bytes(40), body in bytes(128)) {
        prop_assert_eq!(verify_hex(&secret, &body, None), Err(Refusal::Missing));
        prop_assert_eq!(verify_base64(&secret, &body, None), Err(Refusal::Missing));
    }
}
