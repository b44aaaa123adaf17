//! The ServiceNow parser on any body, with a real sender's headers. Seed the corpus with the
//! fixtures: `cp ../workers/ingest/tests/fixtures/servicenow/*.json corpus/parse_servicenow/`.
#![no_main]

use chatgptd_worker_ingest::Source;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    chatgptd_fuzz::parse(
        Source::ServiceNow,
        &chatgptd_fuzz::sender_headers(Source::ServiceNow),
        body,
    );
});
