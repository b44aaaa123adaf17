//! The Github parser on any body, with a real sender's headers. Seed the corpus with the
//! fixtures: `cp ../workers/ingest/tests/fixtures/github/*.json corpus/parse_github/`.
#![no_main]

use chatgptd_worker_ingest::Source;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    chatgptd_fuzz::parse(
        Source::GitHub,
        &chatgptd_fuzz::sender_headers(Source::GitHub),
        body,
    );
});
