//! Every Avro decoder on any bytes: a typed decode error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| chatgptd_fuzz::avro_decode(bytes));
