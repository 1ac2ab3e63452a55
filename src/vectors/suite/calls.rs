//! Calls as the server opens them, one by one and in sequence, and the
//! replay window (`CallOpen`, `CallSequence`, `ReplayWindow`).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::{flip_bit, group, Cases, World, EDGE_SEQS};
use crate::protocol::encoding::b64url_encode;
use crate::protocol::keys::{request_aad, seal_b64};
use crate::protocol::{DOMAIN, REPLAY_WINDOW};
use crate::rng::RandomSource;

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

pub(super) fn call_open(w: &mut World, c: &mut Cases) -> Value {
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

pub(super) fn call_sequences(w: &World, c: &mut Cases) -> Value {
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

pub(super) fn replay_windows(w: &mut World, c: &mut Cases) -> Value {
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
