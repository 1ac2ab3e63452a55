#![no_main]
//! cargo-fuzz entry point for `osc_harness::fuzz_targets::response_opener`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| osc_harness::fuzz_targets::response_opener(data));
