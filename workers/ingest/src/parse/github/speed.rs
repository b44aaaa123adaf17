//! The time `parse_body` takes on the GitHub fixture, the `Value` parser against this one, in
//! one run so both see the same machine. A measurement, printed and never asserted:
//!
//! `cargo test --release -p chatgptd-worker-ingest --lib parse::github::speed -- --ignored --nocapture`

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::de::IgnoredAny;

use super::super::proptests::sender_headers;
use super::super::{ParseError, Parsed, parse_body};
use super::oracle;
use crate::source::Source;

const FIXTURE: &[u8] =
    include_bytes!("../../../tests/fixtures/github/issues.opened.octokit-webhooks.json");
const ROUNDS: usize = 15;
const PER_ROUND: u32 = 2_000;

/// The median time of one call of `parse` over `ROUNDS` rounds.
fn median(mut parse: impl FnMut() -> Result<Parsed, ParseError>) -> Duration {
    let mut rounds: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..PER_ROUND {
                black_box(parse().unwrap());
            }
            started.elapsed() / PER_ROUND
        })
        .collect();
    rounds.sort();
    rounds[ROUNDS / 2]
}

#[test]
#[ignore = "a measurement: run it in release with --ignored --nocapture"]
fn value_parser_against_lenient_parser() {
    let headers = sender_headers(Source::GitHub, "issues");
    let at = 1_700_000_000_000;
    let old = || oracle::parse_body(&headers, black_box(FIXTURE), at);
    let new = || parse_body(Source::GitHub, &headers, black_box(FIXTURE), at, "");
    // Only skimming the body: a floor no parser that validates it goes below.
    let skim = || {
        let raw = std::str::from_utf8(black_box(FIXTURE)).unwrap();
        serde_json::from_str::<IgnoredAny>(raw).unwrap();
        Ok(Parsed::NotTicket {
            delivery_id: String::new(),
            event_type: String::new(),
        })
    };
    assert_eq!(old(), new());
    median(old);
    median(new);
    let (old, new, skim) = (median(old), median(new), median(skim));
    println!(
        "GitHub fixture ({} bytes), per parse_body: Value {old:?}, lenient {new:?} \
         ({:.2}x faster), skimming only {skim:?}",
        FIXTURE.len(),
        old.as_secs_f64() / new.as_secs_f64(),
    );
}
