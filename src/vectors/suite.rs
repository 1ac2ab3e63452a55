//! Generation of the suite format: Wycheproof-style groups of positive
//! and negative cases, deterministic from a seed.
//!
//! Every case carries the inputs the verifier needs to re-run it through
//! the core alone. The expected outcome is stated by `result` and the
//! flags (whose reasons are in [`super::flags`]), not computed by the
//! code under test: replay patterns come from a set-based model.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use sha3::{Digest, Sha3_256};
use x25519_dalek::{PublicKey, StaticSecret};

use super::flags::{FlagKind, FLAGS};
use super::upstream::seeded_agent_secret;
use crate::protocol::encoding::{b64url_decode, b64url_encode, hex_encode_0x, B64Strictness};
use crate::protocol::framing::ResponseSealer;
use crate::protocol::handshake::{
    low_order_points, respond, ClientHandshake, HonestServer, ServerHandshakeInputs, Transcript,
};
use crate::protocol::identity::{
    domain_digest, keccak256, to_high_s, AgentIdentity, CHANNEL_PREFIX, OTHER_PREFIXES,
};
use crate::protocol::keys::{
    derive_session_keys, nonce_for, request_aad, response_aad, response_key, seal_b64, SessionKeys,
};
use crate::protocol::session::ClientSession;
use crate::protocol::wire::{ClientHello, ServerHello};
use crate::protocol::{DOMAIN, REPLAY_WINDOW};
use crate::rng::{RandomSource, SeededRandom};

/// The schema file the suite format follows.
pub const SCHEMA_NAME: &str = "osc-suite-v1.schema.json";

/// The order n of secp256k1, big-endian.
const SECP256K1_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];

/// Assigns tcIds and derives `result` from the flags.
struct Cases {
    next: u64,
}

impl Cases {
    fn case(
        &mut self,
        comment: &str,
        flags: &[&str],
        requirements: &[&str],
        mut body: Value,
    ) -> Value {
        self.next += 1;
        let result = result_for(flags);
        let obj = body.as_object_mut().expect("case bodies are objects");
        obj.insert("tcId".into(), json!(self.next));
        obj.insert("comment".into(), json!(comment));
        obj.insert("flags".into(), json!(flags));
        obj.insert("requirements".into(), json!(requirements));
        obj.insert("result".into(), json!(result));
        body
    }
}

/// `invalid` if any flag is, else `acceptable` if any flag is, else `valid`.
pub fn result_for(flags: &[&str]) -> &'static str {
    let kinds: Vec<FlagKind> = flags
        .iter()
        .filter_map(|f| super::flags::flag(f).map(|f| f.kind))
        .collect();
    if kinds.iter().any(|k| matches!(k, FlagKind::Invalid(_))) {
        "invalid"
    } else if kinds
        .iter()
        .any(|k| matches!(k, FlagKind::Acceptable { .. }))
    {
        "acceptable"
    } else {
        "valid"
    }
}

fn group(kind: &str, comment: &str, mut fields: Value, tests: Vec<Value>) -> Value {
    let obj = fields.as_object_mut().expect("group fields are objects");
    obj.insert("type".into(), json!(kind));
    obj.insert("comment".into(), json!(comment));
    obj.insert("tests".into(), Value::Array(tests));
    fields
}

/// Everything one honest handshake yields, from the seed.
struct World {
    identity: AgentIdentity,
    other_identity: AgentIdentity,
    client_ephemeral: [u8; 32],
    client_hello: ClientHello,
    server_ephemeral: [u8; 32],
    sid_bytes: [u8; 16],
    expires_at: i64,
    server_hello: ServerHello,
    transcript: String,
    keys: SessionKeys,
    session: ClientSession,
    other_sid: String,
    rng: SeededRandom,
}

impl World {
    fn new(seed: u64) -> Self {
        let stream = |label: &str| SeededRandom::new(seed, &format!("suite/{label}"));
        let identity = AgentIdentity::from_bytes(&seeded_agent_secret(&mut stream("agent-key")))
            .expect("seeded_agent_secret returns valid keys");
        let other_identity =
            AgentIdentity::from_bytes(&seeded_agent_secret(&mut stream("other-agent-key")))
                .expect("seeded_agent_secret returns valid keys");
        let client_ephemeral: [u8; 32] = stream("client-ephemeral").bytes();
        let server_ephemeral: [u8; 32] = stream("server-ephemeral").bytes();
        let sid_bytes: [u8; 16] = stream("sid").bytes();
        let expires_at = 1_700_000_000 + stream("expires-at").below(300_000_000) as i64;
        let client = ClientHandshake::new(
            identity.address(),
            client_ephemeral,
            stream("client-nonce").bytes(),
        );
        let client_hello = client.hello().clone();
        let server = respond(
            &client_hello,
            &identity,
            &ServerHandshakeInputs {
                ephemeral_secret: server_ephemeral,
                sid: sid_bytes,
                expires_at,
            },
            &HonestServer,
        )
        .expect("an honest handshake from seeded keys succeeds");
        let session = client
            .finish(&server.hello)
            .expect("the honest ServerHello verifies");
        World {
            keys: session.keys().clone(),
            identity,
            other_identity,
            client_ephemeral,
            client_hello,
            server_ephemeral,
            sid_bytes,
            expires_at,
            server_hello: server.hello,
            transcript: server.transcript,
            session,
            other_sid: b64url_encode(&stream("other-sid").bytes::<16>()),
            rng: stream("misc"),
        }
    }

    fn sid(&self) -> &str {
        &self.server_hello.sid
    }

    fn random_public(&mut self) -> String {
        let secret: [u8; 32] = self.rng.bytes();
        b64url_encode(PublicKey::from(&StaticSecret::from(secret)).as_bytes())
    }

    /// A ServerHello for `client_hello` signed by `identity` over an
    /// honest transcript, with `edit` applied to its fields first.
    fn signed_hello(&self, enc_pub: &str, sid: &str, expires_at: i64) -> ServerHello {
        let transcript = Transcript::new(&self.client_hello, sid, enc_pub, expires_at).render();
        ServerHello {
            v: 1,
            sid: sid.to_owned(),
            enc_pub: enc_pub.to_owned(),
            expires_at,
            signature: hex_encode_0x(&self.identity.sign_channel(transcript.as_bytes())),
        }
    }
}

fn hello_json(h: &ClientHello) -> Value {
    json!({"v": h.v, "agentAddress": h.agent_address, "encPub": h.enc_pub, "nonce": h.nonce})
}

fn server_hello_json(h: &ServerHello) -> Value {
    json!({"v": h.v, "sid": h.sid, "encPub": h.enc_pub, "expiresAt": h.expires_at, "signature": h.signature})
}

fn flip_bit(ct: &str, index_from_end: Option<usize>) -> String {
    let mut bytes = b64url_decode(ct, B64Strictness::Canonical).expect("we wrote this ct");
    let i = match index_from_end {
        Some(back) => bytes.len() - 1 - back,
        None => 0,
    };
    bytes[i] ^= 0x01;
    b64url_encode(&bytes)
}

fn nibble_off(address_hex: &str) -> String {
    let mut chars: Vec<char> = address_hex.chars().collect();
    let last = chars.len() - 1;
    chars[last] = if chars[last] == '0' { '1' } else { '0' };
    chars.into_iter().collect()
}

/// Builds the whole suite for `seed`.
pub fn build(seed: u64) -> Value {
    let mut w = World::new(seed);
    let mut c = Cases { next: 0 };
    let groups = vec![
        address_derivation(&mut w, &mut c),
        signatures(&mut w, &mut c),
        address_match(&w, &mut c),
        handshake_client(&mut w, &mut c),
        handshake_server(&w, &mut c),
        key_schedule(&mut w, &mut c),
        response_keys(&w, &mut c),
        call_open(&mut w, &mut c),
        call_sequences(&w, &mut c),
        replay_windows(&mut w, &mut c),
        response_open(&w, &mut c),
        base64url(&mut w, &mut c),
    ];
    json!({
        "algorithm": "Osaurus Secure Channel v1",
        "schema": SCHEMA_NAME,
        "generator": format!("osc-harness vectors generate --seed {seed} --format suite"),
        "seed": seed,
        "numberOfTests": c.next,
        "header": [
            "Known-answer vectors for Osaurus Secure Channel v1, generated by osc-harness from the seed above.",
            "result: valid = every conforming implementation accepts; invalid = every implementation refuses, for the reason its flag names; acceptable = an UPSTREAM-marked behaviour: a strict verifier refuses it, a lenient one accepts it.",
            "Requirement IDs refer to docs/PROTOCOL.md.",
        ],
        "referencePolicy": {
            "description": "What the reference (the upstream Swift client, SignaturePolicy::UPSTREAM with the upstream base64url decoder) accepts; notes.<flag>.referenceAccepts says it per flag.",
            "signatureRecoveryBytes": [27, 28, 29, 30],
            "allowHighS": true,
            "base64url": "upstream (padding and the standard alphabet accepted)",
        },
        "notes": notes(),
        "testGroups": groups,
    })
}

fn notes() -> Value {
    let mut map = serde_json::Map::new();
    for f in FLAGS {
        let note = match f.kind {
            FlagKind::Info => json!({"bugType": "BASIC", "description": f.description}),
            FlagKind::Invalid(reason) => json!({
                "bugType": "MODIFIED",
                "description": f.description,
                "expectedReason": reason.name(),
            }),
            FlagKind::Acceptable {
                strict,
                reference_accepts,
            } => json!({
                "bugType": "UPSTREAM",
                "description": f.description,
                "strictReason": strict.name(),
                "referenceAccepts": reference_accepts,
            }),
        };
        map.insert(f.name.to_owned(), note);
    }
    Value::Object(map)
}

fn address_derivation(w: &mut World, c: &mut Cases) -> Value {
    let mut keys: Vec<(String, [u8; 32])> = vec![
        ("the upstream fixture's agent key".into(), {
            let mut k = [0u8; 32];
            hex::decode_to_slice(
                "c2ddba76f071d8115d12d4a8e4d9df7c460aa6ae4f4a59b6c9d1f740a88146f9",
                &mut k,
            )
            .expect("static hex");
            k
        }),
        ("private key 1 (the generator point)".into(), {
            let mut k = [0u8; 32];
            k[31] = 1;
            k
        }),
        ("the seeded agent key".into(), w.identity.secret_bytes()),
    ];
    for i in 0..2 {
        keys.push((format!("seeded key {i}"), seeded_agent_secret(&mut w.rng)));
    }
    let tests = keys
        .into_iter()
        .map(|(comment, key)| {
            let id = AgentIdentity::from_bytes(&key).expect("valid keys");
            c.case(
                &comment,
                &["Valid"],
                &["ID-1"],
                json!({"privateKeyHex": hex::encode(key), "address": id.address().to_checksum()}),
            )
        })
        .collect();
    group(
        "AddressDerivation",
        "EIP-55 address of a secp256k1 key: Keccak-256 of the uncompressed point.",
        json!({}),
        tests,
    )
}

fn signatures(w: &mut World, c: &mut Cases) -> Value {
    let payload = w.transcript.clone();
    let sig = w.identity.sign_channel(payload.as_bytes());
    let recid = sig[64] - 27;
    let reqs = ["ID-2", "ID-3", "HS-2"];
    let mut tests = Vec::new();
    let mut push = |c: &mut Cases, comment: &str, flag: &str, reqs: &[&str], signature: String| {
        tests.push(c.case(comment, &[flag], reqs, json!({ "signature": signature })));
    };
    push(
        c,
        "honest signature (RFC 6979, low-S)",
        "Valid",
        &reqs,
        hex_encode_0x(&sig),
    );
    push(
        c,
        "a valid signature by another key",
        "OtherKey",
        &reqs,
        hex_encode_0x(&w.other_identity.sign_channel(payload.as_bytes())),
    );
    for v in [0u8, 1, 2, 3, 27, 28, 29, 30, 26, 31, 35, 36, 37, 38, 255] {
        let (flag, reqs_v): (&str, &[&str]) = if v == 27 + recid {
            continue;
        } else if v == 27 + (1 - recid) {
            ("WrongRecoveryId", &["ID-3", "ID-4"])
        } else if v == recid {
            ("RawRecoveryId", &["ID-3", "ID-4"])
        } else if v == 1 - recid {
            ("WrongRecoveryId", &["ID-3", "ID-4"])
        } else if matches!(v, 2 | 3 | 29 | 30) {
            ("ReducedXRecoveryId", &["ID-3", "ID-4"])
        } else {
            ("InvalidRecoveryByte", &["ID-3", "ID-4"])
        };
        let mut s = sig;
        s[64] = v;
        push(
            c,
            &format!("v = {v} (honest recovery id {recid})"),
            flag,
            reqs_v,
            hex_encode_0x(&s),
        );
    }
    let high = to_high_s(&sig);
    push(
        c,
        "high-S twin with v flipped",
        "HighS",
        &["ID-3", "ID-4"],
        hex_encode_0x(&high),
    );
    let mut high_same_v = high;
    high_same_v[64] = sig[64];
    push(
        c,
        "high-S s with the original v",
        "HighSWrongRecoveryId",
        &["ID-3", "ID-4"],
        hex_encode_0x(&high_same_v),
    );
    let with = |r: Option<[u8; 32]>, s: Option<[u8; 32]>| {
        let mut out = sig;
        if let Some(r) = r {
            out[..32].copy_from_slice(&r);
        }
        if let Some(s) = s {
            out[32..64].copy_from_slice(&s);
        }
        hex_encode_0x(&out)
    };
    let n_plus_1 = {
        let mut v = SECP256K1_N;
        v[31] += 1;
        v
    };
    for (comment, r, s) in [
        ("r = 0", Some([0u8; 32]), None),
        ("s = 0", None, Some([0u8; 32])),
        ("r = n", Some(SECP256K1_N), None),
        ("s = n", None, Some(SECP256K1_N)),
        ("r = n + 1", Some(n_plus_1), None),
        ("s = 2^256 - 1", None, Some([0xff; 32])),
    ] {
        push(c, comment, "ScalarOutOfRange", &["ID-3"], with(r, s));
    }
    push(
        c,
        "truncated to 64 bytes",
        "SignatureLength",
        &["ID-3"],
        hex_encode_0x(&sig[..64]),
    );
    push(c, "empty", "SignatureLength", &["ID-3"], "0x".into());
    let mut long = sig.to_vec();
    long.push(0);
    push(
        c,
        "66 bytes (a trailing zero)",
        "SignatureLength",
        &["ID-3"],
        hex_encode_0x(&long),
    );
    push(
        c,
        "0X prefix (upper case)",
        "SignatureEncoding",
        &["ENC-2"],
        format!("0X{}", hex::encode(sig)),
    );
    push(
        c,
        "odd number of hex digits",
        "SignatureEncoding",
        &["ENC-2"],
        format!("0x{}", &hex::encode(sig)[1..]),
    );
    let mut domains: Vec<&str> = OTHER_PREFIXES.to_vec();
    domains.push("Ethereum Signed Message");
    for prefix in domains {
        let digest = domain_digest(prefix, payload.as_bytes());
        push(
            c,
            &format!("valid signature by the agent under \"{prefix}\""),
            "WrongDomain",
            &["ID-2"],
            hex_encode_0x(&w.identity.sign_digest(&digest)),
        );
    }
    let sha3: [u8; 32] = {
        let mut h = Sha3_256::new();
        h.update(b"\x19");
        h.update(CHANNEL_PREFIX.as_bytes());
        h.update(b":\n");
        h.update(payload.len().to_string().as_bytes());
        h.update(payload.as_bytes());
        h.finalize().into()
    };
    push(
        c,
        "SHA3-256 of the channel message instead of Keccak-256",
        "Sha3InsteadOfKeccak",
        &["ID-1", "ID-2"],
        hex_encode_0x(&w.identity.sign_digest(&sha3)),
    );
    push(
        c,
        "Keccak-256 of the bare transcript, no domain prefix",
        "NoDomainPrefix",
        &["ID-2"],
        hex_encode_0x(&w.identity.sign_digest(&keccak256(payload.as_bytes()))),
    );
    group(
        "SignatureVerify",
        "Recover the signer of a channel signature over `payload` and compare with `address`.",
        json!({
            "address": w.identity.address().to_checksum(),
            "payload": payload,
            "digestHex": hex::encode(crate::protocol::identity::channel_digest(payload.as_bytes())),
        }),
        tests,
    )
}

fn address_match(w: &World, c: &mut Cases) -> Value {
    let address = w.identity.address();
    let lower = address.to_lower();
    let upper = format!("0x{}", lower[2..].to_uppercase());
    let checksum = address.to_checksum();
    let mut tests = Vec::new();
    for (comment, pinned, flag) in [
        ("lower case", lower.clone(), "AddressCase"),
        ("upper case", upper, "AddressCase"),
        ("EIP-55 case", checksum.clone(), "AddressCase"),
        ("without 0x", lower[2..].to_owned(), "AddressWithout0x"),
        (
            "one nibble off (lower case)",
            nibble_off(&lower),
            "AddressNibbleOff",
        ),
        (
            "one nibble off (EIP-55 case)",
            nibble_off(&checksum),
            "AddressNibbleOff",
        ),
    ] {
        tests.push(c.case(
            comment,
            &[flag],
            &["ID-1", "HS-2"],
            json!({ "pinned": pinned }),
        ));
    }
    let signature = w.identity.sign_channel(w.transcript.as_bytes());
    group(
        "AddressMatch",
        "Recover the signer of `signature` over `payload` and compare with the pinned address.",
        json!({"payload": w.transcript, "signature": hex_encode_0x(&signature)}),
        tests,
    )
}

fn handshake_client(w: &mut World, c: &mut Cases) -> Value {
    let reqs = ["HS-2", "KS-1"];
    let mut tests = Vec::new();
    tests.push(c.case(
        "honest ServerHello",
        &["Valid"],
        &reqs,
        json!({
            "serverHello": server_hello_json(&w.server_hello),
            "transcript": w.transcript,
            "clientToServerKeyHex": hex::encode(w.keys.c2s),
            "serverToClientKeyHex": hex::encode(w.keys.s2c),
        }),
    ));
    let inputs = ServerHandshakeInputs {
        ephemeral_secret: w.server_ephemeral,
        sid: w.sid_bytes,
        expires_at: w.expires_at,
    };
    let answer = |hello: &ClientHello, id: &AgentIdentity| {
        respond(hello, id, &inputs, &HonestServer)
            .expect("honest responses to valid hellos succeed")
            .hello
    };
    let mut edited = w.client_hello.clone();
    edited.agent_address = nibble_off(&edited.agent_address);
    let aa = answer(&edited, &w.identity);
    let mut edited = w.client_hello.clone();
    edited.enc_pub = w.random_public();
    let ec = answer(&edited, &w.identity);
    let mut edited = w.client_hello.clone();
    edited.nonce = b64url_encode(&w.rng.bytes::<16>());
    let nc = answer(&edited, &w.identity);
    let mut sid = w.server_hello.clone();
    sid.sid = w.other_sid.clone();
    let mut es = w.server_hello.clone();
    es.enc_pub = w.random_public();
    let mut exp = w.server_hello.clone();
    exp.expires_at += 1;
    let other = answer(&w.client_hello, &w.other_identity);
    for (comment, flag, hello) in [
        (
            "signed over another agentAddress",
            "TranscriptAgentAddress",
            aa,
        ),
        (
            "signed over another client encPub",
            "TranscriptClientEncPub",
            ec,
        ),
        (
            "signed over another client nonce",
            "TranscriptClientNonce",
            nc,
        ),
        ("sid replaced after signing", "TranscriptSid", sid),
        (
            "server encPub replaced after signing",
            "TranscriptServerEncPub",
            es,
        ),
        ("expiresAt + 1 after signing", "TranscriptExpiresAt", exp),
        ("signed by another agent", "SignedByOtherAgent", other),
    ] {
        tests.push(c.case(
            comment,
            &[flag],
            &["HS-2"],
            json!({"serverHello": server_hello_json(&hello)}),
        ));
    }
    let honest_sig: [u8; 65] = crate::protocol::encoding::hex_decode_0x(&w.server_hello.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .expect("the core writes 65-byte signatures");
    let mut high = w.server_hello.clone();
    high.signature = hex_encode_0x(&to_high_s(&honest_sig));
    let mut raw = w.server_hello.clone();
    let mut raw_sig = honest_sig;
    raw_sig[64] -= 27;
    raw.signature = hex_encode_0x(&raw_sig);
    for (comment, flag, hello) in [
        (
            "signature replaced by its high-S twin",
            "HighSServerHello",
            high,
        ),
        (
            "signature v as the raw recovery id",
            "RawRecoveryIdServerHello",
            raw,
        ),
    ] {
        tests.push(c.case(
            comment,
            &[flag],
            &["HS-2", "ID-4"],
            json!({"serverHello": server_hello_json(&hello)}),
        ));
    }
    let sid = w.sid().to_owned();
    for (name, point) in low_order_points() {
        let hello = w.signed_hello(&b64url_encode(&point), &sid, w.expires_at);
        tests.push(c.case(
            &format!("server encPub is the low-order point {name}, correctly signed"),
            &["LowOrderPoint"],
            &["HS-7"],
            json!({"serverHello": server_hello_json(&hello)}),
        ));
    }
    let mut v2 = w.server_hello.clone();
    v2.v = 2;
    tests.push(c.case(
        "ServerHello v = 2",
        &["UnsupportedVersion"],
        &["HS-4"],
        json!({"serverHello": server_hello_json(&v2)}),
    ));
    let short = w.signed_hello(&b64url_encode(&[9u8; 31]), &sid, w.expires_at);
    tests.push(c.case(
        "server encPub of 31 bytes, correctly signed",
        &["MalformedKey"],
        &["HS-5"],
        json!({"serverHello": server_hello_json(&short)}),
    ));
    group(
        "HandshakeClient",
        "The client side: verify `serverHello` for `clientHello` against `pinnedAddress`, then derive the session keys.",
        json!({
            "pinnedAddress": w.identity.address().to_checksum(),
            "clientEphemeralPrivateHex": hex::encode(w.client_ephemeral),
            "clientHello": hello_json(&w.client_hello),
        }),
        tests,
    )
}

fn handshake_server(w: &World, c: &mut Cases) -> Value {
    let mut tests = Vec::new();
    tests.push(c.case(
        "honest ClientHello",
        &["Valid"],
        &["HS-1", "KS-1"],
        json!({
            "clientHello": hello_json(&w.client_hello),
            "serverHello": server_hello_json(&w.server_hello),
            "transcript": w.transcript,
        }),
    ));
    for (name, point) in low_order_points() {
        let mut hello = w.client_hello.clone();
        hello.enc_pub = b64url_encode(&point);
        tests.push(c.case(
            &format!("client encPub is the low-order point {name}"),
            &["LowOrderPoint"],
            &["HS-7"],
            json!({"clientHello": hello_json(&hello)}),
        ));
    }
    let mut v2 = w.client_hello.clone();
    v2.v = 2;
    tests.push(c.case(
        "ClientHello v = 2",
        &["UnsupportedVersion"],
        &["HS-4"],
        json!({"clientHello": hello_json(&v2)}),
    ));
    let mut long = w.client_hello.clone();
    long.enc_pub = b64url_encode(&[9u8; 33]);
    tests.push(c.case(
        "client encPub of 33 bytes",
        &["MalformedKey"],
        &["HS-5"],
        json!({"clientHello": hello_json(&long)}),
    ));
    let mut empty = w.client_hello.clone();
    empty.nonce = String::new();
    tests.push(c.case(
        "empty nonce",
        &["EmptyNonce"],
        &["HS-5"],
        json!({"clientHello": hello_json(&empty)}),
    ));
    let mut padded = w.client_hello.clone();
    padded.enc_pub.push('=');
    tests.push(c.case(
        "client encPub with = padding",
        &["PaddedBase64"],
        &["ENC-1"],
        json!({"clientHello": hello_json(&padded)}),
    ));
    group(
        "HandshakeServer",
        "The server side: answer `clientHello` with the agent key, ephemeral secret, sid and expiry of the group.",
        json!({
            "agentPrivateKeyHex": hex::encode(w.identity.secret_bytes()),
            "serverEphemeralPrivateHex": hex::encode(w.server_ephemeral),
            "sidHex": hex::encode(w.sid_bytes),
            "expiresAt": w.expires_at,
        }),
        tests,
    )
}

fn key_schedule(w: &mut World, c: &mut Cases) -> Value {
    let mut tests = Vec::new();
    let shared = {
        let secret = StaticSecret::from(w.client_ephemeral);
        let server = PublicKey::from(&StaticSecret::from(w.server_ephemeral));
        secret.diffie_hellman(&server).to_bytes()
    };
    let mut inputs = vec![(
        "the seeded handshake".to_owned(),
        shared,
        w.transcript.clone(),
    )];
    for i in 0..2 {
        let secret: [u8; 32] = w.rng.bytes();
        inputs.push((
            format!("random shared secret {i}"),
            secret,
            format!("{DOMAIN}|v=1|case={i}"),
        ));
    }
    for (comment, shared, transcript) in inputs {
        let keys = derive_session_keys(&shared, transcript.as_bytes());
        tests.push(c.case(
            &comment,
            &["Valid"],
            &["KS-1"],
            json!({
                "sharedSecretHex": hex::encode(shared),
                "transcript": transcript,
                "clientToServerKeyHex": hex::encode(keys.c2s),
                "serverToClientKeyHex": hex::encode(keys.s2c),
            }),
        ));
    }
    group(
        "KeySchedule",
        "HKDF-SHA256 session keys from the shared secret and transcript.",
        json!({}),
        tests,
    )
}

const EDGE_SEQS: [(u64, &str); 6] = [
    (1, "EdgeSeq"),
    (2, "Valid"),
    (1 << 32, "EdgeSeq"),
    (1 << 53, "EdgeSeq"),
    ((1 << 53) + 1, "JsonUnsafeInteger"),
    (u64::MAX, "JsonUnsafeInteger"),
];

fn response_keys(w: &World, c: &mut Cases) -> Value {
    let tests = EDGE_SEQS
        .iter()
        .map(|&(seq, flag)| {
            c.case(
                &format!("request seq {seq}"),
                &[flag],
                &["KS-2", "KS-3"],
                json!({
                    "requestSeq": seq,
                    "responseKeyHex": hex::encode(response_key(&w.keys.s2c, seq)),
                    "nonceHex": hex::encode(nonce_for(seq)),
                    "requestAad": request_aad(w.sid(), seq),
                    "finalFrameAad": response_aad(w.sid(), seq, 0, true),
                }),
            )
        })
        .collect();
    group(
        "ResponseKey",
        "Per-call response keys, nonces and AADs for request seqs at the edges.",
        json!({"sid": w.sid(), "serverToClientKeyHex": hex::encode(w.keys.s2c)}),
        tests,
    )
}

/// The plaintext of the calls: written out here rather than by the
/// core's encoder, so the committed vectors do not move when the encoder's
/// escaping does.
fn inner_request(w: &mut World) -> String {
    let body: [u8; 24] = w.rng.bytes();
    format!(
        r#"{{"method":"POST","path":"/v1/chat/completions","authorization":"Bearer osk-v1.test","accept":"application/json","contentType":"application/json","body":"{}"}}"#,
        b64url_encode(&body)
    )
}

fn call_json(v: i64, sid: &str, seq: u64, ct: &str) -> Value {
    json!({"v": v, "sid": sid, "seq": seq, "ct": ct})
}

fn call_group_fields(w: &World) -> Value {
    json!({
        "sid": w.sid(),
        "clientToServerKeyHex": hex::encode(w.keys.c2s),
        "expiresAt": w.expires_at,
    })
}

fn call_open(w: &mut World, c: &mut Cases) -> Value {
    let pt = inner_request(w);
    let sid = w.sid().to_owned();
    let now = w.expires_at - 60;
    let c2s = w.keys.c2s;
    let honest = |seq: u64| w.session.seal_at(seq, pt.as_bytes()).ct;
    let reqs = ["CALL-2", "CALL-5", "KS-3"];
    let mut tests = Vec::new();
    let mut push = |c: &mut Cases,
                    comment: &str,
                    flag: &str,
                    reqs: &[&str],
                    v: i64,
                    seq: u64,
                    ct: String,
                    now: i64,
                    pt: &str| {
        tests.push(c.case(
            comment,
            &[flag],
            reqs,
            json!({"call": call_json(v, &sid, seq, &ct), "now": now, "innerRequest": pt}),
        ));
    };
    for &(seq, flag) in EDGE_SEQS.iter() {
        push(
            c,
            &format!("honest call, seq {seq}"),
            flag,
            &["CALL-1", "KS-3"],
            1,
            seq,
            honest(seq),
            now,
            &pt,
        );
    }
    push(
        c,
        "tag: last byte flipped",
        "TamperedTag",
        &reqs,
        1,
        1,
        flip_bit(&honest(1), Some(0)),
        now,
        &pt,
    );
    push(
        c,
        "ciphertext: first byte flipped",
        "TamperedCiphertext",
        &reqs,
        1,
        1,
        flip_bit(&honest(1), None),
        now,
        &pt,
    );
    let other_sid = w.other_sid.clone();
    let seal = |key: &[u8; 32], nonce_seq: u64, aad: &str| {
        seal_b64(key, nonce_seq, aad.as_bytes(), pt.as_bytes())
    };
    push(
        c,
        "AAD names another sid",
        "WrongAadSid",
        &reqs,
        1,
        1,
        seal(&c2s, 1, &request_aad(&other_sid, 1)),
        now,
        &pt,
    );
    push(
        c,
        "AAD names seq 2, nonce and envelope seq 1",
        "WrongAadSeq",
        &reqs,
        1,
        1,
        seal(&c2s, 1, &request_aad(&sid, 2)),
        now,
        &pt,
    );
    push(
        c,
        "nonce of seq 2, AAD and envelope seq 1",
        "WrongNonce",
        &reqs,
        1,
        1,
        seal(&c2s, 2, &request_aad(&sid, 1)),
        now,
        &pt,
    );
    push(
        c,
        "AAD of the response direction",
        "WrongAadDirection",
        &reqs,
        1,
        1,
        seal(&c2s, 1, &format!("{DOMAIN}:resp:{sid}:1")),
        now,
        &pt,
    );
    push(
        c,
        "sealed with s2c",
        "WrongKeyDirection",
        &reqs,
        1,
        1,
        seal(&w.keys.s2c, 1, &request_aad(&sid, 1)),
        now,
        &pt,
    );
    push(
        c,
        "the genuine call of seq 2 sent as seq 1",
        "TransplantedSeq",
        &reqs,
        1,
        1,
        honest(2),
        now,
        &pt,
    );
    push(
        c,
        "ct of 15 bytes",
        "ShortCiphertext",
        &["CALL-2"],
        1,
        1,
        b64url_encode(&[7u8; 15]),
        now,
        &pt,
    );
    push(
        c,
        "ct is not base64url",
        "CiphertextNotBase64",
        &["CALL-2"],
        1,
        1,
        "not*base64".into(),
        now,
        &pt,
    );
    push(
        c,
        "envelope v = 2",
        "WrongVersion",
        &["CALL-2"],
        2,
        1,
        honest(1),
        now,
        &pt,
    );
    push(
        c,
        "seq 0, correctly sealed",
        "SeqZero",
        &["CALL-1", "CALL-3"],
        1,
        0,
        honest(0),
        now,
        &pt,
    );
    push(
        c,
        "now = expiresAt",
        "Expired",
        &["SES-1"],
        1,
        1,
        honest(1),
        w.expires_at,
        &pt,
    );
    // Padding needs a ct whose byte length is not a multiple of 3.
    let mut padded_pt = pt.clone();
    while (padded_pt.len() + 16).is_multiple_of(3) {
        padded_pt.push(' ');
    }
    let mut padded = w.session.seal_at(1, padded_pt.as_bytes()).ct;
    while !padded.len().is_multiple_of(4) {
        padded.push('=');
    }
    push(
        c,
        "ct with = padding",
        "PaddedBase64",
        &["ENC-1"],
        1,
        1,
        padded,
        now,
        &padded_pt,
    );
    // The standard alphabet only shows in a ct that has - or _.
    let mut std_seq = 1;
    while !honest(std_seq).contains(['-', '_']) {
        std_seq += 1;
    }
    let standard: String = honest(std_seq)
        .chars()
        .map(|ch| match ch {
            '-' => '+',
            '_' => '/',
            other => other,
        })
        .collect();
    push(
        c,
        "ct in the standard +/ alphabet",
        "StandardAlphabet",
        &["ENC-1"],
        1,
        std_seq,
        standard,
        now,
        &pt,
    );
    group(
        "CallOpen",
        "The server opens `call` in a fresh session (empty replay window) at `now`; a valid call opens to `innerRequest`.",
        call_group_fields(w),
        tests,
    )
}

fn call_sequences(w: &World, c: &mut Cases) -> Value {
    let pt = "{\"method\":\"GET\",\"path\":\"/health\"}";
    let sid = w.sid();
    let now = w.expires_at - 60;
    let honest = |seq: u64| call_json(1, sid, seq, &w.session.seal_at(seq, pt.as_bytes()).ct);
    let forged = |seq: u64| {
        let ct = flip_bit(&w.session.seal_at(seq, pt.as_bytes()).ct, Some(0));
        call_json(1, sid, seq, &ct)
    };
    let step = |call: Value, expect: &str| json!({"call": call, "expect": expect});
    let tests = vec![
        c.case(
            "a forged seq 1 does not use up seq 1",
            &["ReplayPattern"],
            &["CALL-4"],
            json!({"now": now, "innerRequest": pt, "calls": [
                step(forged(1), "AuthenticationFailed"),
                step(honest(1), "ok"),
            ]}),
        ),
        c.case(
            "a genuine call sent twice",
            &["ReplayPattern"],
            &["CALL-3"],
            json!({"now": now, "innerRequest": pt, "calls": [
                step(honest(1), "ok"),
                step(honest(1), "Replay"),
            ]}),
        ),
        c.case(
            "out of order inside the window, then 64 below",
            &["ReplayPattern"],
            &["CALL-3"],
            json!({"now": now, "innerRequest": pt, "calls": [
                step(honest(5), "ok"),
                step(honest(3), "ok"),
                step(honest(70), "ok"),
                step(honest(6), "Replay"),
                step(honest(7), "ok"),
                step(honest(7), "Replay"),
            ]}),
        ),
    ];
    group(
        "CallSequence",
        "The server opens `calls` in order in one fresh session; each must give `expect` (ok or a reason).",
        call_group_fields(w),
        tests,
    )
}

/// The replay window as a set: the specification, independent of the
/// core's bitmap.
fn window_model(seqs: &[u64]) -> Vec<bool> {
    let mut seen = BTreeSet::new();
    let mut highest = 0u64;
    seqs.iter()
        .map(|&seq| {
            let ok = seq != 0
                && !seen.contains(&seq)
                && (seq > highest || highest - seq < REPLAY_WINDOW);
            if ok {
                seen.insert(seq);
                highest = highest.max(seq);
            }
            ok
        })
        .collect()
}

fn replay_windows(w: &mut World, c: &mut Cases) -> Value {
    let mut patterns: Vec<(String, Vec<u64>)> = vec![
        ("in order".into(), vec![1, 2, 3, 4]),
        ("zero and repeats".into(), vec![0, 1, 1, 2, 0]),
        ("upstream example".into(), vec![5, 5, 3, 100, 36, 37, 37]),
        (
            "jump of exactly 64 clears the window".into(),
            vec![1, 65, 1, 2, 64],
        ),
        ("jump of 63 keeps the lowest".into(), vec![1, 64, 1, 2]),
        (
            "2^32 boundary".into(),
            vec![(1 << 32) - 1, 1 << 32, (1 << 32) + 1, (1 << 32) - 1],
        ),
        (
            "2^53 and its neighbour".into(),
            vec![1 << 53, (1 << 53) + 1, 1 << 53],
        ),
        (
            "top of u64".into(),
            vec![
                u64::MAX - 64,
                u64::MAX,
                u64::MAX - 63,
                u64::MAX - 64,
                u64::MAX,
            ],
        ),
    ];
    let mut random = Vec::new();
    let mut base = 1u64;
    for _ in 0..40 {
        base += w.rng.below(5);
        random.push(base.saturating_sub(w.rng.below(80)));
    }
    patterns.push(("seeded random walk".into(), random));
    let tests = patterns
        .into_iter()
        .map(|(comment, seqs)| {
            let accepted = window_model(&seqs);
            c.case(
                &comment,
                &["ReplayPattern"],
                &["CALL-3"],
                json!({"seqs": seqs, "accepted": accepted}),
            )
        })
        .collect();
    group(
        "ReplayWindow",
        "Mark `seqs` in order in an empty 64-wide window; `accepted` is the expected pattern.",
        json!({"windowSize": REPLAY_WINDOW}),
        tests,
    )
}

fn frame_json(seq: u64, ct: &str, fin: bool) -> Value {
    if fin {
        json!({"seq": seq, "ct": ct, "fin": true})
    } else {
        json!({"seq": seq, "ct": ct})
    }
}

fn response_open(w: &World, c: &mut Cases) -> Value {
    let sid = w.sid().to_owned();
    let rs: u64 = 3;
    let key = response_key(&w.keys.s2c, rs);
    let sealer = ResponseSealer::new(key, sid.clone(), rs);
    let buffered = "{\"status\":200,\"contentType\":\"application/json\",\"body\":\"e30\"}";
    let chunks = ["data: {\"n\":1}\n\n", "data: {\"n\":2}\n\n", ""];
    let honest = |seq: u64, text: &str, fin: bool| sealer.seal_at(seq, text.as_bytes(), fin).ct;
    let with = |k: &[u8; 32], nonce_seq: u64, aad: &str, text: &str| {
        seal_b64(k, nonce_seq, aad.as_bytes(), text.as_bytes())
    };
    let stream: Vec<Value> = chunks
        .iter()
        .enumerate()
        .map(|(i, t)| frame_json(i as u64, &honest(i as u64, t, i == 2), i == 2))
        .collect();
    let mut tests = Vec::new();
    let mut push = |c: &mut Cases,
                    comment: &str,
                    flag: &str,
                    reqs: &[&str],
                    frames: Vec<Value>,
                    plaintexts: &[&str]| {
        tests.push(c.case(
            comment,
            &[flag],
            reqs,
            json!({"frames": frames, "plaintexts": plaintexts}),
        ));
    };
    let one = |ct: String, fin: bool| vec![frame_json(0, &ct, fin)];
    push(
        c,
        "buffered: one fin frame",
        "Valid",
        &["RESP-1", "RESP-2", "KS-2"],
        one(honest(0, buffered, true), true),
        &[buffered],
    );
    push(
        c,
        "stream: two events and an empty fin",
        "Valid",
        &["RESP-1", "RESP-3", "KS-2"],
        stream.clone(),
        &chunks,
    );
    let reqs = ["RESP-1", "KS-2", "CALL-5"];
    push(
        c,
        "tag: last byte flipped",
        "TamperedTag",
        &reqs,
        one(flip_bit(&honest(0, buffered, true), Some(0)), true),
        &[buffered],
    );
    push(
        c,
        "ciphertext: first byte flipped",
        "TamperedCiphertext",
        &reqs,
        one(flip_bit(&honest(0, buffered, true), None), true),
        &[buffered],
    );
    push(
        c,
        "AAD names another sid",
        "WrongAadSid",
        &reqs,
        one(
            with(&key, 0, &response_aad(&w.other_sid, rs, 0, true), buffered),
            true,
        ),
        &[buffered],
    );
    push(
        c,
        "AAD names another request seq",
        "WrongAadRequestSeq",
        &reqs,
        one(
            with(&key, 0, &response_aad(&sid, rs + 1, 0, true), buffered),
            true,
        ),
        &[buffered],
    );
    push(
        c,
        "AAD names frame seq 1, nonce and wire seq 0",
        "WrongAadSeq",
        &reqs,
        one(
            with(&key, 0, &response_aad(&sid, rs, 1, true), buffered),
            true,
        ),
        &[buffered],
    );
    push(
        c,
        "AAD of the request direction",
        "WrongAadDirection",
        &reqs,
        one(with(&key, 0, &request_aad(&sid, rs), buffered), true),
        &[buffered],
    );
    push(
        c,
        "sealed as not-fin, sent with fin",
        "WrongAadFin",
        &reqs,
        one(
            with(&key, 0, &response_aad(&sid, rs, 0, false), buffered),
            true,
        ),
        &[buffered],
    );
    push(
        c,
        "sealed as fin, sent without fin",
        "WrongAadFin",
        &reqs,
        one(honest(0, buffered, true), false),
        &[buffered],
    );
    let other_call = ResponseSealer::new(response_key(&w.keys.s2c, rs + 1), sid.clone(), rs + 1)
        .seal_at(0, buffered.as_bytes(), true)
        .ct;
    push(
        c,
        "the genuine frame of request seq + 1",
        "OtherCallFrame",
        &reqs,
        one(other_call, true),
        &[buffered],
    );
    push(
        c,
        "sealed with s2c instead of the per-call key",
        "SessionKeyInsteadOfCallKey",
        &["KS-2"],
        one(
            with(&w.keys.s2c, 0, &response_aad(&sid, rs, 0, true), buffered),
            true,
        ),
        &[buffered],
    );
    push(
        c,
        "sealed with the per-call key derived from c2s",
        "WrongKeyDirection",
        &["KS-2"],
        one(
            with(
                &response_key(&w.keys.c2s, rs),
                0,
                &response_aad(&sid, rs, 0, true),
                buffered,
            ),
            true,
        ),
        &[buffered],
    );
    let reorder = vec![stream[1].clone(), stream[0].clone(), stream[2].clone()];
    push(
        c,
        "frames 1, 0, 2",
        "FrameOutOfOrder",
        &["RESP-4"],
        reorder,
        &chunks,
    );
    let dup = vec![
        stream[0].clone(),
        stream[0].clone(),
        stream[1].clone(),
        stream[2].clone(),
    ];
    push(
        c,
        "frame 0 twice",
        "FrameOutOfOrder",
        &["RESP-4"],
        dup,
        &chunks,
    );
    let early_fin = vec![
        frame_json(0, &honest(0, chunks[0], true), true),
        frame_json(1, &honest(1, chunks[1], false), false),
    ];
    push(
        c,
        "a frame after fin",
        "FrameAfterFin",
        &["RESP-4"],
        early_fin,
        &chunks[..2],
    );
    push(
        c,
        "the fin frame dropped",
        "Truncated",
        &["RESP-5"],
        stream[..2].to_vec(),
        &chunks[..2],
    );
    push(
        c,
        "no frames at all",
        "Truncated",
        &["RESP-5"],
        Vec::new(),
        &[],
    );
    group(
        "ResponseOpen",
        "The client opens `frames` in order with the per-call key for `requestSeq`, then checks for an authenticated fin.",
        json!({"sid": sid, "serverToClientKeyHex": hex::encode(w.keys.s2c), "requestSeq": rs}),
        tests,
    )
}

fn base64url(w: &mut World, c: &mut Cases) -> Value {
    let random: [u8; 17] = w.rng.bytes();
    let with_specials = {
        // Bytes fb ff bf encode as "-_-_" / "+/+/".
        let mut b = vec![0xfb, 0xff, 0xbf];
        b.extend_from_slice(&random[..4]);
        b
    };
    let cases: Vec<(String, String, Vec<u8>, &str)> = vec![
        ("empty".into(), String::new(), vec![], "Valid"),
        ("one byte".into(), "AA".into(), vec![0], "Valid"),
        (
            "seeded 17 bytes".into(),
            b64url_encode(&random),
            random.to_vec(),
            "Valid",
        ),
        (
            "URL-safe characters".into(),
            b64url_encode(&with_specials),
            with_specials.clone(),
            "Valid",
        ),
        (
            "one byte, padded".into(),
            "AA==".into(),
            vec![0],
            "PaddedBase64",
        ),
        (
            "two bytes, padded".into(),
            "AAE=".into(),
            vec![0, 1],
            "PaddedBase64",
        ),
        (
            "standard alphabet".into(),
            b64url_encode(&with_specials)
                .replace('-', "+")
                .replace('_', "/"),
            with_specials,
            "StandardAlphabet",
        ),
        (
            "non-zero trailing bits".into(),
            "AB".into(),
            vec![0],
            "NonZeroTrailingBits",
        ),
        ("length 1".into(), "A".into(), vec![], "Base64Length"),
        ("length 5".into(), "AAAAA".into(), vec![], "Base64Length"),
        (
            "inner space".into(),
            "AA A".into(),
            vec![],
            "Base64Character",
        ),
        (
            "trailing newline".into(),
            "AAAA\n".into(),
            vec![],
            "Base64Character",
        ),
        ("a dot".into(), "AA.A".into(), vec![], "Base64Character"),
    ];
    let tests = cases
        .into_iter()
        .map(|(comment, encoded, decoded, flag)| {
            c.case(
                &comment,
                &[flag],
                &["ENC-1"],
                json!({"encoded": encoded, "decodedHex": hex::encode(decoded)}),
            )
        })
        .collect();
    group(
        "Base64url",
        "Decode `encoded`; a valid or accepted string gives `decodedHex`.",
        json!({}),
        tests,
    )
}
