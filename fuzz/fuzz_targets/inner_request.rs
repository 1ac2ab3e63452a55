#![no_main]
//! cargo-fuzz entry point for `osc_harness::fuzz_targets::inner_request`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| osc_harness::fuzz_targets::inner_request(data));
