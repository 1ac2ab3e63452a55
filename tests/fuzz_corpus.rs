//! Replays every committed seed under `fuzz/corpus/<target>/` through the
//! same in-process target cargo-fuzz runs, so CI exercises the fuzz
//! targets without cargo-fuzz.
//!
//! The seeds themselves come from `write_seed_corpus` (ignored by default):
//! `cargo test --test fuzz_corpus -- --ignored write_seed_corpus` rewrites
//! them from the upstream vectors and from handshakes with fixed seeds.

use std::fs;
use std::path::{Path, PathBuf};

use osc_harness::fuzz_targets::TARGETS;
use osc_harness::protocol::handshake::ServerHandshakeInputs;
use osc_harness::protocol::handshake::{respond, ClientHandshake, HonestServer};
use osc_harness::protocol::identity::AgentIdentity;
use osc_harness::protocol::session::HonestCalls;
use osc_harness::protocol::sse::encode_event;
use osc_harness::protocol::wire::{InnerRequest, InnerResponse};
use osc_harness::rng::{RandomSource, SeededRandom};
use serde_json::Value;

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
}

#[test]
fn every_target_has_seeds_and_replays_them() {
    for (name, target) in TARGETS {
        let dir = corpus_root().join(name);
        let entries = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus dir {} is missing: {e}", dir.display()));
        let mut count = 0;
        for entry in entries {
            let path = entry.expect("readable corpus dir").path();
            if !path.is_file() {
                continue;
            }
            let data = fs::read(&path).expect("readable seed");
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: seed {} fails", path.display());
            count += 1;
        }
        assert!(count > 0, "corpus dir {} is empty", dir.display());
    }
}

#[test]
fn the_genuine_upstream_hello_reaches_acceptance() {
    // Mode byte 0 then the upstream ServerHello: the verifier must accept
    // it, so the target's acceptance assertions are reachable at all.
    let upstream = upstream_vectors();
    let hello = compact(&upstream["handshake"]["serverHello"]);
    let mut data = vec![0u8];
    data.extend_from_slice(hello.as_bytes());
    osc_harness::fuzz_targets::handshake_verifier(&data);
    let parsed = osc_harness::protocol::wire::ServerHello::parse(hello.as_bytes()).unwrap();
    let agent =
        AgentIdentity::from_hex(upstream["agent"]["privateKeyHex"].as_str().unwrap()).unwrap();
    let secret = hex32(
        upstream["handshake"]["clientEphemeralPrivateHex"]
            .as_str()
            .unwrap(),
    );
    let nonce: [u8; 16] = std::array::from_fn(|i| i as u8);
    let session = ClientHandshake::new(agent.address(), secret, nonce)
        .finish(&parsed)
        .expect("the upstream ServerHello verifies");
    assert_eq!(session.sid(), "8OHSw7Sllod4aVpLPC0eDw");
}

fn upstream_vectors() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("vectors/upstream/secure-channel-v1-vectors.json");
    serde_json::from_slice(&fs::read(path).expect("upstream vectors")).expect("JSON")
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).expect("serialisable")
}

fn hex32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// Seeds for one target, by file name.
type Seeds = Vec<(String, Vec<u8>)>;

/// Seeds from one honest exchange driven by `seed`.
struct Exchange {
    client_hello: String,
    server_hello: String,
    call: String,
    inner_request: String,
    inner_response: String,
    frames: Vec<String>,
    sse: Vec<u8>,
}

fn exchange(seed: u64) -> Exchange {
    let mut rng = SeededRandom::new(seed, "fuzz-seed-corpus");
    let identity = AgentIdentity::from_bytes(&rng.bytes::<32>()).expect("random key is valid");
    let client = ClientHandshake::new(identity.address(), rng.bytes(), rng.bytes());
    let inputs = ServerHandshakeInputs {
        ephemeral_secret: rng.bytes(),
        sid: rng.bytes(),
        expires_at: 1_800_000_000 + seed as i64,
    };
    let client_hello = client.hello().to_json();
    let server = respond(client.hello(), &identity, &inputs, &HonestServer).unwrap();
    let mut session = client.finish(&server.hello).unwrap();
    let inner = InnerRequest {
        method: "POST".into(),
        path: format!("/channels/demo/{seed}/echo?x=1"),
        authorization: Some("Bearer osk-v1.test".into()),
        accept: Some("text/event-stream".into()),
        content_type: Some("application/json".into()),
        headers: Some(vec![("X-Trace".into(), format!("t{seed}"))]),
        body: Some(osc_harness::protocol::encoding::b64url_encode(
            b"{\"hi\":true}",
        )),
    };
    let call = session.seal_call(&inner, 0).unwrap();
    let mut server_session = server.session;
    let opened = server_session
        .open_call(&call, 0, &HonestCalls)
        .expect("honest call opens");
    let response = InnerResponse {
        status: 200,
        content_type: Some("application/json".into()),
        body: Some(osc_harness::protocol::encoding::b64url_encode(
            b"{\"ok\":1}",
        )),
    };
    let mut sealer = server_session.response_sealer(opened.seq);
    let mut frames = Vec::new();
    let mut sse = Vec::new();
    for i in 0..3 {
        let chunk = format!("data: {{\"n\":{i}}}\n\n");
        let frame = sealer.seal(chunk.as_bytes(), i == 2).unwrap();
        sse.extend(encode_event(&frame));
        frames.push(frame.to_json());
    }
    Exchange {
        client_hello,
        server_hello: server.hello.to_json(),
        call: call.to_json(),
        inner_request: inner.to_json(),
        inner_response: response.to_json(),
        frames,
        sse,
    }
}

fn random_bytes(seed: u64, label: &str, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    SeededRandom::new(seed, label).fill(&mut out);
    out
}

fn seeds_for(name: &str, up: &Value, ex: &[Exchange]) -> Seeds {
    let hs = &up["handshake"];
    let s = |n: &str, t: &str| (n.to_owned(), t.as_bytes().to_vec());
    let mut out: Seeds = Vec::new();
    match name {
        "client_hello" => {
            out.push(s("upstream.json", &compact(&hs["clientHello"])));
            out.push(s(
                "extra-field.json",
                r#"{"v":1,"agentAddress":"0x331565e19602986634610f4B33Ff7ad182860036","encPub":"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo","nonce":"AAECAwQFBgcICQoLDA0ODw","x":[1,{}]}"#,
            ));
            for (i, e) in ex.iter().enumerate() {
                out.push(s(&format!("seed{i}.json"), &e.client_hello));
            }
        }
        "server_hello" => {
            out.push(s("upstream.json", &compact(&hs["serverHello"])));
            for (i, e) in ex.iter().enumerate() {
                out.push(s(&format!("seed{i}.json"), &e.server_hello));
            }
        }
        "call_request" => {
            out.push(s("upstream.json", &compact(&up["call"]["body"])));
            out.push(s(
                "max-seq.json",
                r#"{"v":1,"sid":"a/b","seq":18446744073709551615,"ct":"AA"}"#,
            ));
            for (i, e) in ex.iter().enumerate() {
                out.push(s(&format!("seed{i}.json"), &e.call));
            }
        }
        "frame" => {
            let f = &up["bufferedResponse"]["frame"];
            out.push(s(
                "upstream-buffered.json",
                &format!(
                    r#"{{"seq":0,"ct":"{}","fin":true}}"#,
                    f["ct"].as_str().unwrap()
                ),
            ));
            out.push(s(
                "escaped-ct.json",
                r#"{"seq":1,"ct":"a\"b\\c\u0001","fin":false}"#,
            ));
            for (i, e) in ex.iter().enumerate() {
                for (j, f) in e.frames.iter().enumerate().take(2) {
                    out.push(s(&format!("seed{i}-{j}.json"), f));
                }
            }
        }
        "inner_request" => {
            out.push(s(
                "upstream.json",
                up["call"]["innerRequest"].as_str().unwrap(),
            ));
            out.push(s(
                "secure-path.json",
                r#"{"method":"GET","path":"/secure/call"}"#,
            ));
            for (i, e) in ex.iter().enumerate() {
                out.push(s(&format!("seed{i}.json"), &e.inner_request));
            }
        }
        "inner_response" => {
            let p = up["bufferedResponse"]["frame"]["plaintext"]
                .as_str()
                .unwrap();
            out.push(s("upstream.json", p));
            out.push(s("quote-body.json", r#"{"status":500,"body":"\"\\"}"#));
            for (i, e) in ex.iter().enumerate() {
                out.push(s(&format!("seed{i}.json"), &e.inner_response));
            }
        }
        "sse_decoder" => {
            // No small bound (0x00), no cuts (0x00), then the stream.
            let mut upstream = vec![0u8, 0u8];
            for f in up["streamResponse"]["frames"].as_array().unwrap() {
                upstream.extend_from_slice(b"data: ");
                let fin = f["fin"].as_bool().unwrap_or(false);
                let frame = format!(
                    r#"{{"seq":{},"ct":"{}"{}}}"#,
                    f["seq"],
                    f["ct"].as_str().unwrap(),
                    if fin { r#","fin":true"# } else { "" }
                );
                upstream.extend_from_slice(frame.as_bytes());
                upstream.extend_from_slice(b"\n\n");
            }
            out.push(("upstream-stream".into(), upstream));
            let mut bounded = vec![1u8, 16u8, 2u8, 0, 5, 0, 40];
            bounded.extend_from_slice(
                b": ping\n\ndata: 0123456789abcdef01\n\ndata:x\ndata: y\n\ntail\n",
            );
            out.push(("small-bound".into(), bounded));
            for (i, e) in ex.iter().enumerate() {
                let mut b = vec![0u8, 3u8, 0, 7, 0, 70, 1, 1];
                b.extend_from_slice(&e.sse);
                out.push((format!("seed{i}"), b));
            }
        }
        "base64url" => {
            out.push(s("upstream-ct", up["call"]["ct"].as_str().unwrap()));
            out.push(s("padded", "AAECAwQFBgcICQoLDA0ODw=="));
            out.push(s("standard-alphabet", "+/8"));
            out.push(s(
                "signature-hex",
                hs["serverHello"]["signature"].as_str().unwrap(),
            ));
            out.push(("binary".into(), vec![0, 0xff, 0x80, 0x7f]));
        }
        "replay_window" | "response_opener" | "server_open_call" => {
            out.push(("zeros".into(), vec![0u8; 48]));
            for i in 0..3u64 {
                out.push((format!("random{i}"), random_bytes(i, name, 96)));
            }
        }
        "handshake_verifier" => {
            let mut genuine = vec![0u8];
            genuine.extend_from_slice(compact(&hs["serverHello"]).as_bytes());
            out.push(("upstream-mode0".into(), genuine));
            for mode in 1..=2u8 {
                for i in 0..2u64 {
                    let mut b = vec![mode];
                    b.extend(random_bytes(i, name, 64));
                    out.push((format!("mode{mode}-random{i}"), b));
                }
            }
        }
        other => panic!("no seed recipe for target {other}"),
    }
    out
}

#[test]
#[ignore = "rewrites fuzz/corpus; run on purpose after changing the seed recipes"]
fn write_seed_corpus() {
    let up = upstream_vectors();
    let ex: Vec<Exchange> = (1..=2).map(exchange).collect();
    for (name, _) in TARGETS {
        let dir = corpus_root().join(name);
        fs::create_dir_all(&dir).unwrap();
        for (file, data) in seeds_for(name, &up, &ex) {
            fs::write(dir.join(file), data).unwrap();
        }
    }
}
