//! One edit language: every step the network fuzzer's generator can make
//! is written by `replay --to-scenario` as scenario TOML that loads back
//! to the same step, and a key that does not belong to a step's `do` is a
//! load error naming the file, line and key.

mod support;

use std::collections::BTreeSet;

use osc_harness::netfuzz::case::{
    ByteEdit, EnvelopeEdit, Finding, Framing, SeqAt, Signature, Step,
};
use osc_harness::netfuzz::gen::{Endpoints, Generator};
use osc_harness::scenarios::loader::parse_scenario;
use osc_harness::scenarios::registry::Registry;

/// The scenario file `replay --to-scenario` writes for `finding`, by the
/// crate's own writer.
fn render(finding: &Finding) -> Result<String, toml::ser::Error> {
    let (scenario, comments) = osc_harness::diff::cli::finding_scenario(finding);
    scenario.to_toml(&comments)
}

fn finding(steps: Vec<Step>, oracle: &str, layer: &str, field: &str) -> Finding {
    Finding {
        signature: Signature {
            oracle: oracle.into(),
            layer: layer.into(),
            field: field.into(),
        },
        detail: "seen".into(),
        seed: 1,
        case: 1,
        count: 1,
        steps,
        exchanges: Vec::new(),
        target: "self".into(),
        notes: Default::default(),
        shape: None,
        requirement: None,
        level: None,
    }
}

/// The kind of every part of a step, to show the cases cover each shape.
fn shapes(step: &Step, out: &mut BTreeSet<String>) {
    let name = |v: &dyn erased::Named| v.kind();
    match step {
        Step::Call(call) => {
            out.insert("call".into());
            out.insert(format!("inner:{}", name(&call.inner)));
            if call.seq.is_some() {
                out.insert("seq".into());
            }
            if let Some(at) = call.at {
                out.insert(format!("at:{}", name(&at)));
            }
            for e in &call.envelope {
                out.insert(format!("envelope:{}", name(e)));
            }
            for e in &call.bytes {
                out.insert(format!("bytes:{}", name(e)));
            }
            out.insert(format!("framing:{}", call.framing.name()));
        }
        other => {
            out.insert(name(other));
        }
    }
}

/// The serde tag of a value (`do`, `kind`, `seq`, `edit`).
mod erased {
    pub trait Named {
        fn kind(&self) -> String;
    }
    impl<T: serde::Serialize> Named for T {
        fn kind(&self) -> String {
            let v = serde_json::to_value(self).unwrap();
            for tag in ["do", "kind", "seq", "edit", "framing"] {
                if let Some(t) = v.get(tag).and_then(|t| t.as_str()) {
                    return t.to_string();
                }
            }
            v.to_string()
        }
    }
}

#[test]
fn every_generated_step_round_trips_through_a_scenario_file() {
    let registry = Registry::builtin();
    let all = Endpoints::parse("session,call,plaintext").unwrap();
    let mut seen = BTreeSet::new();
    let mut cases = 0;
    for seed in 0..4u64 {
        let mut generator = Generator::new(seed, 0, all);
        for i in 0..1500 {
            let mut steps = generator.case();
            if i % 2 == 1 {
                steps = generator.mutate(steps);
            }
            for s in &steps {
                shapes(s, &mut seen);
            }
            let text = render(&finding(steps.clone(), "server-error", "envelope", "ct")).unwrap();
            let scenario = parse_scenario("case.toml", &text, &registry)
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert!(scenario.steps[0].edit_step().is_none(), "{text}");
            let loaded: Vec<Step> = scenario.steps[1..]
                .iter()
                .map(|s| s.edit_step().unwrap_or_else(|| panic!("{s:?}\n{text}")))
                .collect();
            assert_eq!(loaded, steps, "{text}");
            assert!(
                scenario.steps[1..].iter().all(|s| s.expect().is_some()),
                "{text}"
            );
            cases += 1;
        }
    }
    assert_eq!(cases, 6000);
    // Every shape the generator makes was among them.
    let want = [
        "call",
        "resend",
        "call-after-expiry",
        "handshake",
        "plain",
        "inner:request",
        "inner:plaintext",
        "seq",
        "at:ahead",
        "at:behind",
        "at:same",
        "envelope:flip-ct",
        "envelope:flip-tag",
        "envelope:set",
        "envelope:remove",
        "envelope:duplicate",
        "bytes:truncate",
        "bytes:set",
        "bytes:insert",
        "framing:normal",
        "framing:content-length-lie",
        "framing:content-length-short",
        "framing:chunked",
        "framing:chunked-bad-size",
        "framing:chunked-unterminated",
        "framing:length-and-chunked",
    ];
    for w in want {
        assert!(seen.contains(w), "no {w} in {seen:?}");
    }
}

#[test]
fn edge_values_round_trip() {
    // Seqs beyond TOML's integers, a XOR kept for old findings, text that
    // needs escaping, and an authorization given as text.
    let mut call = Generator::valid_call();
    call.seq = Some(u64::MAX);
    call.bytes = vec![
        ByteEdit::Xor { at: 3, mask: 0x80 },
        ByteEdit::Insert {
            at: 1,
            text: "\"\u{0}\\\n]]\u{7f}é".into(),
        },
    ];
    call.envelope = vec![EnvelopeEdit::Set {
        field: "odd key \"x\"".into(),
        json: "\"\\ud800\"".into(),
        invalid: true,
    }];
    call.framing = Framing::Chunked { size: 0 };
    call.inner = osc_harness::netfuzz::case::Inner::Request {
        method: "GET".into(),
        path: "/agents/{agent}/run".into(),
        auth: osc_harness::netfuzz::case::Auth::Text("Bearer [[step]]".into()),
        body: None,
    };
    let mut behind = Generator::valid_call();
    behind.at = Some(SeqAt::Behind { by: 64 });
    let steps = vec![Step::Call(call), Step::Call(behind), Step::Resend];
    let text = render(&finding(
        steps.clone(),
        "dropped-connection",
        "bytes",
        "body",
    ))
    .unwrap();
    let scenario = parse_scenario("edge.toml", &text, &Registry::builtin())
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let loaded: Vec<Step> = scenario.steps[1..]
        .iter()
        .map(|s| s.edit_step().expect("an edit-language step"))
        .collect();
    assert_eq!(loaded, steps, "{text}");
}

const HEAD: &str = "id = \"a\"\ntitle = \"t\"\ncategory = \"tamper\"\nlevel = \"MUST\"\nrequirements = [\"CALL-2\"]\n";

fn load_error(text: &str) -> String {
    parse_scenario("dir/x.toml", text, &Registry::builtin())
        .expect_err("a load error")
        .to_string()
}

#[test]
fn misplaced_and_unknown_keys_name_file_line_and_key() {
    // `framing` applies to calls only.
    let text = format!(
        "{HEAD}\n[[step]]\ndo = \"handshake\"\n\n[[step]]\ndo = \"resend\"\nframing = {{ framing = \"chunked\", size = 2 }}\n"
    );
    let e = load_error(&text);
    assert!(e.starts_with("dir/x.toml:12:"), "{e}");
    assert!(e.contains("`framing`") && e.contains("resend"), "{e}");

    // `count` does not belong to a call.
    let text = format!("{HEAD}[[step]]\ndo = \"call\"\nseq = 3\ncount = 2\n");
    let e = load_error(&text);
    assert!(
        e.starts_with("dir/x.toml:9:") && e.contains("`count`"),
        "{e}"
    );

    // A key nobody knows.
    let text = format!("{HEAD}[[step]]\ndo = \"call\"\nbtyes = []\n");
    let e = load_error(&text);
    assert!(e.starts_with("dir/x.toml:8:") && e.contains("btyes"), "{e}");

    // An unknown key inside an edit.
    let text = format!(
        "{HEAD}[[step]]\ndo = \"call\"\ninner = {{ kind = \"plaintext\", text = \"x\" }}\nbytes = [{{ edit = \"truncate\", kepe = 3 }}]\n"
    );
    let e = load_error(&text);
    assert!(e.starts_with("dir/x.toml:9:"), "{e}");

    // The short forms of the inner request do not go with `inner`.
    let text = format!(
        "{HEAD}[[step]]\ndo = \"call\"\ninner = {{ kind = \"plaintext\", text = \"x\" }}\nmethod = \"GET\"\n"
    );
    let e = load_error(&text);
    assert!(
        e.starts_with("dir/x.toml:9:") && e.contains("`method`"),
        "{e}"
    );

    // `envelope` is a name on resend and a list of edits on call.
    let text = format!("{HEAD}[[step]]\ndo = \"call\"\nenvelope = \"saved\"\n");
    let e = load_error(&text);
    assert!(
        e.starts_with("dir/x.toml:8:") && e.contains("`envelope`"),
        "{e}"
    );
    let text = format!("{HEAD}[[step]]\ndo = \"resend\"\nenvelope = [{{ edit = \"flip-ct\" }}]\n");
    let e = load_error(&text);
    assert!(
        e.starts_with("dir/x.toml:8:") && e.contains("`envelope`"),
        "{e}"
    );

    // A seq as text must be a number.
    let text = format!("{HEAD}[[step]]\ndo = \"call\"\nseq = \"lots\"\n");
    let e = load_error(&text);
    assert!(e.starts_with("dir/x.toml:8:") && e.contains("lots"), "{e}");
}

#[test]
fn the_short_envelope_forms_are_edits_of_the_language() {
    let text = format!(
        "{HEAD}[[step]]\ndo = \"call\"\nflip = \"tag\"\nset = {{ seq = \"7\", sid = \"not json\" }}\nremove = [\"v\"]\nenvelope = [{{ edit = \"duplicate\", field = \"seq\", json = \"8\" }}]\n"
    );
    let s = parse_scenario("short.toml", &text, &Registry::builtin()).unwrap();
    let osc_harness::scenarios::model::Step::Call(step) = &s.steps[0] else {
        panic!("{:?}", s.steps[0]);
    };
    assert_eq!(
        step.envelope_edits(),
        vec![
            EnvelopeEdit::FlipTag,
            EnvelopeEdit::Set {
                field: "seq".into(),
                json: "7".into(),
                invalid: false
            },
            EnvelopeEdit::Set {
                field: "sid".into(),
                json: "\"not json\"".into(),
                invalid: false
            },
            EnvelopeEdit::Remove { field: "v".into() },
            EnvelopeEdit::Duplicate {
                field: "seq".into(),
                json: "8".into()
            },
        ]
    );
    // The short forms map onto the language: the honest inner request the
    // suite seals by default, with the edits in order.
    let language = s.steps[0].edit_step().expect("a step of the language");
    assert_eq!(
        language,
        Step::Call(osc_harness::peer::edit::CallStep {
            inner: osc_harness::netfuzz::case::Inner::Request {
                method: "GET".into(),
                path: "/health".into(),
                auth: osc_harness::netfuzz::case::Auth::Key,
                body: None,
            },
            seq: None,
            at: None,
            envelope: step.envelope_edits(),
            bytes: Vec::new(),
            framing: Framing::Normal,
            wrong_direction: false,
            seal_with: None,
            relay: None,
            save: None,
        })
    );
    let body = osc_harness::peer::edit::edit_envelope(
        r#"{"ct":"AAAA","seq":1,"sid":"s","v":1}"#,
        &step.envelope_edits(),
    );
    assert_eq!(
        String::from_utf8(body).unwrap(),
        r#"{"ct":"AAAB","seq":7,"sid":"not json","seq":8}"#
    );
}

#[test]
fn a_written_finding_loads_back_and_runs() {
    // `replay --to-scenario` writes the finding through the scenario
    // model's serde form; `test` loads the file and runs it, and the
    // honest reference passes every step the oracles expect.
    let mut ahead = Generator::valid_call();
    ahead.at = Some(SeqAt::Ahead { by: 5 });
    let mut tampered = Generator::valid_call();
    tampered.envelope = vec![EnvelopeEdit::FlipTag];
    let steps = vec![
        Step::Call(Generator::valid_call()),
        Step::Resend,
        Step::Call(ahead),
        Step::Call(tampered),
        Step::Plain {
            method: "POST".into(),
            path: "/agents/{agent}/run".into(),
            with_key: true,
            body: "{}".into(),
            headers: Default::default(),
            authorization: None,
            relay: None,
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("finding.json");
    let found = finding(steps.clone(), "server-error", "envelope", "ct");
    std::fs::write(&json, serde_json::to_string(&found).unwrap()).unwrap();
    let scenarios = dir.path().join("written");
    let toml = scenarios.join("finding.toml");
    let out = support::harness()
        .arg("replay")
        .arg(&json)
        .arg("--to-scenario")
        .arg(&toml)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", support::describe(&out));
    let text = std::fs::read_to_string(&toml).unwrap();
    assert!(
        text.starts_with("# Written by `osc-harness replay --to-scenario`"),
        "{text}"
    );
    let scenario = parse_scenario("finding.toml", &text, &Registry::builtin())
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let loaded: Vec<Step> = scenario.steps[1..]
        .iter()
        .map(|s| s.edit_step().unwrap_or_else(|| panic!("{s:?}\n{text}")))
        .collect();
    assert_eq!(loaded, steps, "{text}");

    let out = support::harness()
        .args(["test", "--target", "self", "--format", "json", "--only"])
        .arg(&scenario.id)
        .arg("--scenarios")
        .arg(&scenarios)
        .output()
        .unwrap();
    let doc = support::stdout_json(&out);
    let ran = doc["scenarios"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["id"] == scenario.id.as_str()))
        .unwrap_or_else(|| panic!("{} did not run: {doc:#}", scenario.id));
    assert_eq!(ran["verdict"], "pass", "{ran:#}\n{text}");
    assert_eq!(
        ran["transcript"].as_array().map(Vec::len),
        Some(steps.len() + 1),
        "{ran:#}"
    );
    assert_eq!(out.status.code(), Some(0), "{}", support::describe(&out));
}
