//! The fuzzer's kill matrix: every server knob the matrix fuzzes is found
//! by a short seeded fuzz run against the reference server with that knob
//! (each stops at its first finding citing the knob's requirement), and
//! the README states the count the matrix promises.

use std::time::Duration;

use osc_harness::selftest::fuzz_matrix::{fuzzed_count, run_matrix, Reach};
use osc_harness::server::Bug;

#[test]
fn every_fuzzed_knob_is_found() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Small budgets, knobs in parallel: most are found in under a second;
    // the held request needs its slow-request limit (a third of this).
    let rows = rt.block_on(run_matrix(Duration::from_secs(20), 6, 1));
    assert_eq!(rows.len(), Bug::ALL.len());
    let missed: Vec<String> = rows
        .iter()
        .filter(|r| !r.ok())
        .map(|r| format!("{} ({}): {}", r.knob.name(), r.knob.requirement(), r.note))
        .collect();
    assert!(missed.is_empty(), "fuzzed knobs not found: {missed:#?}");
    let found = rows
        .iter()
        .filter(|r| r.reach == Reach::Fuzzed && r.found.is_some())
        .count();
    assert_eq!(found, fuzzed_count());
}

#[test]
fn the_readme_states_the_count() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let line = format!(
        "The fuzzer's kill matrix: a seeded fuzz run finds {} of the {} server knobs",
        fuzzed_count(),
        Bug::ALL.len()
    );
    assert!(
        readme.contains(&line),
        "README.md must say: {line} (the rest are listed with the reason)."
    );
}
