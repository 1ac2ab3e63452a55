//! The handshake as each side checks it (`HandshakeClient`,
//! `HandshakeServer`).

use serde_json::{json, Value};

use super::{group, hello_json, nibble_off, server_hello_json, Cases, World};
use crate::protocol::encoding::{b64url_encode, hex_encode_0x};
use crate::protocol::handshake::{low_order_points, respond, HonestServer, ServerHandshakeInputs};
use crate::protocol::identity::{to_high_s, AgentIdentity};
use crate::protocol::wire::ClientHello;
use crate::rng::RandomSource;

pub(super) fn handshake_client(w: &mut World, c: &mut Cases) -> Value {
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
    high.signature = hex_encode_0x(
        &to_high_s(&honest_sig).expect("the core signs with v 27/28 and scalars in range"),
    );
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

pub(super) fn handshake_server(w: &World, c: &mut Cases) -> Value {
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
