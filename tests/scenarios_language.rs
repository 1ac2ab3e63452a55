//! Scenario files in the edit language: every step of every built-in
//! scenario converts to a step of the language and back, and a file that
//! uses the suite's fuller forms (a hello field edit, an inner header, a
//! man in the middle's verify) converts to the steps it says and runs
//! green against the honest reference and red against the knob it is for.

use std::collections::BTreeMap;
use std::sync::Arc;

use osc_harness::peer::edit::{
    Auth, CallStep, HelloEdit, HelloStep, Inner, InnerSpec, Step as Edit, Wait,
};
use osc_harness::report::Verdict;
use osc_harness::scenarios::loader::{self, parse_scenario};
use osc_harness::scenarios::model::{Expect, LanguageStep, Scenario, Step};
use osc_harness::scenarios::registry::Registry;
use osc_harness::scenarios::runner::run_suite;
use osc_harness::scenarios::selftest::{self_config, spawn_self};
use osc_harness::server::Bug;

const MIXED: &str = r#"
id = "language-mixed"
title = "A hello field edit, a verify and an inner header in one file"
category = "mitm"
level = "MUST"
requirements = ["HS-2", "HS-4"]

[[step]]
do = "handshake"
session = "v2"
hello = [{ edit = "set", field = "v", json = "2" }]
expect = { status = 400, error = "Unsupported secure channel version" }

[[step]]
do = "handshake"
expect = { status = 200, verifies = true }

[[step]]
do = "verify"
edit = "encPub"
expect = { verifies = false }

[[step]]
do = "call"
method = "POST"
path = "/agents/{agent}/run"
body = '{"input":"headers"}'
headers = { "X-Example" = "kept" }
expect = { status = 200, inner_status = 200, inner_contains = "kept" }

[[step]]
do = "wait"
seconds = "expiry"
"#;

fn mixed() -> Scenario {
    parse_scenario("mixed.toml", MIXED, &Registry::builtin()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_file_of_the_suites_forms_converts_to_the_steps_it_says() {
    let steps: Vec<LanguageStep> = mixed().steps.iter().map(Step::to_language).collect();
    assert_eq!(steps[0].session, "v2");
    assert_eq!(
        steps[0].step,
        Edit::Hello(HelloStep {
            edits: vec![HelloEdit::Set {
                field: "v".into(),
                json: "2".into()
            }],
            shared: false,
        })
    );
    assert_eq!(steps[0].expect.as_ref().and_then(|e| e.status), Some(400));
    assert_eq!(steps[1].step, Edit::Hello(HelloStep::default()));
    assert_eq!(
        steps[2].step,
        Edit::Verify {
            edit: Some("encPub".into()),
            without: None
        }
    );
    let inner = InnerSpec {
        method: "POST".into(),
        path: "/agents/{agent}/run".into(),
        auth: Auth::Key,
        headers: BTreeMap::from([("X-Example".to_string(), "kept".to_string())]),
        body: Some(r#"{"input":"headers"}"#.into()),
        ..InnerSpec::default()
    };
    assert_eq!(
        steps[3].step,
        Edit::Call(CallStep::honest(Inner::Custom(Box::new(inner))))
    );
    assert_eq!(steps[4].step, Edit::Wait(Wait::Expiry));
    // Only the fuzzer's part of the language is a fuzz step.
    assert!(mixed().steps.iter().all(|s| s.edit_step().is_none()));
}

#[test]
fn the_short_keys_and_the_language_form_say_the_same_hello() {
    let short = MIXED.replace(
        r#"hello = [{ edit = "set", field = "v", json = "2" }]"#,
        r#"version = "2""#,
    );
    let short = parse_scenario("short.toml", &short, &Registry::builtin()).unwrap();
    assert_eq!(short.steps[0].to_language(), mixed().steps[0].to_language());
    let low = MIXED.replace(
        r#"hello = [{ edit = "set", field = "v", json = "2" }]"#,
        "low_order = 3\nnonce = \"\"",
    );
    let low = parse_scenario("low.toml", &low, &Registry::builtin()).unwrap();
    assert_eq!(
        low.steps[0].to_language().step,
        Edit::Hello(HelloStep {
            edits: vec![
                HelloEdit::LowOrder { index: 3 },
                HelloEdit::Set {
                    field: "nonce".into(),
                    json: "\"\"".into()
                }
            ],
            shared: false,
        })
    );
}

#[test]
fn an_unknown_key_in_a_hello_edit_names_the_file_and_line() {
    let bad = MIXED.replace(r#"json = "2""#, r#"jsno = "2""#);
    let e = parse_scenario("bad.toml", &bad, &Registry::builtin())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("bad.toml:11:"), "{e}");
    assert!(e.contains("jsno"), "{e}");
    let bad = MIXED.replace(
        r#"headers = {"#,
        r#"inner = { kind = "custom", method = "GET", path = "/", auth = "key", heders = {} }
headers = {"#,
    );
    let e = parse_scenario("inner.toml", &bad, &Registry::builtin())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("inner.toml:"), "{e}");
}

#[test]
fn a_hello_field_edit_next_to_a_whole_body_is_a_load_error() {
    let both = MIXED.replace(r#"session = "v2""#, "session = \"v2\"\nraw_body = '{}'");
    let e = parse_scenario("both.toml", &both, &Registry::builtin())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("both.toml:12:") && e.contains("`hello` does not apply with `raw_body`"),
        "{e}"
    );
}

#[test]
fn every_builtin_step_goes_to_the_language_and_back() {
    let registry = Registry::builtin();
    let scenarios = loader::load(None, &registry).unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for scenario in scenarios.iter().chain([&mixed(), &rare()]) {
        let back: Vec<Step> = scenario
            .steps
            .iter()
            .map(|s| {
                let l = s.to_language();
                kinds.insert(
                    format!("{:?}", l.step)
                        .split([' ', '('])
                        .next()
                        .unwrap()
                        .to_owned(),
                );
                Step::from_language(&l.session, &l.step, l.expect.clone())
            })
            .collect();
        let written = Scenario {
            steps: back,
            ..scenario.clone()
        };
        // Written in the language's form, the file loads back to the same
        // steps of the language.
        let text = written.to_toml(&[]).unwrap();
        let loaded = parse_scenario("back.toml", &text, &registry)
            .unwrap_or_else(|e| panic!("{}: {e}\n{text}", scenario.id));
        let language = |s: &Scenario| s.steps.iter().map(Step::to_language).collect::<Vec<_>>();
        assert_eq!(
            language(&loaded),
            language(scenario),
            "{}\n{text}",
            scenario.id
        );
    }
    // The built-in files reach every kind of step of the language.
    for kind in [
        "Hello",
        "Handshake",
        "Verify",
        "Freshness",
        "Call",
        "Resend",
        "ResendSaved",
        "Wait",
        "Plain",
        "Flood",
        "Blind",
        "CallAfterExpiry",
        "CallAfterExpiryRelay",
    ] {
        assert!(
            kinds.contains(kind),
            "no built-in step is a {kind}: {kinds:?}"
        );
    }
}

/// The kinds and fields no built-in file uses, in the language's form.
fn rare() -> Scenario {
    let mut call = CallStep::honest(Inner::honest_run());
    call.seal_with = Some("other".into());
    call.relay = Some(false);
    call.save = Some("kept".into());
    let steps = [
        Edit::Hello(HelloStep {
            edits: vec![
                HelloEdit::Remove {
                    field: "nonce".into(),
                },
                HelloEdit::LowOrder { index: 1 },
            ],
            shared: true,
        }),
        Edit::Call(call),
        Edit::Resend,
        Edit::CallAfterExpiry,
        Edit::CallAfterExpiryRelay { relay: false },
        Edit::Plain {
            method: "GET".into(),
            path: "/health".into(),
            with_key: false,
            body: String::new(),
            headers: BTreeMap::from([("X-A".to_string(), "{key}".to_string())]),
            authorization: Some("Basic x".into()),
            relay: Some(false),
        },
        Edit::Wait(Wait::Seconds { secs: 2 }),
    ];
    Scenario {
        id: "rare".into(),
        steps: steps
            .iter()
            .map(|s| Step::from_language("side", s, None))
            .collect(),
        ..mixed()
    }
}

async fn verdict(bugs: &[Bug]) -> (Verdict, Option<String>) {
    let registry = Registry::builtin();
    let server = spawn_self(bugs).await.unwrap();
    let cfg = self_config(&server, true).unwrap();
    let mut scenario = mixed();
    // The expiry wait is not this test's subject.
    scenario.steps.pop();
    let report = run_suite(Arc::new(cfg), &[scenario], &registry, &|_| {}).await;
    server.shutdown().await;
    let r = &report.scenarios[0];
    (r.verdict, r.reason.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_runs_green_on_the_reference_and_red_on_each_knob_it_covers() {
    let (honest, why) = verdict(&[]).await;
    assert_eq!(honest, Verdict::Pass, "{why:?}");
    for bug in [
        Bug::HelloVersionUnchecked,
        Bug::TranscriptFieldUnsigned,
        Bug::ChannelRunGated,
    ] {
        let (v, why) = verdict(&[bug]).await;
        assert_eq!(v, Verdict::Fail, "{bug:?}: {why:?}");
    }
}

#[test]
fn an_expectation_survives_the_round_trip() {
    let expect = Expect {
        status: Some(409),
        ..Expect::default()
    };
    let step = Edit::ResendSaved {
        envelope: "captured".into(),
    };
    let file = Step::from_language("main", &step, Some(expect.clone()));
    let back = file.to_language();
    assert_eq!((back.step, back.expect), (step, Some(expect)));
}
