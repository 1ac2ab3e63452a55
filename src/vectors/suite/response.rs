//! Response frames as the client opens them (`ResponseOpen`).

use serde_json::{json, Value};

use super::{flip_bit, group, Cases, World};
use crate::protocol::framing::ResponseSealer;
use crate::protocol::keys::{request_aad, response_aad, response_key, seal_b64};

fn frame_json(seq: u64, ct: &str, fin: bool) -> Value {
    if fin {
        json!({"seq": seq, "ct": ct, "fin": true})
    } else {
        json!({"seq": seq, "ct": ct})
    }
}

pub(super) fn response_open(w: &World, c: &mut Cases) -> Value {
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
