//! The suite's small parts: requirement registry, selection patterns,
//! the loader's error positions and expectation files.

use osc_harness::report::expect::{apply_expectations, write_expectations};
use osc_harness::report::{RunReport, ScenarioResult, Verdict};
use osc_harness::scenarios::loader::{parse_scenario, LoadError};
use osc_harness::scenarios::registry::Registry;
use osc_harness::scenarios::runner::{glob, select};

#[test]
fn registry_reads_bullets_with_levels_only() {
    let doc = "intro\n- **ENC-1** (MUST): text\n  - **ID-9** (SHOULD): nested counts too\n- **Agent** — a term, not a requirement\n- **GATE-5** (UPSTREAM): x\n- **X-1** (MAYBE): no\n";
    let r = Registry::parse(doc);
    let ids: Vec<(&str, &str)> = r
        .requirements
        .iter()
        .map(|r| (r.id.as_str(), r.level.as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            ("ENC-1", "MUST"),
            ("ID-9", "SHOULD"),
            ("GATE-5", "UPSTREAM")
        ]
    );
    let builtin = Registry::builtin();
    assert!(builtin.requirements.len() > 40);
    assert!(builtin.contains("CALL-8") && !builtin.contains("CALL-99"));
    assert!(builtin.vector_ids().contains(&"KS-2".to_string()));
}

#[test]
fn glob_patterns() {
    assert!(glob("replay-*", "replay-window"));
    assert!(glob("*window", "replay-window"));
    assert!(glob("r*-w*", "replay-window"));
    assert!(glob("CALL-3", "call-3"));
    assert!(!glob("replay-*", "mitm-replay"));
    assert!(!glob("CALL-3", "CALL-30"));
}

fn scenario(text: &str) -> Result<osc_harness::scenarios::model::Scenario, LoadError> {
    parse_scenario("t.toml", text, &Registry::builtin())
}

const HEAD: &str = "id = \"a\"\ntitle = \"t\"\ncategory = \"replay\"\nlevel = \"MUST\"\nrequirements = [\"CALL-3\"]\n";

#[test]
fn loader_errors_name_line_and_field() {
    let bad_level = HEAD.replace("MUST", "MAYBE") + "[[step]]\ndo = \"call\"\n";
    let e = scenario(&bad_level).unwrap_err().to_string();
    assert!(e.starts_with("t.toml:4:"), "{e}");

    let bad_expect = format!("{HEAD}[[step]]\ndo = \"call\"\nexpect = {{ stauts = 200 }}\n");
    let e = scenario(&bad_expect).unwrap_err().to_string();
    assert!(e.starts_with("t.toml:8:") && e.contains("stauts"), "{e}");

    let bad_action = format!("{HEAD}[[step]]\ndo = \"teleport\"\n");
    let e = scenario(&bad_action).unwrap_err().to_string();
    assert!(e.starts_with("t.toml:7:") && e.contains("teleport"), "{e}");

    let no_steps = HEAD.to_string();
    assert!(scenario(&no_steps).is_err());

    let ok = format!("{HEAD}[[step]]\ndo = \"handshake\"\n[[step]]\ndo = \"call\"\nseq = 5\n");
    let s = scenario(&ok).unwrap();
    assert_eq!(s.steps.len(), 2);
    let osc_harness::scenarios::model::Step::Call(call) = &s.steps[1] else {
        panic!("{:?}", s.steps[1]);
    };
    assert_eq!(call.seq, Some(5));
}

#[test]
fn selection_by_id_category_and_requirement() {
    let all = osc_harness::scenarios::loader::load(None, &Registry::builtin()).unwrap();
    let n = all.len();
    let by_cat = select(all.clone(), &["replay".into()], &[]);
    assert!(!by_cat.is_empty() && by_cat.iter().all(|s| s.category == "replay"));
    let by_req = select(all.clone(), &["CALL-8".into()], &[]);
    assert_eq!(
        by_req.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["inside-no-nesting"]
    );
    let skipped = select(all.clone(), &[], &["replay".into()]);
    assert_eq!(skipped.len() + by_cat.len(), n);
    assert!(select(all, &["nothing-like-this".into()], &[]).is_empty());
}

fn result(id: &str, verdict: Verdict) -> ScenarioResult {
    ScenarioResult {
        id: id.into(),
        title: "t".into(),
        category: "c".into(),
        level: "MUST".into(),
        requirements: vec!["CALL-3".into()],
        verdict,
        reason: Some("why".into()),
        expected: None,
        repro: None,
        precondition: false,
        known: false,
        duration_ms: 0,
        transcript: Vec::new(),
    }
}

fn report(results: Vec<ScenarioResult>) -> RunReport {
    RunReport {
        target: "self".into(),
        insecure: false,
        duration_ms: 0,
        scenarios: results,
        not_exercised: Vec::new(),
        run_problems: Vec::new(),
    }
}

#[test]
fn expectations_round_trip_and_catch_drift() {
    let failing = report(vec![
        result("a", Verdict::Fail),
        result("b", Verdict::Warn),
        result("c", Verdict::Pass),
    ]);
    assert_eq!(failing.exit_code(false), 1);
    let file = write_expectations(&failing);

    let mut same = failing.clone();
    apply_expectations(&mut same, &file).unwrap();
    assert!(same.run_problems.is_empty(), "{:?}", same.run_problems);
    assert_eq!(same.exit_code(true), 0);

    // a now passes, b changed kind, and an entry names nothing.
    let mut drifted = report(vec![result("a", Verdict::Pass), result("b", Verdict::Fail)]);
    let file = format!("{file}\n[[known]]\nid = \"ghost\"\nverdict = \"fail\"\nreason = \"x\"\n");
    apply_expectations(&mut drifted, &file).unwrap();
    let problems = drifted.run_problems.join("\n");
    assert!(
        problems.contains("a is listed as a known fail but now passes"),
        "{problems}"
    );
    assert!(
        problems.contains("b is listed as a known warn but is now fail"),
        "{problems}"
    );
    assert!(
        problems.contains("\"ghost\" matches no scenario"),
        "{problems}"
    );
    assert_eq!(drifted.exit_code(false), 1);

    assert!(apply_expectations(&mut report(Vec::new()), "[[known]]\nid = 3\n").is_err());
}

#[test]
fn warnings_and_information_fail_only_under_strict() {
    let r = report(vec![
        result("a", Verdict::Warn),
        result("b", Verdict::Info),
        result("c", Verdict::Skip),
    ]);
    assert_eq!(r.exit_code(false), 0);
    assert_eq!(r.exit_code(true), 1);
}

#[test]
fn must_coverage_counts_only_scenarios_that_reached_their_step() {
    let mut reached = result("a", Verdict::Pass);
    reached.requirements = vec!["CALL-3".into(), "HS-8".into()];
    let mut skipped = result("b", Verdict::Skip);
    skipped.requirements = vec!["GATE-1".into()];
    let mut setup_broke = result("c", Verdict::Fail);
    setup_broke.requirements = vec!["RESP-3".into()];
    setup_broke.precondition = true;
    let results = vec![reached, skipped, setup_broke];
    let scope = ["CALL-3", "GATE-1", "RESP-3", "HS-8", "LIM-1"];
    let mut r = report(results.clone());
    r.not_exercised = osc_harness::report::not_exercised(&results, scope);
    assert_eq!(r.not_exercised, ["GATE-1", "RESP-3", "LIM-1"]);
    let cov = r.must_coverage();
    // HS-8 and LIM-1 are not MUSTs: only CALL-3, GATE-1 and RESP-3 count.
    assert_eq!((cov.exercised, cov.total), (1, 3));
    // In the protocol document's order.
    assert_eq!(cov.not_exercised, ["RESP-3", "GATE-1"]);
    assert_eq!(cov.headline(), "MUST requirements exercised: 1 of 3");
}

#[test]
fn strict_fails_a_clean_run_that_left_a_must_unexercised() {
    let mut r = report(vec![result("a", Verdict::Pass)]);
    assert_eq!(r.exit_code(true), 0, "nothing in scope is missing");
    r.not_exercised = vec!["GATE-1".into(), "LIM-1".into()];
    assert_eq!(
        r.exit_code(false),
        0,
        "coverage alone never fails a plain run"
    );
    assert_eq!(r.exit_code(true), 1);
    // An UPSTREAM requirement left out is not enough.
    r.not_exercised = vec!["LIM-1".into()];
    assert_eq!(r.exit_code(true), 0);
}
