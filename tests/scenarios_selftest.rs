//! The suite tests itself against the in-process reference server: honest
//! passes everything; each knob is caught by exactly the scenarios that
//! declare it.

use std::collections::BTreeSet;

use osc_harness::report::Verdict;
use osc_harness::scenarios::builtin::BUILTIN;
use osc_harness::scenarios::loader;
use osc_harness::scenarios::registry::Registry;
use osc_harness::scenarios::runner::run_suite;
use osc_harness::scenarios::selftest::{
    render_matrix, run_matrix, self_config, spawn_self, uncaught,
};
use osc_harness::selftest::selftest_doc;

#[test]
fn every_scenario_file_is_built_in() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.ends_with(".toml").then_some(name)
        })
        .collect();
    let built_in: BTreeSet<String> = BUILTIN.iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(
        on_disk, built_in,
        "src/scenarios/builtin.rs must list every scenarios/*.toml"
    );
}

#[test]
fn selftest_doc_is_up_to_date() {
    let registry = Registry::builtin();
    let scenarios = loader::load(None, &registry).unwrap();
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/SELFTEST.md")).unwrap();
    assert_eq!(
        doc,
        selftest_doc(&scenarios),
        "docs/SELFTEST.md is stale: run `osc-harness selftest --write-doc docs/SELFTEST.md`"
    );
}

#[test]
fn every_knob_is_declared_and_names_exist() {
    let registry = Registry::builtin();
    let scenarios = loader::load(None, &registry).unwrap();
    assert!(
        uncaught(&scenarios).is_empty(),
        "knobs no scenario declares: {:?}",
        uncaught(&scenarios)
    );
    for s in &scenarios {
        for c in &s.catches {
            assert!(
                osc_harness::server::Bug::from_name(c).is_some(),
                "{} declares unknown knob {c}",
                s.id
            );
        }
    }
}

#[test]
fn every_server_must_has_a_declared_killing_knob() {
    let registry = Registry::builtin();
    let scenarios = loader::load(None, &registry).unwrap();
    let killers = osc_harness::scenarios::selftest::must_killers(&scenarios);
    assert!(killers.len() >= 30, "{} server MUSTs", killers.len());
    let bare: Vec<&String> = killers
        .iter()
        .filter(|(_, k)| k.is_empty())
        .map(|(id, _)| id)
        .collect();
    assert!(
        bare.is_empty(),
        "server MUSTs no declared knob breaks: {bare:?}"
    );
}

#[test]
fn client_only_knobs_are_left_to_client_scenarios() {
    use osc_harness::knobs::CaughtBy;
    use osc_harness::scenarios::selftest::suite_knobs;
    use osc_harness::server::Bug;
    let registry = Registry::builtin();
    let scenarios = loader::load(None, &registry).unwrap();
    let clients = osc_harness::clientrole::builtin().unwrap();
    let client_only: Vec<Bug> = Bug::ALL
        .iter()
        .copied()
        .filter(|b| b.caught_by() == CaughtBy::ClientSuite)
        .collect();
    assert!(!client_only.is_empty());
    for bug in client_only {
        assert!(!suite_knobs().contains(&bug), "{bug} is not a suite knob");
        assert!(
            !scenarios
                .iter()
                .any(|s| s.catches.iter().any(|c| c == bug.name())),
            "no server scenario declares {bug}"
        );
        assert!(
            clients
                .iter()
                .any(|s| s.server_bugs.iter().any(|b| b == bug.name())),
            "a client scenario's adversary runs with {bug}"
        );
    }
}

#[test]
fn the_knob_registry_has_one_row_per_knob() {
    use osc_harness::knobs::{CaughtBy, Role};
    let protocol =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/PROTOCOL.md")).unwrap();
    let rows = osc_harness::selftest::registry();
    let mut seen = BTreeSet::new();
    for row in &rows {
        assert!(
            seen.insert((row.role, row.name)),
            "{} listed twice",
            row.name
        );
        for id in row.requirement.split(", ").filter(|id| !id.is_empty()) {
            assert!(
                protocol.contains(&format!("**{id}**")),
                "{}: {id} is not in docs/PROTOCOL.md",
                row.name
            );
        }
        match row.role {
            Role::Server => assert!(!row.requirement.is_empty() && row.caught_by != CaughtBy::Mitm),
            Role::Client => assert_eq!(row.caught_by, CaughtBy::ClientSuite, "{}", row.name),
            Role::Relay => assert!(
                matches!(row.caught_by, CaughtBy::Mitm | CaughtBy::ClientSuite),
                "{}",
                row.name
            ),
        }
    }
    let count = |role| rows.iter().filter(|r| r.role == role).count();
    assert_eq!(
        (count(Role::Server), count(Role::Client), count(Role::Relay)),
        (52, 14, 15)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_self_passes_everything_with_transcripts() {
    let registry = Registry::builtin();
    let scenarios = loader::load(None, &registry).unwrap();
    let server = spawn_self(&[]).await.unwrap();
    let cfg = self_config(&server, false).unwrap();
    let key = server.access_key.clone();
    let report = run_suite(std::sync::Arc::new(cfg), &scenarios, &registry, &|_| {}).await;
    for r in &report.scenarios {
        assert_eq!(r.verdict, Verdict::Pass, "{}: {:?}", r.id, r.reason);
        assert!(!r.transcript.is_empty(), "{} recorded no exchange", r.id);
    }
    assert_eq!(report.exit_code(false), 0);
    // Every MUST requirement is exercised, so --strict passes too.
    let cov = report.must_coverage();
    assert!(cov.not_exercised.is_empty(), "{cov:?}");
    assert_eq!(cov.exercised, cov.total);
    assert_eq!(report.exit_code(true), 0);
    let json = osc_harness::report::render_json(&report);
    assert!(
        !json.contains(&key),
        "the access key leaked into the JSON report"
    );
    assert!(json.contains("<redacted>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_knob_is_caught_by_exactly_its_scenarios() {
    let registry = Registry::builtin();
    let scenarios = loader::load(None, &registry).unwrap();
    let rows = run_matrix(&scenarios, &registry, 3).await;
    let table = render_matrix(&rows, &scenarios);
    for r in &rows {
        assert!(r.ok(), "selftest row {} is wrong:\n{table}", r.name());
    }
    assert_eq!(
        rows.len(),
        osc_harness::scenarios::selftest::suite_knobs().len() + 1
    );
    let unkilled = osc_harness::scenarios::selftest::unkilled_musts(&rows);
    assert!(
        unkilled.is_empty(),
        "server MUSTs no knob was shown to break: {unkilled:?}"
    );
    // The HTML kill matrix of the same run: a row per knob, all right, and
    // a caught cell per declaration.
    let matrix = osc_harness::scenarios::selftest::kill_matrix(&rows, &scenarios);
    let html = osc_harness::report::html::render_selftest_html(&[matrix]);
    for r in &rows {
        assert!(html.contains(r.name()), "{}", r.name());
    }
    assert!(html.contains(&format!("<b>{}</b> rows ok", rows.len())));
    let declared: usize = rows.iter().map(|r| r.declared.len()).sum();
    assert_eq!(html.matches("caught (declared, failed)").count(), declared);
}
