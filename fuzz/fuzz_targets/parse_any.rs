//! Any source's parser on any headers and body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|webhook: chatgptd_fuzz::Webhook| {
    chatgptd_fuzz::parse(webhook.source(), &webhook.header_map(), &webhook.body);
});
