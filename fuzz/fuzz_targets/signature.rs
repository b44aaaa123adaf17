//! The hex and base64 HMAC checks on any secret, body and header value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: chatgptd_fuzz::SignatureCase| chatgptd_fuzz::signature(&case));
