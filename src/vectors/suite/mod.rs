//! Generation of the suite format: Wycheproof-style groups of positive
//! and negative cases, deterministic from a seed.
//!
//! Every case carries the inputs the verifier needs to re-run it through
//! the core alone. The expected outcome is stated by `result` and the
//! flags (whose reasons are in [`super::flags`]), not computed by the
//! code under test: replay patterns come from a set-based model.
//!
//! This file holds what every group shares (the seeded handshake, case
//! numbering, the notes); each family of groups has its own file, in the
//! order the verifier (`super::suite_verify`) runs them.

mod base64url;
mod calls;
mod handshake;
mod identity;
mod keys;
mod response;

use serde_json::{json, Value};
use x25519_dalek::{PublicKey, StaticSecret};

use super::flags::{FlagKind, FLAGS};
use super::upstream::seeded_agent_secret;
use crate::protocol::encoding::{b64url_encode, flip_b64url_bit, hex_encode_0x};
use crate::protocol::handshake::{
    respond, ClientHandshake, HonestServer, ServerHandshakeInputs, Transcript,
};
use crate::protocol::identity::AgentIdentity;
use crate::protocol::keys::SessionKeys;
use crate::protocol::session::ClientSession;
use crate::protocol::wire::{ClientHello, ServerHello};
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
    let (at, from_end) = match index_from_end {
        Some(back) => (back, true),
        None => (0, false),
    };
    flip_b64url_bit(ct, at, from_end).expect("we wrote this ct")
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
        identity::address_derivation(&mut w, &mut c),
        identity::signatures(&mut w, &mut c),
        identity::address_match(&w, &mut c),
        handshake::handshake_client(&mut w, &mut c),
        handshake::handshake_server(&w, &mut c),
        keys::key_schedule(&mut w, &mut c),
        keys::response_keys(&w, &mut c),
        calls::call_open(&mut w, &mut c),
        calls::call_sequences(&w, &mut c),
        calls::replay_windows(&mut w, &mut c),
        response::response_open(&w, &mut c),
        base64url::base64url(&mut w, &mut c),
    ];
    json!({
        "algorithm": "Osaurus Secure Channel v1",
        "schema": SCHEMA_NAME,
        "generator": format!("osc-harness vectors generate --seed {seed} --format suite"),
        "seed": seed,
        "numberOfTests": c.next,
        "header": [
            "Known-answer vectors for Osaurus Secure Channel v1, generated by osc-harness from the seed above.",
            "result: valid = every conforming implementation accepts; invalid = every implementation refuses, the reference for the reason its flag names; acceptable = a behaviour a SHOULD or an UPSTREAM leniency leaves open (notes.<flag>.level): a strict verifier refuses it, a lenient one may accept it.",
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
                level,
            } => json!({
                "bugType": level.bug_type(),
                "description": f.description,
                "level": level.name(),
                "strictReason": strict.name(),
                "referenceAccepts": reference_accepts,
            }),
        };
        map.insert(f.name.to_owned(), note);
    }
    Value::Object(map)
}

/// Sequence numbers at the edges, shared by the key and call groups.
const EDGE_SEQS: [(u64, &str); 6] = [
    (1, "EdgeSeq"),
    (2, "Valid"),
    (1 << 32, "EdgeSeq"),
    (1 << 53, "EdgeSeq"),
    ((1 << 53) + 1, "JsonUnsafeInteger"),
    (u64::MAX, "JsonUnsafeInteger"),
];
