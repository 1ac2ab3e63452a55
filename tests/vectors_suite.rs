//! The suite format: generated files do not drift, verify, follow the
//! JSON Schema, and every negative case is refused for its flagged reason.

mod support;

use osc_harness::vectors::flags::{flag, FlagKind, Reason, FLAGS};
use osc_harness::vectors::suite_verify::{check_case, run_case, Mode, KNOWN_REQUIREMENTS};
use osc_harness::vectors::{self, Format};
use serde_json::Value;
use support::{load, mutate, repo};

const SUITE: &str = "vectors/generated/seed-1.suite.json";
const SCHEMA: &str = "vectors/schema/osc-suite-v1.schema.json";

#[test]
fn committed_files_match_a_fresh_generation() {
    for (format, path) in [
        (Format::Suite, SUITE),
        (Format::Upstream, "vectors/generated/seed-1.upstream.json"),
    ] {
        let committed = std::fs::read_to_string(repo(path)).unwrap();
        let fresh = vectors::generate(1, format);
        assert!(
            committed == fresh,
            "{path} drifted from `osc-harness vectors generate --seed 1 --format {}`; regenerate it",
            format.name()
        );
    }
}

#[test]
fn generation_depends_on_the_seed_only() {
    assert_eq!(
        vectors::generate(9, Format::Suite),
        vectors::generate(9, Format::Suite)
    );
    assert_ne!(
        vectors::generate(9, Format::Suite),
        vectors::generate(10, Format::Suite)
    );
    let a: Value = serde_json::from_str(&vectors::generate(9, Format::Upstream)).unwrap();
    let b: Value = serde_json::from_str(&vectors::generate(10, Format::Upstream)).unwrap();
    for key in [
        "clientEphemeralPrivateHex",
        "serverEphemeralPrivateHex",
        "transcript",
    ] {
        assert_ne!(a["handshake"][key], b["handshake"][key], "{key}");
    }
    assert_ne!(a["agent"], b["agent"]);
}

#[test]
fn the_generated_suite_verifies_case_by_case() {
    let report = vectors::verify_path(&repo(SUITE)).unwrap();
    assert_eq!(report.format, Format::Suite);
    assert!(report.passed(), "{}", report.render());
    let file = load(SUITE);
    let cases = report
        .lines
        .iter()
        .filter(|l| l.name.starts_with('#'))
        .count();
    assert_eq!(cases as u64, file["numberOfTests"].as_u64().unwrap());
    // Another seed holds too.
    let other = vectors::generate(2, Format::Suite);
    let report = vectors::verify_bytes(other.as_bytes()).unwrap();
    assert!(report.passed(), "{}", report.render());
}

fn cases(file: &Value) -> Vec<(String, &Value, &Value)> {
    let mut out = Vec::new();
    for g in file["testGroups"].as_array().unwrap() {
        for t in g["tests"].as_array().unwrap() {
            out.push((g["type"].as_str().unwrap().to_owned(), g, t));
        }
    }
    out
}

#[test]
fn every_negative_case_is_refused_for_its_flagged_reason() {
    let file = load(SUITE);
    let mut negatives = 0;
    for (kind, g, t) in cases(&file) {
        let flags: Vec<&str> = t["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        for name in &flags {
            match flag(name).unwrap().kind {
                FlagKind::Invalid(reason) => {
                    negatives += 1;
                    assert_eq!(
                        run_case(&kind, g, t, Mode::Reference).unwrap(),
                        Err(reason),
                        "#{} {}",
                        t["tcId"],
                        t["comment"]
                    );
                    assert!(run_case(&kind, g, t, Mode::Permissive).unwrap().is_err());
                    assert!(run_case(&kind, g, t, Mode::Strict).unwrap().is_err());
                }
                FlagKind::Acceptable {
                    strict,
                    reference_accepts,
                    ..
                } => {
                    assert_eq!(
                        run_case(&kind, g, t, Mode::Strict).unwrap(),
                        Err(strict),
                        "#{}",
                        t["tcId"]
                    );
                    if let Some(accepts) = reference_accepts {
                        assert_eq!(
                            run_case(&kind, g, t, Mode::Reference).unwrap().is_ok(),
                            accepts,
                            "#{}",
                            t["tcId"]
                        );
                    }
                }
                FlagKind::Info => {}
            }
        }
    }
    assert!(negatives > 80, "only {negatives} negative cases");
}

#[test]
fn the_suite_covers_what_the_issue_lists() {
    let file = load(SUITE);
    let all: Vec<(String, &Value, &Value)> = cases(&file);
    let with_flag = |name: &str| {
        all.iter()
            .filter(|(_, _, t)| t["flags"].as_array().unwrap().iter().any(|f| f == name))
            .count()
    };
    for name in [
        "TamperedTag",
        "TamperedCiphertext",
        "WrongAadSid",
        "WrongAadSeq",
        "WrongAadDirection",
        "WrongAadFin",
        "WrongAadRequestSeq",
        "OtherCallFrame",
        "SessionKeyInsteadOfCallKey",
        "TranscriptAgentAddress",
        "TranscriptClientEncPub",
        "TranscriptClientNonce",
        "TranscriptSid",
        "TranscriptServerEncPub",
        "TranscriptExpiresAt",
        "PaddedBase64",
        "NonZeroTrailingBits",
        "EdgeSeq",
        "JsonUnsafeInteger",
        "SeqZero",
        "ReplayPattern",
        "OtherKey",
        "WrongRecoveryId",
        "RawWrongRecoveryId",
        "RawRecoveryId",
        "ReducedXRecoveryId",
        "RawReducedXRecoveryId",
        "InvalidRecoveryByte",
        "HighS",
        "HighSWrongRecoveryId",
        "ScalarOutOfRange",
        "SignatureLength",
        "Sha3InsteadOfKeccak",
        "AddressCase",
        "AddressWithout0x",
        "AddressNibbleOff",
    ] {
        assert!(with_flag(name) > 0, "no case flagged {name}");
    }
    // Each low-order point, on both sides; each other Osaurus domain.
    let low_order = osc_harness::protocol::handshake::low_order_points().len();
    assert_eq!(with_flag("LowOrderPoint"), 2 * low_order);
    assert_eq!(
        with_flag("WrongDomain"),
        osc_harness::protocol::identity::OTHER_PREFIXES.len() + 1
    );
    let signature_vs: Vec<u8> = all
        .iter()
        .filter(|(k, _, _)| k == "SignatureVerify")
        .filter_map(|(_, _, t)| {
            let hex = t["signature"].as_str()?.strip_prefix("0x")?;
            (hex.len() == 130).then(|| u8::from_str_radix(&hex[128..], 16).unwrap())
        })
        .collect();
    for v in [0u8, 1, 2, 3, 27, 28, 29, 30, 31, 35, 255] {
        assert!(signature_vs.contains(&v), "no signature with v = {v}");
    }
    // The seq edges: 0, 1, 2^32, 2^53 and 2^64-1 each reach the core.
    let seqs: Vec<u64> = all
        .iter()
        .filter(|(k, _, _)| k == "CallOpen")
        .map(|(_, _, t)| t["call"]["seq"].as_u64().unwrap())
        .collect();
    for seq in [0, 1, 1 << 32, 1 << 53, u64::MAX] {
        assert!(seqs.contains(&seq), "no call with seq {seq}");
    }
}

#[test]
fn the_notes_say_which_flags_the_reference_accepts() {
    let file = load(SUITE);
    assert_eq!(file["notes"]["HighS"]["referenceAccepts"], true);
    assert_eq!(file["notes"]["RawRecoveryId"]["referenceAccepts"], false);
    assert_eq!(file["notes"]["PaddedBase64"]["referenceAccepts"], true);
    assert_eq!(
        file["notes"]["TamperedTag"]["expectedReason"],
        "AuthenticationFailed"
    );
    let notes = file["notes"].as_object().unwrap();
    assert_eq!(notes.len(), FLAGS.len());
    // A file whose notes claim another reference behaviour fails.
    let mut changed = file.clone();
    changed["notes"]["HighS"]["referenceAccepts"] = false.into();
    changed["notes"]["TamperedTag"]["expectedReason"] = "Replay".into();
    let report = vectors::verify_bytes(changed.to_string().as_bytes()).unwrap();
    let failed: Vec<_> = report.failures().collect();
    assert_eq!(failed.len(), 1, "{}", report.render());
    assert_eq!(failed[0].name, "notes");
    let why = failed[0].failure.as_deref().unwrap();
    assert!(
        why.contains("HighS.referenceAccepts") && why.contains("TamperedTag.expectedReason"),
        "{why}"
    );
}

#[test]
fn levels_follow_the_specification() {
    let file = load(SUITE);
    let all = cases(&file);
    // HS-7 is a SHOULD: every low-order case is acceptable, at that level,
    // refused by a strict verifier, the reference's choice unknown.
    let low_order: Vec<_> = all
        .iter()
        .filter(|(_, _, t)| t["flags"][0] == "LowOrderPoint")
        .collect();
    assert_eq!(low_order.len(), 14);
    for (kind, g, t) in &low_order {
        assert_eq!(t["result"], "acceptable", "#{}", t["tcId"]);
        assert!(
            run_case(kind, g, t, Mode::Strict).unwrap().is_err(),
            "#{}",
            t["tcId"]
        );
    }
    let note = &file["notes"]["LowOrderPoint"];
    assert_eq!(note["level"], "SHOULD");
    assert_eq!(note["bugType"], "EDGE_CASE");
    assert_eq!(note["referenceAccepts"], Value::Null);
    assert_eq!(note["strictReason"], "LowOrderKey");
    for name in ["HighS", "PaddedBase64", "RawRecoveryId"] {
        assert_eq!(file["notes"][name]["level"], "UPSTREAM", "{name}");
    }
    // A raw v (0..3) is refused by the reference for the byte itself,
    // whatever a verifier taking raw ids would then find.
    for (kind, g, t) in &all {
        let flag = t["flags"][0].as_str().unwrap();
        if !matches!(flag, "RawWrongRecoveryId" | "RawReducedXRecoveryId") {
            continue;
        }
        let v = &t["signature"].as_str().unwrap()[130..];
        assert!(["00", "01", "02", "03"].contains(&v), "#{}", t["tcId"]);
        assert_eq!(file["notes"][flag]["expectedReason"], "RecoveryByte");
        assert_eq!(
            run_case(kind, g, t, Mode::Reference).unwrap(),
            Err(Reason::RecoveryByte)
        );
        let lenient = run_case(kind, g, t, Mode::Permissive).unwrap();
        assert!(
            matches!(lenient, Err(Reason::AddressMismatch | Reason::NoRecovery)),
            "#{}: {lenient:?}",
            t["tcId"]
        );
    }
    // A file whose low-order note keeps the old level fails its notes.
    let mut changed = file.clone();
    changed["notes"]["LowOrderPoint"]["level"] = "UPSTREAM".into();
    let report = vectors::verify_bytes(changed.to_string().as_bytes()).unwrap();
    let failed: Vec<_> = report.failures().map(|f| f.name.clone()).collect();
    assert_eq!(failed, ["notes"], "{}", report.render());
}

fn find_case<'a>(file: &'a mut Value, flag_name: &str) -> &'a mut Value {
    for g in file["testGroups"].as_array_mut().unwrap() {
        for t in g["tests"].as_array_mut().unwrap() {
            if t["flags"][0] == flag_name {
                return t;
            }
        }
    }
    panic!("no case flagged {flag_name}");
}

#[test]
fn a_case_refused_for_another_reason_fails() {
    let mut file = load(SUITE);
    // A tampered tag is an authentication failure, not a short ct.
    let case = find_case(&mut file, "TamperedTag");
    case["flags"] = serde_json::json!(["ShortCiphertext"]);
    let id = case["tcId"].as_u64().unwrap();
    let report = vectors::verify_bytes(file.to_string().as_bytes()).unwrap();
    let failed: Vec<_> = report.failures().collect();
    assert_eq!(failed.len(), 1, "{}", report.render());
    assert!(failed[0].name.starts_with(&format!("#{id} ")));
    let why = failed[0].failure.as_deref().unwrap();
    assert!(
        why.contains("CiphertextTooShort") && why.contains("AuthenticationFailed"),
        "{why}"
    );
}

#[test]
fn a_wrong_result_or_unknown_flag_fails() {
    let mut file = load(SUITE);
    find_case(&mut file, "HighS")["result"] = "valid".into();
    find_case(&mut file, "TamperedCiphertext")["flags"] = serde_json::json!(["NoSuchFlag"]);
    find_case(&mut file, "Valid")["requirements"] = serde_json::json!(["XX-1"]);
    let report = vectors::verify_bytes(file.to_string().as_bytes()).unwrap();
    assert_eq!(report.failures().count(), 3, "{}", report.render());
}

fn string_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                string_paths(x, &format!("{prefix}/{k}"), out)
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                string_paths(x, &format!("{prefix}/{i}"), out)
            }
        }
        Value::String(_) => out.push(prefix.to_owned()),
        _ => {}
    }
}

#[test]
fn one_changed_character_in_a_valid_case_or_its_group_fails_it() {
    let file = load(SUITE);
    for g in file["testGroups"].as_array().unwrap() {
        let kind = g["type"].as_str().unwrap();
        let valid: Vec<&Value> = g["tests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["result"] == "valid")
            .collect();
        for t in &valid {
            check_case(kind, g, t).unwrap();
            let mut paths = Vec::new();
            string_paths(t, "", &mut paths);
            // A step that is meant to be refused stays refused when changed.
            let refused_step = |p: &str| {
                p.strip_prefix("/calls/")
                    .and_then(|rest| rest.split('/').next())
                    .and_then(|i| i.parse::<usize>().ok())
                    .is_some_and(|i| t["calls"][i]["expect"] != "ok" && !p.ends_with("/expect"))
            };
            for path in paths
                .iter()
                .filter(|p| *p != "/comment" && !refused_step(p))
            {
                let mut copy = (*t).clone();
                let slot = copy.pointer_mut(path).unwrap();
                *slot = Value::String(mutate(slot.as_str().unwrap()));
                assert!(
                    check_case(kind, g, &copy).is_err(),
                    "{kind} #{}: changing {path} went unnoticed",
                    t["tcId"]
                );
            }
        }
        let mut paths = Vec::new();
        string_paths(g, "", &mut paths);
        for path in paths
            .iter()
            .filter(|p| !p.starts_with("/tests") && *p != "/comment" && *p != "/type")
        {
            let mut copy = g.clone();
            let slot = copy.pointer_mut(path).unwrap();
            *slot = Value::String(mutate(slot.as_str().unwrap()));
            let any_fails = valid.iter().any(|t| check_case(kind, &copy, t).is_err());
            assert!(
                any_fails,
                "{kind}: changing group field {path} went unnoticed"
            );
        }
    }
}

#[test]
fn every_requirement_id_is_in_the_protocol_document() {
    let doc = std::fs::read_to_string(repo("docs/PROTOCOL.md")).unwrap();
    for id in KNOWN_REQUIREMENTS {
        assert!(
            doc.contains(&format!("**{id}**")),
            "{id} is not defined in docs/PROTOCOL.md"
        );
    }
}

// --- the JSON Schema -------------------------------------------------------

/// A small validator for the keywords the suite schema uses: `$ref` (local),
/// `type`, `required`, `properties`, `additionalProperties` (as a schema),
/// `items`, `enum`, `const`, `minimum`, `minItems`, `allOf`, `if`/`then`,
/// and `pattern` for the anchored hex and ID patterns it declares.
struct Validator<'a> {
    root: &'a Value,
}

impl Validator<'_> {
    fn resolve<'s>(&'s self, schema: &'s Value) -> &'s Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => self
                .root
                .pointer(r.strip_prefix('#').unwrap())
                .unwrap_or_else(|| panic!("bad $ref {r}")),
            None => schema,
        }
    }

    fn check(&self, schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if let Some(t) = schema.get("type") {
            let types: Vec<&str> = match t {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().map(|x| x.as_str().unwrap()).collect(),
                _ => panic!("bad type"),
            };
            let ok = types.iter().any(|t| match *t {
                "object" => v.is_object(),
                "array" => v.is_array(),
                "string" => v.is_string(),
                "integer" => v.is_i64() || v.is_u64(),
                "boolean" => v.is_boolean(),
                "null" => v.is_null(),
                other => panic!("type {other}"),
            });
            if !ok {
                errors.push(format!("{path}: not {types:?}"));
                return;
            }
        }
        if let Some(e) = schema.get("enum") {
            if !e.as_array().unwrap().contains(v) {
                errors.push(format!("{path}: {v} not in enum"));
            }
        }
        if let Some(c) = schema.get("const") {
            if c != v {
                errors.push(format!("{path}: {v} is not {c}"));
            }
        }
        if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_i64), v.as_i64()) {
            if n < min {
                errors.push(format!("{path}: {n} < {min}"));
            }
        }
        if let (Some(p), Some(s)) = (schema.get("pattern").and_then(Value::as_str), v.as_str()) {
            if !pattern_matches(p, s) {
                errors.push(format!("{path}: {s:?} does not match {p}"));
            }
        }
        if let Some(obj) = v.as_object() {
            for r in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !obj.contains_key(r.as_str().unwrap()) {
                    errors.push(format!("{path}: missing {}", r.as_str().unwrap()));
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            for (k, x) in obj {
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    self.check(s, x, &format!("{path}.{k}"), errors);
                } else if let Some(s) = schema.get("additionalProperties") {
                    self.check(s, x, &format!("{path}.{k}"), errors);
                }
            }
        }
        if let Some(items) = v.as_array() {
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
                if (items.len() as u64) < min {
                    errors.push(format!("{path}: fewer than {min} items"));
                }
            }
            if let Some(s) = schema.get("items") {
                for (i, x) in items.iter().enumerate() {
                    self.check(s, x, &format!("{path}[{i}]"), errors);
                }
            }
        }
        for s in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.check(s, v, path, errors);
        }
        if let (Some(cond), Some(then)) = (schema.get("if"), schema.get("then")) {
            let mut probe = Vec::new();
            self.check(cond, v, path, &mut probe);
            if probe.is_empty() {
                self.check(then, v, path, errors);
            }
        }
    }
}

/// The schema's patterns are all `^(alternatives or a class){n}$`-shaped;
/// they are checked by translating them into these few known forms.
fn pattern_matches(pattern: &str, s: &str) -> bool {
    let hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    match pattern {
        "^[0-9a-f]{64}$" => s.len() == 64 && hex(s),
        "^[0-9a-f]{32}$" => s.len() == 32 && hex(s),
        "^[0-9a-f]{24}$" => s.len() == 24 && hex(s),
        "^([0-9a-f]{2})*$" => s.len().is_multiple_of(2) && hex(s),
        "^(ENC|ID|HS|KS|CALL|RESP|SES|GATE)-[0-9]+$" => s.split_once('-').is_some_and(|(p, n)| {
            ["ENC", "ID", "HS", "KS", "CALL", "RESP", "SES", "GATE"].contains(&p)
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
        }),
        other => panic!("the test validator does not know the pattern {other}"),
    }
}

fn schema_errors(doc: &Value) -> Vec<String> {
    let schema = load(SCHEMA);
    let v = Validator { root: &schema };
    let mut errors = Vec::new();
    v.check(&schema, doc, "$", &mut errors);
    errors
}

#[test]
fn the_generated_suite_follows_the_schema() {
    let schema = load(SCHEMA);
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let errors = schema_errors(&load(SUITE));
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn the_schema_refuses_broken_suites() {
    let mut file = load(SUITE);
    file["testGroups"][0]["tests"][0]
        .as_object_mut()
        .unwrap()
        .remove("tcId");
    file["testGroups"][1]["tests"][0]["result"] = "maybe".into();
    file["testGroups"][2]["tests"][0]["flags"] = serde_json::json!(["NotAFlag"]);
    file["testGroups"][3]
        .as_object_mut()
        .unwrap()
        .remove("pinnedAddress");
    file["testGroups"][4]["tests"][0]["clientHello"]["v"] = "1".into();
    let errors = schema_errors(&file);
    for expected in [
        "$.testGroups[0].tests[0]: missing tcId",
        "$.testGroups[1].tests[0].result: \"maybe\" not in enum",
        "$.testGroups[2].tests[0].flags[0]: \"NotAFlag\" not in enum",
        "$.testGroups[3]: missing pinnedAddress",
        "$.testGroups[4].tests[0].clientHello.v: not [\"integer\"]",
    ] {
        assert!(
            errors.iter().any(|e| e == expected),
            "{expected} not among {errors:#?}"
        );
    }
}

#[test]
fn the_schema_lists_every_flag_and_group_type() {
    let schema = load(SCHEMA);
    let flags: Vec<&str> = schema["$defs"]["testCase"]["properties"]["flags"]["items"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let mut ours: Vec<&str> = FLAGS.iter().map(|f| f.name).collect();
    ours.sort();
    let mut theirs = flags.clone();
    theirs.sort();
    assert_eq!(theirs, ours);
    let types = schema["$defs"]["testGroup"]["properties"]["type"]["enum"]
        .as_array()
        .unwrap();
    for g in load(SUITE)["testGroups"].as_array().unwrap() {
        assert!(types.contains(&g["type"]));
    }
}

#[test]
fn snapshot_the_verify_text_of_the_seed_1_suite() {
    let report = vectors::verify_path(&repo(SUITE)).unwrap();
    insta::assert_snapshot!("verify_seed_1_suite", report.render());
}
