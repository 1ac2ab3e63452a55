//! Property tests of sealing and opening: round trips for arbitrary
//! plaintext, seq and sid, and a failed open for any single-bit change in
//! ct, tag, sid, seq, fin flag, direction or request seq.

use osc_harness::protocol::encoding::b64url_encode;
use osc_harness::protocol::framing::{ResponseOpener, ResponseSealer};
use osc_harness::protocol::keys::{
    open, open_b64, request_aad, response_aad, response_key, seal, SessionKeys,
};
use osc_harness::protocol::session::{ClientSession, HonestCalls, ServerSession};
use osc_harness::protocol::wire::{CallRequest, Frame};
use osc_harness::protocol::TAG_LEN;
use proptest::prelude::*;

const EXPIRES: i64 = 1_800_000_000;

fn keys() -> impl Strategy<Value = SessionKeys> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(c2s, s2c)| SessionKeys { c2s, s2c })
}

/// A sid as the server makes them: base64url of 16 random bytes.
fn sid_bytes() -> impl Strategy<Value = [u8; 16]> {
    any::<[u8; 16]>()
}

fn plaintext() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..2048)
}

/// Seqs that include the edges: 0, 1, 2^32, 2^53, 2^64-1.
fn seq() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1u64),
        Just(1u64 << 32),
        Just(1u64 << 53),
        Just(u64::MAX),
        any::<u64>(),
        1u64..1000,
    ]
}

fn flip_sid(sid: &[u8; 16], bit: usize) -> String {
    let mut other = *sid;
    other[(bit / 8) % 16] ^= 1 << (bit % 8);
    b64url_encode(&other)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn calls_round_trip(keys in keys(), sid in sid_bytes(), seq in 1u64..=u64::MAX, pt in plaintext()) {
        let sid = b64url_encode(&sid);
        let client = ClientSession::new(sid.clone(), keys.clone(), EXPIRES);
        let mut server = ServerSession::new(sid, keys, EXPIRES);
        let call = client.seal_at(seq, &pt);
        // Through the JSON envelope too, as it travels.
        let call = CallRequest::parse(call.to_json().as_bytes()).unwrap();
        let opened = server.open_call(&call, EXPIRES - 1, &HonestCalls).unwrap();
        prop_assert_eq!(opened.seq, seq);
        prop_assert_eq!(opened.plaintext, pt);
        prop_assert!(server.open_call(&call, EXPIRES - 1, &HonestCalls).is_err(), "replay opened");
    }

    /// The direct-to-JSON seal path writes the same bytes as the value path,
    /// whatever the sid (escapes included) and plaintext.
    #[test]
    fn seal_call_json_matches_the_value_path(keys in keys(), sid in "\\PC{0,24}", pt in plaintext(), calls in 1usize..4) {
        let mut direct = ClientSession::new(sid.clone(), keys.clone(), EXPIRES);
        let mut via_value = ClientSession::new(sid, keys, EXPIRES);
        for _ in 0..calls {
            let (seq, body) = direct.seal_call_json(&pt, 0).unwrap();
            let call = via_value.seal_call_bytes(&pt, 0).unwrap();
            prop_assert_eq!(seq, call.seq);
            prop_assert_eq!(body, call.to_json());
        }
    }

    #[test]
    fn raw_seal_round_trips_at_every_seq(key in any::<[u8; 32]>(), seq in seq(), aad in prop::collection::vec(any::<u8>(), 0..64), pt in plaintext()) {
        let sealed = seal(&key, seq, &aad, &pt);
        prop_assert_eq!(sealed.len(), pt.len() + TAG_LEN);
        prop_assert_eq!(open(&key, seq, &aad, &sealed).unwrap(), pt);
    }

    #[test]
    fn frames_round_trip_in_order(keys in keys(), sid in sid_bytes(), request_seq in seq(), chunks in prop::collection::vec(plaintext(), 1..6)) {
        let sid = b64url_encode(&sid);
        let session = ClientSession::new(sid.clone(), keys.clone(), EXPIRES);
        let server = ServerSession::new(sid, keys, EXPIRES);
        let mut sealer = server.response_sealer(request_seq);
        let mut opener = session.response_opener(request_seq);
        for (i, chunk) in chunks.iter().enumerate() {
            let fin = i + 1 == chunks.len();
            let frame = sealer.seal(chunk, fin).unwrap();
            let frame = Frame::parse(frame.to_json().as_bytes()).unwrap();
            prop_assert_eq!(&opener.open(&frame).unwrap(), chunk);
        }
        prop_assert!(opener.finish().is_ok());
        prop_assert!(sealer.seal(b"late", false).is_err());
    }

    #[test]
    fn any_bit_of_a_call_matters(
        keys in keys(),
        sid in sid_bytes(),
        seq in seq(),
        pt in plaintext(),
        bit in any::<usize>(),
    ) {
        let sid_text = b64url_encode(&sid);
        let aad = request_aad(&sid_text, seq);
        let sealed = seal(&keys.c2s, seq, aad.as_bytes(), &pt);

        // One bit of the ciphertext, or of the tag when there is no ciphertext.
        let mut ct = sealed.clone();
        let ct_bit = bit % (ct.len() * 8);
        ct[ct_bit / 8] ^= 1 << (ct_bit % 8);
        prop_assert!(open(&keys.c2s, seq, aad.as_bytes(), &ct).is_err(), "ct/tag bit {}", ct_bit);

        // One bit of the tag alone.
        let mut tag = sealed.clone();
        let tag_bit = bit % (TAG_LEN * 8);
        let at = sealed.len() - TAG_LEN + tag_bit / 8;
        tag[at] ^= 1 << (tag_bit % 8);
        prop_assert!(open(&keys.c2s, seq, aad.as_bytes(), &tag).is_err(), "tag bit {}", tag_bit);

        // One bit of the sid.
        let other_sid = request_aad(&flip_sid(&sid, bit), seq);
        prop_assert!(open(&keys.c2s, seq, other_sid.as_bytes(), &sealed).is_err(), "sid bit");

        // One bit of the seq: both the nonce and the AAD change.
        let other_seq = seq ^ (1u64 << (bit % 64));
        let other_aad = request_aad(&sid_text, other_seq);
        prop_assert!(open(&keys.c2s, other_seq, other_aad.as_bytes(), &sealed).is_err(), "seq bit");
        // The seq in the AAD alone, nonce unchanged.
        prop_assert!(open(&keys.c2s, seq, other_aad.as_bytes(), &sealed).is_err(), "aad seq bit");

        // The other direction: s2c key, or a response AAD.
        prop_assert!(open(&keys.s2c, seq, aad.as_bytes(), &sealed).is_err(), "s2c key");
        let resp = response_aad(&sid_text, seq, seq, false);
        prop_assert!(open(&keys.c2s, seq, resp.as_bytes(), &sealed).is_err(), "response aad");
    }

    #[test]
    fn any_bit_of_a_frame_matters(
        keys in keys(),
        sid in sid_bytes(),
        request_seq in seq(),
        frame_seq in seq(),
        fin in any::<bool>(),
        pt in plaintext(),
        bit in any::<usize>(),
    ) {
        let sid_text = b64url_encode(&sid);
        let key = response_key(&keys.s2c, request_seq);
        let sealer = ResponseSealer::new(key, sid_text.clone(), request_seq);
        let frame = sealer.seal_at(frame_seq, &pt, fin);
        let aad = response_aad(&sid_text, request_seq, frame_seq, fin);
        prop_assert_eq!(open_b64(&key, frame_seq, aad.as_bytes(), &frame.ct).unwrap(), pt.clone());

        // Through the opener, when it can be the first frame.
        if frame_seq == 0 {
            let mut opener = ResponseOpener::new(key, sid_text.clone(), request_seq);
            let mut flipped = frame.clone();
            flipped.fin = (!fin).then_some(true);
            prop_assert!(opener.open(&flipped).is_err(), "fin flag flipped");
            prop_assert_eq!(opener.open(&frame).unwrap(), pt.clone());
        }

        let sealed = osc_harness::protocol::encoding::b64url_decode(
            &frame.ct,
            osc_harness::protocol::encoding::B64Strictness::Canonical,
        ).unwrap();
        let mut ct = sealed.clone();
        let ct_bit = bit % (ct.len() * 8);
        ct[ct_bit / 8] ^= 1 << (ct_bit % 8);
        prop_assert!(open(&key, frame_seq, aad.as_bytes(), &ct).is_err(), "ct/tag bit");

        let other_fin = response_aad(&sid_text, request_seq, frame_seq, !fin);
        prop_assert!(open(&key, frame_seq, other_fin.as_bytes(), &sealed).is_err(), "fin bit");

        let other_sid = response_aad(&flip_sid(&sid, bit), request_seq, frame_seq, fin);
        prop_assert!(open(&key, frame_seq, other_sid.as_bytes(), &sealed).is_err(), "sid bit");

        let other_frame = frame_seq ^ (1u64 << (bit % 64));
        let aad_frame = response_aad(&sid_text, request_seq, other_frame, fin);
        prop_assert!(open(&key, other_frame, aad_frame.as_bytes(), &sealed).is_err(), "frame seq bit");

        // Another request's seq: in the AAD alone, and in the per-call key.
        let other_request = request_seq ^ (1u64 << (bit.rotate_left(7) % 64));
        let aad_request = response_aad(&sid_text, other_request, frame_seq, fin);
        prop_assert!(open(&key, frame_seq, aad_request.as_bytes(), &sealed).is_err(), "request seq in aad");
        let other_key = response_key(&keys.s2c, other_request);
        prop_assert!(open(&other_key, frame_seq, aad.as_bytes(), &sealed).is_err(), "request seq in key");

        // The other direction: the session's s2c or c2s key, or a request AAD.
        prop_assert!(open(&keys.s2c, frame_seq, aad.as_bytes(), &sealed).is_err(), "session key");
        prop_assert!(open(&keys.c2s, frame_seq, aad.as_bytes(), &sealed).is_err(), "c2s key");
        let req = request_aad(&sid_text, frame_seq);
        prop_assert!(open(&key, frame_seq, req.as_bytes(), &sealed).is_err(), "request aad");
    }
}
