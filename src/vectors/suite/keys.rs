//! The key schedule (`KeySchedule`, `ResponseKey`).

use serde_json::{json, Value};
use x25519_dalek::{PublicKey, StaticSecret};

use super::{group, Cases, World, EDGE_SEQS};
use crate::protocol::keys::{
    derive_session_keys, nonce_for, request_aad, response_aad, response_key,
};
use crate::protocol::DOMAIN;
use crate::rng::RandomSource;

pub(super) fn key_schedule(w: &mut World, c: &mut Cases) -> Value {
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

pub(super) fn response_keys(w: &World, c: &mut Cases) -> Value {
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
