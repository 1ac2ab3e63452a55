//! In-process fuzz targets, shared by cargo-fuzz (`fuzz/`) and the corpus
//! replay test (`tests/fuzz_corpus.rs`).
//!
//! Each target takes arbitrary bytes, must return normally for every input,
//! and panics only when one of the core's invariants breaks: that panic is
//! the finding. Parsers are checked for parse → encode → parse round trips;
//! state machines are driven by a script decoded from the input (with
//! [`arbitrary::Unstructured`]) and compared step by step with a small,
//! obviously-correct model.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use arbitrary::Unstructured;

use crate::protocol::encoding::{
    b64url_decode, b64url_encode, hex_decode_0x, hex_encode_0x, B64Strictness,
};
use crate::protocol::framing::{ResponseOpener, ResponseSealer};
use crate::protocol::handshake::{
    low_order_points, respond, ClientHandshake, HonestServer, ServerHandshakeInputs, Transcript,
};
use crate::protocol::identity::{
    domain_digest, recover_channel_signer, to_high_s, AgentIdentity, SignaturePolicy,
    OTHER_PREFIXES,
};
use crate::protocol::session::{ClientSession, HonestCalls, ReplayWindow, ServerSession};
use crate::protocol::sse::SseDecoder;
use crate::protocol::wire::{
    CallRequest, ClientHello, Frame, InnerRequest, InnerResponse, ServerHello,
};
use crate::protocol::REPLAY_WINDOW;

/// A fuzz target: arbitrary bytes in, a panic only on a broken invariant.
pub type Target = fn(&[u8]);

/// Every target by name; the names are those of `fuzz/fuzz_targets/*.rs`
/// and of the seed directories `fuzz/corpus/<name>/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("client_hello", client_hello),
    ("server_hello", server_hello),
    ("call_request", call_request),
    ("frame", frame),
    ("inner_request", inner_request),
    ("inner_response", inner_response),
    ("sse_decoder", sse_decoder),
    ("base64url", base64url),
    ("replay_window", replay_window),
    ("response_opener", response_opener),
    ("handshake_verifier", handshake_verifier),
    ("server_open_call", server_open_call),
];

/// Looks a target up by name.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Checks that a successful parse survives encode → parse unchanged and
/// that encoding is then a fixed point.
fn round_trip<T, E>(data: &[u8], parse: fn(&[u8]) -> Result<T, E>, encode: fn(&T) -> String)
where
    T: PartialEq + std::fmt::Debug,
    E: std::fmt::Display,
{
    let Ok(first) = parse(data) else { return };
    let text = encode(&first);
    let second = match parse(text.as_bytes()) {
        Ok(v) => v,
        Err(e) => panic!("re-parse of our own encoding {text:?} failed: {e}"),
    };
    assert_eq!(first, second, "value changed across encode {text:?}");
    assert_eq!(encode(&second), text, "encoding is not a fixed point");
}

/// ClientHello parser.
pub fn client_hello(data: &[u8]) {
    round_trip(data, ClientHello::parse, ClientHello::to_json);
}

/// ServerHello parser.
pub fn server_hello(data: &[u8]) {
    round_trip(data, ServerHello::parse, ServerHello::to_json);
}

/// CallRequest parser.
pub fn call_request(data: &[u8]) {
    round_trip(data, CallRequest::parse, CallRequest::to_json);
}

/// Response frame parser.
pub fn frame(data: &[u8]) {
    round_trip(data, Frame::parse, Frame::to_json);
}

/// Inner request parser, plus the server's validation of it.
pub fn inner_request(data: &[u8]) {
    round_trip(data, InnerRequest::parse, InnerRequest::to_json);
    let identity = |p: &str| p.to_owned();
    if let Ok(inner) = crate::protocol::session::validate_inner(data, identity, true) {
        assert!(
            inner.path.starts_with('/'),
            "accepted path {:?}",
            inner.path
        );
        assert!(
            !inner.path.starts_with("/secure/") && inner.path != "/secure",
            "accepted a channel path {:?}",
            inner.path
        );
    }
}

/// Inner response parser.
pub fn inner_response(data: &[u8]) {
    round_trip(data, InnerResponse::parse, InnerResponse::to_json);
}

/// The events and leftover of one way of feeding `stream`, or `None` if the
/// decoder reported an overflow.
fn sse_run(stream: &[u8], cuts: &[usize], max_event: usize) -> Option<(Vec<Vec<u8>>, Vec<u8>)> {
    let mut decoder = SseDecoder::new(max_event);
    let mut events = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
        let cut = cut.clamp(from, stream.len());
        events.extend(decoder.feed(&stream[from..cut]).ok()?);
        from = cut;
    }
    Some((events, decoder.leftover().to_vec()))
}

/// A literal reading of the SSE rules the decoder implements: split at
/// `\n\n`, keep the `data:` lines of each event, join them with `\n`.
fn sse_model(stream: &[u8]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut events = Vec::new();
    let mut rest = stream;
    while let Some(end) = rest.windows(2).position(|w| w == b"\n\n") {
        let lines: Vec<&[u8]> = rest[..end]
            .split(|&b| b == b'\n')
            .filter_map(|l| {
                l.strip_prefix(b"data: ")
                    .or_else(|| l.strip_prefix(b"data:"))
            })
            .collect();
        if !lines.is_empty() {
            events.push(lines.join(&b'\n'));
        }
        rest = &rest[end + 2..];
    }
    (events, rest.to_vec())
}

/// SSE decoder: the same events for every split of the stream, equal to
/// [`sse_model`], and the size bound hit under every split or none.
pub fn sse_decoder(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let small_bound = u.arbitrary::<bool>().unwrap_or(false);
    let max_event = if small_bound {
        usize::from(u.arbitrary::<u8>().unwrap_or(0))
    } else {
        1 << 20
    };
    let cut_count = u.int_in_range(0..=12u8).unwrap_or(0);
    let mut cuts = Vec::with_capacity(usize::from(cut_count));
    for _ in 0..cut_count {
        cuts.push(usize::from(u.arbitrary::<u16>().unwrap_or(0)));
    }
    let stream = u.take_rest();
    let limit = stream.len();
    let mut sorted: Vec<usize> = cuts.iter().map(|c| c % (limit + 1)).collect();
    sorted.sort_unstable();

    let whole = sse_run(stream, &[], max_event);
    let split = sse_run(stream, &sorted, max_event);
    assert_eq!(whole, split, "split at {sorted:?} changed the result");
    if stream.len() <= 512 {
        let every: Vec<usize> = (0..stream.len()).collect();
        assert_eq!(
            whole,
            sse_run(stream, &every, max_event),
            "byte-at-a-time feeding changed the result"
        );
    }
    if !small_bound {
        assert_eq!(
            whole,
            Some(sse_model(stream)),
            "decoder disagrees with the model"
        );
    }
}

/// base64url and hex codecs: canonical decoding is the inverse of
/// encoding, the upstream decoder accepts everything canonical with the
/// same bytes, and hex round-trips.
pub fn base64url(data: &[u8]) {
    let encoded = b64url_encode(data);
    assert_eq!(
        b64url_decode(&encoded, B64Strictness::Canonical)
            .ok()
            .as_deref(),
        Some(data),
        "canonical decode of our own encoding"
    );
    assert_eq!(
        hex_decode_0x(&hex_encode_0x(data)).ok().as_deref(),
        Some(data)
    );

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let canonical = b64url_decode(text, B64Strictness::Canonical);
    let upstream = b64url_decode(text, B64Strictness::Upstream);
    if let Ok(bytes) = &canonical {
        assert_eq!(&b64url_encode(bytes), text, "canonical form is not unique");
        assert_eq!(
            upstream.as_ref().ok(),
            Some(bytes),
            "upstream decoder refuses or changes a canonical string"
        );
    }
    if let Ok(bytes) = &upstream {
        let unpadded = text.trim_end_matches('=');
        assert_ne!(unpadded.len() % 4, 1, "accepted an impossible length");
        let again = b64url_encode(bytes);
        assert_eq!(
            b64url_decode(&again, B64Strictness::Canonical)
                .ok()
                .as_ref(),
            Some(bytes)
        );
    }
    if let Ok(bytes) = hex_decode_0x(text) {
        let digits = text.strip_prefix("0x").unwrap_or(text);
        assert_eq!(
            hex_encode_0x(&bytes),
            format!("0x{}", digits.to_lowercase())
        );
    }
}

/// A sequence number chosen to land near the window's edges often.
fn pick_seq(u: &mut Unstructured<'_>, highest: u64) -> u64 {
    match u.int_in_range(0..=3u8).unwrap_or(0) {
        0 => u64::from(u.arbitrary::<u8>().unwrap_or(0)),
        1 => {
            let delta = i64::from(u.int_in_range(-70i8..=70).unwrap_or(0));
            highest.saturating_add_signed(delta)
        }
        2 => u64::MAX - u64::from(u.arbitrary::<u8>().unwrap_or(0)),
        _ => u.arbitrary::<u64>().unwrap_or(0),
    }
}

/// Replay window against a set of every accepted seq: a seq is accepted
/// iff it is not 0, was never accepted, and is above the highest or less
/// than 64 below it.
pub fn replay_window(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut window = ReplayWindow::new();
    let mut seen = BTreeSet::new();
    let mut highest = 0u64;
    for _ in 0..4096 {
        if u.is_empty() {
            break;
        }
        let seq = pick_seq(&mut u, highest);
        let expected =
            seq != 0 && !seen.contains(&seq) && (seq > highest || highest - seq < REPLAY_WINDOW);
        assert_eq!(window.would_accept(seq), expected, "would_accept({seq})");
        assert_eq!(window.mark(seq), expected, "mark({seq})");
        if expected {
            seen.insert(seq);
            highest = highest.max(seq);
        }
        assert_eq!(window.highest(), highest);
    }
}

/// A key, sid and plaintexts the stateful targets share.
const FUZZ_KEY: [u8; 32] = [0x42; 32];
const FUZZ_SID: &str = "8OHSw7Sllod4aVpLPC0eDw";

/// A tampered or genuine base64url `ct` for `genuine`.
fn pick_ct(u: &mut Unstructured<'_>, genuine: &str, other: &str) -> String {
    match u.int_in_range(0..=5u8).unwrap_or(0) {
        0 => genuine.to_owned(),
        1 => other.to_owned(),
        2 => {
            let mut bytes = b64url_decode(genuine, B64Strictness::Canonical).unwrap_or_default();
            if !bytes.is_empty() {
                let bit = usize::from(u.arbitrary::<u16>().unwrap_or(0)) % (bytes.len() * 8);
                bytes[bit / 8] ^= 1 << (bit % 8);
            }
            b64url_encode(&bytes)
        }
        3 => {
            // The same bytes in the padded, standard-alphabet spelling.
            let mut s: String = genuine
                .chars()
                .map(|c| match c {
                    '-' => '+',
                    '_' => '/',
                    c => c,
                })
                .collect();
            while !s.len().is_multiple_of(4) {
                s.push('=');
            }
            s
        }
        4 => {
            let keep = usize::from(u.arbitrary::<u16>().unwrap_or(0)) % (genuine.len() + 1);
            genuine[..keep].to_owned()
        }
        _ => u.arbitrary::<String>().unwrap_or_default(),
    }
}

/// Response opener: only the genuine frames, in order, with their own fin
/// flag, each once and nothing after fin; `finish` succeeds iff fin opened.
pub fn response_opener(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let request_seq = 2;
    let count = u.int_in_range(1..=6u64).unwrap_or(1);
    let mut sealer = ResponseSealer::new(FUZZ_KEY, FUZZ_SID.to_owned(), request_seq);
    let mut foreign = ResponseSealer::new(FUZZ_KEY, FUZZ_SID.to_owned(), request_seq + 1);
    let mut genuine = Vec::new();
    let mut others = Vec::new();
    for i in 0..count {
        let text = format!("frame {i}").into_bytes();
        let fin = i + 1 == count;
        let (Ok(f), Ok(o)) = (sealer.seal(&text, fin), foreign.seal(&text, fin)) else {
            panic!("sealer refused frame {i} before fin");
        };
        genuine.push((f, text));
        others.push(o);
    }
    let mut opener = ResponseOpener::new(FUZZ_KEY, FUZZ_SID.to_owned(), request_seq);
    let mut expected = 0u64;
    let mut finished = false;
    for _ in 0..64 {
        if u.is_empty() {
            break;
        }
        let pick = usize::from(u.arbitrary::<u8>().unwrap_or(0)) % genuine.len();
        let (base, _) = &genuine[pick];
        let mut frame = base.clone();
        frame.ct = pick_ct(&mut u, &base.ct, &others[pick].ct);
        if u.ratio(1, 4).unwrap_or(false) {
            frame.seq = pick_seq(&mut u, expected);
        }
        if u.ratio(1, 4).unwrap_or(false) {
            frame.fin = match u.int_in_range(0..=2u8).unwrap_or(0) {
                0 => None,
                1 => Some(false),
                _ => Some(true),
            };
        }
        let should_open = !finished
            && usize::try_from(frame.seq).is_ok_and(|s| s < genuine.len())
            && frame.seq == expected
            && {
                let (want, _) = &genuine[expected as usize];
                frame.is_fin() == want.is_fin()
                    && b64url_decode(&frame.ct, B64Strictness::Upstream).ok()
                        == b64url_decode(&want.ct, B64Strictness::Upstream).ok()
            };
        match opener.open(&frame) {
            Ok(plain) => {
                assert!(should_open, "opened a frame the model refuses: {frame:?}");
                assert_eq!(plain, genuine[expected as usize].1, "wrong plaintext");
                finished = frame.is_fin();
                expected += 1;
            }
            Err(e) => assert!(!should_open, "refused the next genuine frame: {e}"),
        }
        assert_eq!(opener.frames_opened(), expected);
        assert_eq!(opener.is_finished(), finished);
        assert_eq!(opener.finish().is_ok(), finished);
    }
}

/// The genuine handshake every verifier run is checked against: the
/// upstream vector's keys, nonce, sid and expiry.
struct HandshakeFixture {
    identity: AgentIdentity,
    attacker: AgentIdentity,
    client_secret: [u8; 32],
    nonce: [u8; 16],
    hello: ServerHello,
    transcript: String,
}

fn handshake_fixture() -> &'static HandshakeFixture {
    static FIXTURE: OnceLock<HandshakeFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let hex32 = |s: &str| -> [u8; 32] {
            let v = hex::decode(s).unwrap_or_default();
            v.try_into().unwrap_or([1; 32])
        };
        let identity = AgentIdentity::from_bytes(&hex32(
            "c2ddba76f071d8115d12d4a8e4d9df7c460aa6ae4f4a59b6c9d1f740a88146f9",
        ))
        .expect("the upstream agent key is valid");
        let attacker = AgentIdentity::from_bytes(&[0x11; 32]).expect("0x11.. is a valid key");
        let client_secret =
            hex32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let nonce: [u8; 16] = std::array::from_fn(|i| i as u8);
        let client = ClientHandshake::new(identity.address(), client_secret, nonce);
        let inputs = ServerHandshakeInputs {
            ephemeral_secret: hex32(
                "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
            ),
            sid: b64url_decode(FUZZ_SID, B64Strictness::Canonical)
                .ok()
                .and_then(|v| v.try_into().ok())
                .unwrap_or([0; 16]),
            expires_at: 1_800_000_000,
        };
        let server = respond(client.hello(), &identity, &inputs, &HonestServer)
            .expect("the upstream handshake succeeds");
        HandshakeFixture {
            identity,
            attacker,
            client_secret,
            nonce,
            hello: server.hello,
            transcript: server.transcript,
        }
    })
}

/// A ServerHello built from the genuine one with fields replaced as the
/// input says, and a signature that the pinned key never produced over
/// the resulting transcript (unless the transcript is unchanged).
fn edited_server_hello(u: &mut Unstructured<'_>, fx: &HandshakeFixture) -> ServerHello {
    let mut hello = fx.hello.clone();
    if u.ratio(1, 8).unwrap_or(false) {
        hello.v = u.arbitrary().unwrap_or(2);
    }
    if u.ratio(1, 4).unwrap_or(false) {
        hello.sid = u.arbitrary().unwrap_or_default();
    }
    if u.ratio(1, 4).unwrap_or(false) {
        hello.enc_pub = match u.int_in_range(0..=2u8).unwrap_or(0) {
            0 => {
                let points = low_order_points();
                let i = usize::from(u.arbitrary::<u8>().unwrap_or(0)) % points.len();
                b64url_encode(&points[i].1)
            }
            1 => b64url_encode(&u.arbitrary::<[u8; 32]>().unwrap_or([9; 32])),
            _ => u.arbitrary().unwrap_or_default(),
        };
    }
    if u.ratio(1, 4).unwrap_or(false) {
        hello.expires_at = u.arbitrary().unwrap_or(0);
    }
    let client = ClientHandshake::new(fx.identity.address(), fx.client_secret, fx.nonce);
    let payload = Transcript::from_hellos(client.hello(), &hello).render();
    let genuine = hex_decode_0x(&fx.hello.signature)
        .ok()
        .and_then(|v| <[u8; 65]>::try_from(v).ok())
        .unwrap_or([0; 65]);
    let signature: Vec<u8> = match u.int_in_range(0..=6u8).unwrap_or(0) {
        0 => genuine.to_vec(),
        1 => fx.attacker.sign_channel(payload.as_bytes()).to_vec(),
        2 => {
            let i = usize::from(u.arbitrary::<u8>().unwrap_or(0)) % OTHER_PREFIXES.len();
            let digest = domain_digest(OTHER_PREFIXES[i], payload.as_bytes());
            fx.identity.sign_digest(&digest).to_vec()
        }
        3 => to_high_s(&genuine).unwrap_or(genuine).to_vec(),
        4 => {
            let mut s = genuine;
            s[64] = u.arbitrary().unwrap_or(0);
            s.to_vec()
        }
        5 => {
            let mut s = genuine;
            let bit = usize::from(u.arbitrary::<u16>().unwrap_or(0)) % (65 * 8);
            s[bit / 8] ^= 1 << (bit % 8);
            s.to_vec()
        }
        _ => u.arbitrary::<Vec<u8>>().unwrap_or_default(),
    };
    hello.signature = hex_encode_0x(&signature);
    hello
}

/// Handshake verifier: a ServerHello is accepted only if its transcript is
/// the one the pinned key signed, and its signature recovers to the pinned
/// key; with the identity check off, a low-order key is still refused.
pub fn handshake_verifier(data: &[u8]) {
    let fx = handshake_fixture();
    let mut u = Unstructured::new(data);
    let mode = u.int_in_range(0..=2u8).unwrap_or(0);
    let hello = match mode {
        0 => match ServerHello::parse(u.take_rest()) {
            Ok(h) => h,
            Err(_) => return,
        },
        _ => edited_server_hello(&mut u, fx),
    };
    let mut client = ClientHandshake::new(fx.identity.address(), fx.client_secret, fx.nonce);
    if mode == 2 {
        client = client.dangerous_skip_identity_check();
    }
    let rendered = Transcript::from_hellos(client.hello(), &hello).render();
    let result = client.finish(&hello);
    let low_order = b64url_decode(&hello.enc_pub, B64Strictness::Upstream)
        .ok()
        .is_some_and(|k| low_order_points().iter().any(|(_, p)| p[..] == k[..]));
    let Ok(session) = result else { return };
    assert!(!low_order, "accepted the low-order key {:?}", hello.enc_pub);
    assert_eq!(hello.v, 1, "accepted version {}", hello.v);
    if mode == 2 {
        return;
    }
    assert_eq!(
        rendered, fx.transcript,
        "accepted a transcript the pinned key never signed"
    );
    assert_eq!(
        recover_channel_signer(
            rendered.as_bytes(),
            &hello.signature,
            SignaturePolicy::UPSTREAM
        )
        .ok(),
        Some(fx.identity.address()),
        "accepted a signature that does not recover to the pinned key"
    );
    assert_eq!(session.sid(), fx.hello.sid);
    assert_eq!(session.expires_at(), fx.hello.expires_at);
}

/// Server call opening against a model: a call opens iff `v` is 1, the
/// session is live, `ct` decodes to the genuine sealed bytes for its seq,
/// and the seq passes the replay window; the plaintext is the genuine one.
pub fn server_open_call(data: &[u8]) {
    use crate::protocol::keys::SessionKeys;
    let keys = SessionKeys {
        c2s: FUZZ_KEY,
        s2c: [0x24; 32],
    };
    let expires_at = 1_800_000_000;
    let client = ClientSession::new(FUZZ_SID.to_owned(), keys.clone(), expires_at);
    let mut server = ServerSession::new(FUZZ_SID.to_owned(), keys, expires_at);
    let genuine: Vec<(CallRequest, Vec<u8>)> = (1..=8u64)
        .map(|seq| {
            let text = format!("{{\"method\":\"GET\",\"path\":\"/call/{seq}\"}}").into_bytes();
            (client.seal_at(seq, &text), text)
        })
        .collect();
    let sealed = |seq: u64| -> Option<Vec<u8>> {
        let i = usize::try_from(seq.checked_sub(1)?).ok()?;
        genuine
            .get(i)
            .and_then(|(c, _)| b64url_decode(&c.ct, B64Strictness::Upstream).ok())
    };
    let mut u = Unstructured::new(data);
    let mut seen = BTreeSet::new();
    let mut highest = 0u64;
    for _ in 0..64 {
        if u.is_empty() {
            break;
        }
        let pick = usize::from(u.arbitrary::<u8>().unwrap_or(0)) % genuine.len();
        let other = (pick + 1) % genuine.len();
        let mut call = genuine[pick].0.clone();
        call.ct = pick_ct(&mut u, &genuine[pick].0.ct, &genuine[other].0.ct);
        if u.ratio(1, 4).unwrap_or(false) {
            call.seq = pick_seq(&mut u, highest);
        }
        if u.ratio(1, 16).unwrap_or(false) {
            call.v = u.arbitrary().unwrap_or(0);
        }
        let now = if u.ratio(1, 8).unwrap_or(false) {
            u.arbitrary().unwrap_or(i64::MAX)
        } else {
            expires_at - 1
        };
        let authentic = sealed(call.seq).is_some_and(|want| {
            b64url_decode(&call.ct, B64Strictness::Upstream).ok() == Some(want)
        });
        let fresh = call.seq != 0
            && !seen.contains(&call.seq)
            && (call.seq > highest || highest - call.seq < REPLAY_WINDOW);
        let should_open = call.v == 1 && now < expires_at && authentic && fresh;
        match server.open_call(&call, now, &HonestCalls) {
            Ok(opened) => {
                assert!(should_open, "opened a call the model refuses: {call:?}");
                assert_eq!(opened.seq, call.seq);
                let i = usize::try_from(call.seq - 1).unwrap_or(0);
                assert_eq!(opened.plaintext, genuine[i].1, "wrong plaintext");
                seen.insert(call.seq);
                highest = highest.max(call.seq);
            }
            Err(e) => assert!(!should_open, "refused a fresh genuine call: {e}"),
        }
    }
}
