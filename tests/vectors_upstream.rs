//! The upstream fixture and our upstream-format output: every field is
//! reproduced, and one changed character anywhere makes verify fail and
//! name the field.

mod support;

use osc_harness::protocol::encoding::{b64url_decode, b64url_encode, B64Strictness};
use osc_harness::protocol::identity::{
    channel_digest, recover_channel_signer, AgentIdentity, SignaturePolicy,
};
use osc_harness::protocol::keys::{derive_session_keys, open_b64, response_key};
use osc_harness::vectors::{self, upstream, Format};
use serde_json::Value;
use support::{load, mutate, repo};
use x25519_dalek::{PublicKey, StaticSecret};

const FIXTURE: &str = "vectors/upstream/secure-channel-v1-vectors.json";
const GENERATED: &str = "vectors/generated/seed-1.upstream.json";

#[test]
fn the_upstream_fixture_verifies_field_by_field() {
    let report = vectors::verify_path(&repo(FIXTURE)).unwrap();
    assert_eq!(report.format, Format::Upstream);
    assert!(report.passed(), "{}", report.render());
    let names: Vec<&str> = report.lines.iter().map(|l| l.name.as_str()).collect();
    for field in [
        "handshake.serverHello.signature",
        "handshake.sharedSecretHex",
        "handshake.clientToServerKeyHex",
        "handshake.serverToClientKeyHex",
        "handshake.domainHashHex",
        "handshake.transcript",
        "call.ct",
        "call.body.ct",
        "bufferedResponse.frame.ct",
        "bufferedResponse.responseKeyHex",
        "streamResponse.callCt",
        "streamResponse.frames[2].ct",
        "streamResponse.frames[0].plaintext",
        "agent.address",
    ] {
        assert!(names.contains(&field), "no line for {field}");
    }
}

#[test]
fn the_fixture_nonce_is_read_from_the_file() {
    let inputs = upstream::read_inputs(&load(FIXTURE)).unwrap();
    let expected: Vec<u8> = (0u8..16).collect();
    assert_eq!(inputs.nonce.to_vec(), expected);
    // A file with another nonce is rebuilt with that nonce, not 00..0f.
    let mut other = upstream::UpstreamInputs::from_seed(7);
    other.nonce = [0xab; 16];
    let built = upstream::build(&other);
    assert_eq!(upstream::read_inputs(&built).unwrap().nonce, [0xab; 16]);
    assert!(vectors::verify_bytes(built.to_string().as_bytes())
        .unwrap()
        .passed());
}

#[test]
fn rebuilding_the_fixture_from_its_inputs_gives_the_same_json() {
    let file = load(FIXTURE);
    let rebuilt = upstream::build(&upstream::read_inputs(&file).unwrap());
    assert_eq!(rebuilt, file);
}

/// Re-derives the key values of an upstream-shaped file with the core's
/// primitives directly, from its fixed inputs only (not through the
/// vectors module's builder).
fn independent_check(file: &Value) {
    let hex32 = |v: &Value| -> [u8; 32] {
        hex::decode(v.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    let hs = &file["handshake"];
    let agent = AgentIdentity::from_bytes(&hex32(&file["agent"]["privateKeyHex"])).unwrap();
    let client = StaticSecret::from(hex32(&hs["clientEphemeralPrivateHex"]));
    let server = StaticSecret::from(hex32(&hs["serverEphemeralPrivateHex"]));
    let e_c = b64url_encode(PublicKey::from(&client).as_bytes());
    let e_s = b64url_encode(PublicKey::from(&server).as_bytes());
    let nonce = hs["clientHello"]["nonce"].as_str().unwrap();
    let sid = hs["serverHello"]["sid"].as_str().unwrap();
    assert_eq!(
        b64url_decode(nonce, B64Strictness::Canonical)
            .unwrap()
            .len(),
        16
    );
    let exp = hs["serverHello"]["expiresAt"].as_i64().unwrap();
    let transcript = format!(
        "osaurus-sc1|v=1|aA={}|eC={e_c}|nC={nonce}|sid={sid}|eS={e_s}|exp={exp}",
        agent.address().to_lower()
    );
    assert_eq!(hs["transcript"], transcript.as_str());
    let shared = client.diffie_hellman(&PublicKey::from(&server)).to_bytes();
    assert_eq!(hs["sharedSecretHex"], hex::encode(shared).as_str());
    let keys = derive_session_keys(&shared, transcript.as_bytes());
    assert_eq!(hs["clientToServerKeyHex"], hex::encode(keys.c2s).as_str());
    assert_eq!(hs["serverToClientKeyHex"], hex::encode(keys.s2c).as_str());
    assert_eq!(
        hs["domainHashHex"],
        hex::encode(channel_digest(transcript.as_bytes())).as_str()
    );
    let signature = format!(
        "0x{}",
        hex::encode(agent.sign_channel(transcript.as_bytes()))
    );
    assert_eq!(hs["serverHello"]["signature"], signature.as_str());
    assert_eq!(
        recover_channel_signer(transcript.as_bytes(), &signature, SignaturePolicy::STRICT).unwrap(),
        agent.address()
    );
    let seq = file["call"]["requestSeq"].as_u64().unwrap();
    let aad = format!("osaurus-sc1:req:{sid}:{seq}");
    let opened = open_b64(
        &keys.c2s,
        seq,
        aad.as_bytes(),
        file["call"]["ct"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(
        opened,
        file["call"]["innerRequest"].as_str().unwrap().as_bytes()
    );
    let rs = file["streamResponse"]["requestSeq"].as_u64().unwrap();
    let key = response_key(&keys.s2c, rs);
    let frames = file["streamResponse"]["frames"].as_array().unwrap();
    for (i, frame) in frames.iter().enumerate() {
        let fin = u8::from(i + 1 == frames.len());
        let aad = format!("osaurus-sc1:resp:{sid}:{rs}:{i}:{fin}");
        let pt = open_b64(
            &key,
            i as u64,
            aad.as_bytes(),
            frame["ct"].as_str().unwrap(),
        )
        .unwrap();
        assert_eq!(pt, frame["plaintext"].as_str().unwrap().as_bytes());
    }
}

#[test]
fn an_independent_rederivation_agrees_with_both_files() {
    independent_check(&load(FIXTURE));
    independent_check(&load(GENERATED));
}

#[test]
fn our_upstream_format_has_exactly_the_fixture_shape() {
    fn shape(v: &Value, path: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    shape(x, format!("{path}.{k}"), out);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    shape(x, format!("{path}[{i}]"), out);
                }
            }
            Value::String(_) => out.push(format!("{path}: string")),
            Value::Number(_) => out.push(format!("{path}: number")),
            Value::Bool(_) => out.push(format!("{path}: bool")),
            Value::Null => out.push(format!("{path}: null")),
        }
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    shape(&load(FIXTURE), String::new(), &mut a);
    shape(&load(GENERATED), String::new(), &mut b);
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

fn string_leaves(
    v: &Value,
    path: String,
    out: &mut Vec<(String, Vec<PathStep>)>,
    steps: Vec<PathStep>,
) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let mut s = steps.clone();
                s.push(PathStep::Key(k.clone()));
                string_leaves(x, p, out, s);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let mut s = steps.clone();
                s.push(PathStep::Index(i));
                string_leaves(x, format!("{path}[{i}]"), out, s);
            }
        }
        Value::String(_) => out.push((path, steps)),
        _ => {}
    }
}

#[derive(Clone)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn at<'a>(v: &'a mut Value, steps: &[PathStep]) -> &'a mut Value {
    steps.iter().fold(v, |v, s| match s {
        PathStep::Key(k) => &mut v[k.as_str()],
        PathStep::Index(i) => &mut v[*i],
    })
}

#[test]
fn one_changed_character_anywhere_fails_and_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    for source in [FIXTURE, GENERATED] {
        let original = load(source);
        let mut leaves = Vec::new();
        string_leaves(&original, String::new(), &mut leaves, Vec::new());
        assert!(
            leaves.len() > 30,
            "{source} has {} string fields",
            leaves.len()
        );
        for (path, steps) in leaves {
            let mut copy = original.clone();
            let slot = at(&mut copy, &steps);
            let changed = mutate(slot.as_str().unwrap());
            *slot = Value::String(changed);
            let file = dir.path().join("mutated.json");
            std::fs::write(&file, vectors::pretty::to_swift_pretty(&copy)).unwrap();
            let report = vectors::verify_path(&file).unwrap();
            assert!(!report.passed(), "{source}: changing {path} went unnoticed");
            assert!(
                report
                    .failures()
                    .any(|l| l.name == path || l.name.starts_with(&format!("{path} "))),
                "{source}: changing {path} fails, but no line names it:\n{}",
                report.render()
            );
        }
    }
}

#[test]
fn snapshot_the_fixture_transcript() {
    let built = upstream::build(&upstream::read_inputs(&load(FIXTURE)).unwrap());
    insta::assert_snapshot!(
        "upstream_fixture_transcript",
        built["handshake"]["transcript"].as_str().unwrap()
    );
}

#[test]
fn snapshot_the_verify_text_of_the_fixture() {
    let report = vectors::verify_path(&repo(FIXTURE)).unwrap();
    insta::assert_snapshot!("verify_upstream_fixture", report.render());
}

#[test]
fn snapshot_the_upstream_format_of_seed_1() {
    insta::assert_snapshot!(
        "generate_seed_1_upstream",
        vectors::generate(1, Format::Upstream)
    );
}
