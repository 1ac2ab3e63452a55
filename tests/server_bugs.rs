//! Every `--bug` knob of the reference server is observable on the wire:
//! each test drives the broken server with the core and sees the one
//! requirement it breaks (the basis of the harness's self-test).

mod support;

use std::time::Duration;

use osc_harness::protocol::encoding::{b64url_decode, b64url_encode, hex_decode_0x, B64Strictness};
use osc_harness::protocol::error::{FrameError, HandshakeError};
use osc_harness::protocol::framing::ResponseOpener;
use osc_harness::protocol::handshake::{low_order_points, Transcript, TranscriptField};
use osc_harness::protocol::identity::{
    domain_digest, recover_address, recover_channel_signer, SignaturePolicy, OTHER_PREFIXES,
};
use osc_harness::protocol::keys::{derive_session_keys, response_key};
use osc_harness::protocol::wire::{InnerRequest, ServerHello};
use osc_harness::server::Bug;
use osc_harness::transport::{self, Limits, OuterRequest, TransportError};
use support::server::*;

/// The knobs these tests cover; checked against `Bug::ALL` below.
const COVERED: &[&str] = &[
    "replay-check-off",
    "window-off-by-one",
    "seq-zero-accepted",
    "mark-before-open",
    "no-426-gate",
    "relay-marker-trusted",
    "stream-drops-fin",
    "stream-cut-mid-frame",
    "frames-reordered",
    "fin-on-every-frame",
    "static-ephemeral-key",
    "wrong-signing-key",
    "wrong-signature-domain",
    "transcript-field-unsigned",
    "sessions-never-expire",
    "session-key-for-responses",
    "same-key-both-directions",
    "status-outside",
    "inner-auth-unchecked",
    "nested-secure-allowed",
    "low-order-accepted",
    "low-order-server-key",
    "session-store-unbounded",
    "expiry-in-past",
    "signature-hex-uppercase",
    "version-before-session",
    "frame-ct-padded",
    "hello-refusal-not-json",
    "signature-raw-v",
    "address-sha3",
    "hello-version-unchecked",
    "garbage-hello-500",
    "unknown-agent-malformed",
    "stream-nonce-little-endian",
    "replay-before-aead",
    "either-direction-opens",
    "fin-on-last-chunk",
    "session-tied-to-origin",
    "loopback-gated",
    "channel-run-gated",
    "panic-on-empty-ct",
    "panic-on-huge-seq",
    "hang-on-length-lie",
    "unknown-session-once",
    "unknown-session-always",
    "replay-refused-once",
    "rate-limit-every-handshake",
    "upgrade-required-on-call",
    "plaintext-inner-response",
    "endless-stream",
    "slow-drip",
    "huge-event",
];

#[test]
fn every_knob_has_a_wire_test() {
    let all: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
    assert_eq!(all, COVERED);
}

fn run_path(s: &osc_harness::server::RunningServer) -> String {
    format!("/agents/{}/run", s.agent_id)
}

#[tokio::test]
async fn replay_check_off_executes_a_replay() {
    let s = start_bug(Bug::ReplayCheckOff).await;
    let mut sess = handshake(&s).await;
    let call = sess
        .seal_call(&authed(&s, "POST", &run_path(&s)), now())
        .unwrap();
    assert_eq!(post_call(&s, call.to_json(), true).await.status, 200);
    assert_eq!(post_call(&s, call.to_json(), true).await.status, 200);
    assert_eq!(s.executions(), 2, "the replay executed again");
}

#[tokio::test]
async fn window_off_by_one_accepts_64_below() {
    let s = start_bug(Bug::WindowOffByOne).await;
    let sess = handshake(&s).await;
    let pt = authed(&s, "GET", "/health").to_json();
    assert_eq!(
        post_call(&s, sess.seal_at(100, pt.as_bytes()).to_json(), true)
            .await
            .status,
        200
    );
    let r = post_call(&s, sess.seal_at(36, pt.as_bytes()).to_json(), true).await;
    assert_eq!(r.status, 200, "seq 64 below the highest was accepted");
}

#[tokio::test]
async fn seq_zero_accepted() {
    let s = start_bug(Bug::SeqZeroAccepted).await;
    let sess = handshake(&s).await;
    let call = sess.seal_at(0, authed(&s, "GET", "/health").to_json().as_bytes());
    let r = post_call(&s, call.to_json(), true).await;
    assert_eq!(r.status, 200);
    assert_eq!(open_buffered(&sess, 0, &r).status, 200);
}

#[tokio::test]
async fn version_before_session_refuses_an_unknown_sid_as_undecryptable() {
    let s = start_bug(Bug::VersionBeforeSession).await;
    let mut sess = handshake(&s).await;
    let mut call = sess
        .seal_call(&authed(&s, "GET", "/health"), now())
        .unwrap()
        .to_json();
    call = call.replace("\"v\":1", "\"v\":2");
    call = call.replacen(
        &format!("\"{}\"", sess.sid()),
        "\"AAAAAAAAAAAAAAAAAAAAAA\"",
        1,
    );
    let r = post_call(&s, call, true).await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("secure_decrypt_failed"));
}

#[tokio::test]
async fn signature_hex_uppercase_writes_the_hello_signature_in_capitals() {
    let s = start_bug(Bug::SignatureHexUppercase).await;
    let r = send(
        &s,
        OuterRequest::post_json(
            "/secure/session",
            osc_harness::protocol::handshake::ClientHandshake::new(
                s.agent_address,
                [7; 32],
                [9; 16],
            )
            .hello()
            .to_json(),
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    let hello = ServerHello::parse(&r.body).unwrap();
    let hex = hello.signature.strip_prefix("0x").unwrap();
    assert!(hex.bytes().any(|b| b.is_ascii_uppercase()), "{hex}");
    assert!(!hex.bytes().any(|b| b.is_ascii_lowercase()), "{hex}");
}

#[tokio::test]
async fn mark_before_open_burns_seqs() {
    let s = start_bug(Bug::MarkBeforeOpen).await;
    let sess = handshake(&s).await;
    let pt = authed(&s, "GET", "/health").to_json();
    let mut forged = sess.seal_at(5, pt.as_bytes());
    forged.ct = b64url_encode(&[1u8; 48]);
    assert_eq!(post_call(&s, forged.to_json(), true).await.status, 400);
    let r = post_call(&s, sess.seal_at(5, pt.as_bytes()).to_json(), true).await;
    assert_eq!(r.status, 409, "a forged frame burnt the genuine seq");
}

#[tokio::test]
async fn no_426_gate_runs_remote_plaintext() {
    let s = start_bug(Bug::No426Gate).await;
    let r = send(
        &s,
        OuterRequest::post_json(run_path(&s), "{}")
            .with_header(RELAY, "1")
            .with_header("Authorization", format!("Bearer {}", s.access_key)),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(s.executions(), 1);
}

#[tokio::test]
async fn relay_marker_trusted_gives_relay_traffic_loopback_trust() {
    let s = start_bug(Bug::RelayMarkerTrusted).await;
    let r = send(
        &s,
        OuterRequest::post_json(run_path(&s), "{}").with_header(RELAY, "1"),
    )
    .await;
    assert_eq!(
        r.status,
        200,
        "no key, no channel, yet executed: {}",
        text(&r)
    );
}

async fn stream_frames(
    bug: Bug,
) -> (
    Vec<osc_harness::protocol::wire::Frame>,
    Vec<u8>,
    ResponseOpener,
) {
    let s = start_bug(bug).await;
    let mut sess = handshake(&s).await;
    let (seq, r) = call(&s, &mut sess, &dispatch(&s, 3, 8), true).await;
    assert_eq!(r.status, 200);
    let (frames, leftover) = sse_frames(&r.body);
    (frames, leftover, sess.response_opener(seq))
}

#[tokio::test]
async fn stream_drops_fin_is_a_truncation() {
    let (frames, leftover, mut opener) = stream_frames(Bug::StreamDropsFin).await;
    assert!(leftover.is_empty());
    assert_eq!(frames.len(), 4, "three events and [DONE], no fin frame");
    for f in &frames {
        assert!(!f.is_fin());
        opener.open(f).unwrap();
    }
    assert!(matches!(
        opener.finish(),
        Err(FrameError::Truncated { frames: 4 })
    ));
}

#[tokio::test]
async fn stream_cut_mid_frame_leaves_half_an_event() {
    let (frames, leftover, mut opener) = stream_frames(Bug::StreamCutMidFrame).await;
    assert_eq!(frames.len(), 4);
    assert!(
        leftover.starts_with(b"data: {\"seq\":4"),
        "half a frame left over"
    );
    for f in &frames {
        opener.open(f).unwrap();
    }
    assert!(opener.finish().is_err());
}

#[tokio::test]
async fn frames_reordered_swaps_the_first_two() {
    let (frames, _, mut opener) = stream_frames(Bug::FramesReordered).await;
    let seqs: Vec<u64> = frames.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, vec![1, 0, 2, 3, 4]);
    assert!(matches!(
        opener.open(&frames[0]),
        Err(FrameError::OutOfOrder {
            expected: 0,
            got: 1
        })
    ));
}

#[tokio::test]
async fn fin_on_every_frame() {
    let (frames, _, mut opener) = stream_frames(Bug::FinOnEveryFrame).await;
    assert_eq!(frames.len(), 5);
    assert!(frames.iter().all(|f| f.is_fin()));
    opener.open(&frames[0]).unwrap();
    assert!(matches!(
        opener.open(&frames[1]),
        Err(FrameError::AfterFin(1))
    ));
}

#[tokio::test]
async fn static_ephemeral_key_repeats() {
    let s = start_bug(Bug::StaticEphemeralKey).await;
    let (_, a, _) = handshake_raw(&s).await;
    let (_, b, _) = handshake_raw(&s).await;
    assert_eq!(a.enc_pub, b.enc_pub);
}

async fn refused_hello(bug: Bug) -> (osc_harness::server::RunningServer, ServerHello, String) {
    let s = start_bug(bug).await;
    let hs = client_handshake(&s);
    let hello = hs.hello().clone();
    let r = post_hello(&s, hello.to_json()).await;
    assert_eq!(r.status, 200);
    let sh = ServerHello::parse(&r.body).unwrap();
    let err = hs.finish(&sh).expect_err("the client refuses the hello");
    assert!(matches!(err, HandshakeError::IdentityMismatch(_)), "{err}");
    let transcript = Transcript::from_hellos(&hello, &sh);
    (s, sh, transcript.render_without(None))
}

#[tokio::test]
async fn wrong_signing_key_is_not_the_agent() {
    let (s, sh, transcript) = refused_hello(Bug::WrongSigningKey).await;
    let signer = recover_channel_signer(
        transcript.as_bytes(),
        &sh.signature,
        SignaturePolicy::STRICT,
    )
    .unwrap();
    assert_ne!(signer, s.agent_address, "a valid signature by another key");
}

#[tokio::test]
async fn wrong_signature_domain_signs_another_prefix() {
    let (s, sh, transcript) = refused_hello(Bug::WrongSignatureDomain).await;
    let sig = hex_decode_0x(&sh.signature).unwrap();
    let digest = domain_digest(OTHER_PREFIXES[0], transcript.as_bytes());
    let signer = recover_address(&digest, &sig, SignaturePolicy::STRICT).unwrap();
    assert_eq!(
        signer, s.agent_address,
        "the agent signed under the wrong prefix"
    );
}

#[tokio::test]
async fn transcript_field_unsigned_leaves_out_the_server_key() {
    let s = start_bug(Bug::TranscriptFieldUnsigned).await;
    let hs = client_handshake(&s);
    let hello = hs.hello().clone();
    let sh = ServerHello::parse(&post_hello(&s, hello.to_json()).await.body).unwrap();
    assert!(hs.finish(&sh).is_err());
    let partial =
        Transcript::from_hellos(&hello, &sh).render_without(Some(TranscriptField::ServerEncPub));
    let signer =
        recover_channel_signer(partial.as_bytes(), &sh.signature, SignaturePolicy::STRICT).unwrap();
    assert_eq!(signer, s.agent_address);
}

#[tokio::test]
async fn sessions_never_expire() {
    let s = start_with(&[Bug::SessionsNeverExpire], |c| c.session_ttl_secs = 0).await;
    let sess = handshake(&s).await;
    let call = sess.seal_at(1, authed(&s, "GET", "/health").to_json().as_bytes());
    assert_eq!(post_call(&s, call.to_json(), true).await.status, 200);
}

#[tokio::test]
async fn session_key_for_responses() {
    let s = start_bug(Bug::SessionKeyForResponses).await;
    let mut sess = handshake(&s).await;
    let (seq, r) = call(&s, &mut sess, &authed(&s, "GET", "/health"), true).await;
    let frame = osc_harness::protocol::wire::Frame::parse(&r.body).unwrap();
    assert!(sess.response_opener(seq).open(&frame).is_err());
    let mut wrong = ResponseOpener::new(sess.keys().s2c, sess.sid().to_owned(), seq);
    assert!(wrong.open(&frame).is_ok(), "sealed under s2c itself");
}

#[tokio::test]
async fn same_key_both_directions() {
    let s = start_bug(Bug::SameKeyBothDirections).await;
    let mut sess = handshake(&s).await;
    let (seq, r) = call(&s, &mut sess, &authed(&s, "GET", "/health"), true).await;
    assert_eq!(r.status, 200, "the request still opens under c2s");
    let frame = osc_harness::protocol::wire::Frame::parse(&r.body).unwrap();
    assert!(sess.response_opener(seq).open(&frame).is_err());
    let key = response_key(&sess.keys().c2s, seq);
    let mut wrong = ResponseOpener::new(key, sess.sid().to_owned(), seq);
    assert!(wrong.open(&frame).is_ok(), "s2c equals c2s");
}

#[tokio::test]
async fn status_outside_leaks_the_inner_status() {
    let s = start_bug(Bug::StatusOutside).await;
    let mut sess = handshake(&s).await;
    let (seq, r) = call(&s, &mut sess, &authed(&s, "GET", "/nowhere"), true).await;
    assert_eq!(r.status, 404);
    assert_eq!(open_buffered(&sess, seq, &r).status, 404);
}

#[tokio::test]
async fn inner_auth_unchecked() {
    let s = start_bug(Bug::InnerAuthUnchecked).await;
    let mut sess = handshake(&s).await;
    let resp = call_ok(&s, &mut sess, &inner("POST", &run_path(&s)), true).await;
    assert_eq!(resp.status, 200, "no key, yet executed");
}

#[tokio::test]
async fn nested_secure_allowed() {
    let s = start_bug(Bug::NestedSecureAllowed).await;
    let mut sess = handshake(&s).await;
    let (seq, r) = call(
        &s,
        &mut sess,
        &authed(&s, "POST", "/v1/secure/session"),
        true,
    )
    .await;
    assert_eq!(r.status, 200, "the nested path passed the check");
    assert_eq!(
        open_buffered(&sess, seq, &r).status,
        400,
        "and reached the handshake"
    );
    let nested = InnerRequest {
        body: Some(b64url_encode(
            client_handshake(&s).hello().to_json().as_bytes(),
        )),
        ..authed(&s, "POST", "/api/secure/session")
    };
    let resp = call_ok(&s, &mut sess, &nested, true).await;
    assert_eq!(resp.status, 200);
    ServerHello::parse(&inner_body(&resp)).expect("a nested ServerHello, sealed");
    let (_, r) = call(&s, &mut sess, &authed(&s, "POST", "/secure/session"), true).await;
    assert_eq!(r.status, 400, "the literal prefix is still refused");
}

#[tokio::test]
async fn low_order_accepted() {
    let s = start_bug(Bug::LowOrderAccepted).await;
    let mut hello = client_handshake(&s).hello().clone();
    hello.enc_pub = b64url_encode(&[0u8; 32]);
    assert_eq!(post_hello(&s, hello.to_json()).await.status, 200);
}

#[tokio::test]
async fn low_order_server_key_is_signed_and_keys_a_public_session() {
    let s = start_bug(Bug::LowOrderServerKey).await;
    let hs = client_handshake(&s);
    let hello = hs.hello().clone();
    let sh = ServerHello::parse(&post_hello(&s, hello.to_json()).await.body).unwrap();
    let announced = b64url_decode(&sh.enc_pub, B64Strictness::Canonical).unwrap();
    assert!(
        low_order_points()
            .iter()
            .any(|(_, p)| p[..] == announced[..]),
        "eS {} is a low-order point",
        sh.enc_pub
    );
    let transcript = Transcript::from_hellos(&hello, &sh).render();
    let signer = recover_channel_signer(
        transcript.as_bytes(),
        &sh.signature,
        SignaturePolicy::STRICT,
    )
    .unwrap();
    assert_eq!(signer, s.agent_address, "the agent signed the low-order eS");
    let Err(err) = hs.finish(&sh) else {
        panic!("an honest client took the low-order eS");
    };
    assert!(matches!(err, HandshakeError::LowOrderKey), "{err}");

    // A client without the HS-7 check gets a working session whose keys
    // come from the all-zero secret and the public transcript.
    let hs = client_handshake(&s).dangerous_accept_low_order();
    let hello = hs.hello().clone();
    let sh = ServerHello::parse(&post_hello(&s, hello.to_json()).await.body).unwrap();
    let mut sess = hs.finish(&sh).expect("accepted without the check");
    let public = derive_session_keys(
        &[0u8; 32],
        Transcript::from_hellos(&hello, &sh).render().as_bytes(),
    );
    assert!(sess.keys() == &public, "keys anyone can compute");
    let resp = call_ok(&s, &mut sess, &authed(&s, "GET", "/health"), true).await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn session_store_unbounded() {
    let s = start_with(&[Bug::SessionStoreUnbounded], |c| c.max_sessions = 3).await;
    let mut first = handshake(&s).await;
    for _ in 0..5 {
        handshake(&s).await;
    }
    let resp = call_ok(&s, &mut first, &authed(&s, "GET", "/health"), true).await;
    assert_eq!(resp.status, 200, "the oldest session was never evicted");
    assert_eq!(s.sessions_held(), 6);
}

#[tokio::test]
async fn expiry_in_past() {
    let s = start_bug(Bug::ExpiryInPast).await;
    let (_, sh, _) = handshake_raw(&s).await;
    assert!(
        sh.expires_at < now(),
        "announced expiry {} is past",
        sh.expires_at
    );
}

async fn drops_connection(
    bug: Bug,
    mutate: impl Fn(&mut osc_harness::protocol::wire::CallRequest),
) {
    for (bugs, broken) in [(vec![], false), (vec![bug], true)] {
        let s = start_with(&bugs, |_| {}).await;
        let sess = handshake(&s).await;
        let mut call = sess.seal_at(1, authed(&s, "GET", "/health").to_json().as_bytes());
        mutate(&mut call);
        let req = OuterRequest::post_json("/secure/call", call.to_json()).with_header(RELAY, "1");
        let result = transport::send(&target(&s), &req, &limits()).await;
        if broken {
            assert!(
                result.is_err(),
                "{bug}: the connection drops without an answer"
            );
        } else {
            assert_eq!(result.unwrap().status, 400, "honest: a calm 400");
        }
        // The server as a whole lives on.
        assert_eq!(send(&s, OuterRequest::get("/health")).await.status, 200);
    }
}

#[tokio::test]
async fn panic_on_empty_ct_drops_the_connection() {
    drops_connection(Bug::PanicOnEmptyCt, |c| c.ct.clear()).await;
}

#[tokio::test]
async fn panic_on_huge_seq_drops_the_connection() {
    drops_connection(Bug::PanicOnHugeSeq, |c| c.seq = (1 << 60) + 1).await;
}

#[tokio::test]
async fn hang_on_length_lie_never_times_out() {
    let raw = b"POST /secure/call HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"v\":1}";
    let quick = |secs| Limits {
        response_timeout: Duration::from_secs(secs),
        idle_timeout: Duration::from_secs(1),
        ..limits()
    };
    let honest = start_with(&[], |c| c.body_read_timeout = Duration::from_secs(1)).await;
    let reply = transport::send_raw(&target(&honest), raw, &quick(10))
        .await
        .unwrap();
    assert!(
        reply.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let broken = start_with(&[Bug::HangOnLengthLie], |c| {
        c.body_read_timeout = Duration::from_secs(1)
    })
    .await;
    let result = transport::send_raw(&target(&broken), raw, &quick(3)).await;
    assert!(
        matches!(result, Err(TransportError::Timeout { .. })),
        "still waiting for the body: {result:?}"
    );
}

/// An honest sealed `GET /health` on a fresh session of `s`.
async fn health_call(s: &osc_harness::server::RunningServer) -> transport::OuterResponse {
    let sess = handshake(s).await;
    let pt = authed(s, "GET", "/health").to_json();
    post_call(s, sess.seal_at(1, pt.as_bytes()).to_json(), true).await
}

#[tokio::test]
async fn refusal_knobs_answer_in_the_servers_place() {
    let once = start_bug(Bug::UnknownSessionOnce).await;
    let first = health_call(&once).await;
    assert_eq!(
        (first.status, error_code(&first).as_deref()),
        (401, Some("secure_session_unknown"))
    );
    assert_eq!(health_call(&once).await.status, 200, "only the first call");

    let always = start_bug(Bug::UnknownSessionAlways).await;
    for _ in 0..2 {
        assert_eq!(health_call(&always).await.status, 401);
    }

    let replay = start_bug(Bug::ReplayRefusedOnce).await;
    let first = health_call(&replay).await;
    assert_eq!(
        (first.status, error_code(&first).as_deref()),
        (409, Some("secure_replay"))
    );
    assert_eq!(health_call(&replay).await.status, 200);

    let upgrade = start_bug(Bug::UpgradeRequiredOnCall).await;
    let r = health_call(&upgrade).await;
    assert_eq!(r.status, 426);
    assert!(text(&r).contains("secure_channel_required"), "{}", text(&r));

    let limited = start_bug(Bug::RateLimitEveryHandshake).await;
    let r = post_hello(&limited, client_handshake(&limited).body().to_vec()).await;
    assert_eq!(r.status, 429);
}

#[tokio::test]
async fn plaintext_inner_response_is_no_frame() {
    let s = start_bug(Bug::PlaintextInnerResponse).await;
    let r = health_call(&s).await;
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["status"], 200, "{v}");
    assert!(
        v.get("ct").is_none(),
        "a plaintext inner response, not a frame: {v}"
    );
}

#[tokio::test]
async fn hostile_stream_knobs_answer_with_a_made_up_stream() {
    for (bug, starts) in [
        (Bug::EndlessStream, &b": keep-alive"[..]),
        (Bug::SlowDrip, &b": ."[..]),
        (Bug::HugeEvent, &b"data: "[..]),
    ] {
        let s = start_bug(bug).await;
        let sess = handshake(&s).await;
        let pt = authed(&s, "GET", "/health").to_json();
        let req = OuterRequest::post_json("/secure/call", sess.seal_at(1, pt.as_bytes()).to_json());
        let mut r = transport::send_streaming(&target(&s), &req, &limits())
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{bug}");
        assert_eq!(r.header("content-type"), Some("text/event-stream"), "{bug}");
        let chunk = r.next_chunk().await.unwrap().expect("a first chunk");
        assert!(
            chunk.starts_with(starts),
            "{bug}: {:?}",
            &chunk[..chunk.len().min(20)]
        );
    }
}

#[tokio::test]
async fn frame_ct_padded_writes_padding() {
    let (frames, _, mut opener) = stream_frames(Bug::FrameCtPadded).await;
    // The empty fin frame is 16 bytes of tag: base64 of it always needs padding.
    let fin = frames.last().unwrap();
    assert!(fin.ct.ends_with("=="), "{}", fin.ct);
    assert!(b64url_decode(&fin.ct, B64Strictness::Canonical).is_err());
    for f in &frames {
        opener.open(f).unwrap();
    }
    opener.finish().unwrap();
}

#[tokio::test]
async fn hello_refusal_not_json_answers_in_plain_text() {
    let s = start_bug(Bug::HelloRefusalNotJson).await;
    let r = post_hello(&s, "not json").await;
    assert_eq!(r.status, 400);
    assert_eq!(text(&r), "Invalid handshake request");
    let content_type = r
        .headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.as_str());
    assert_eq!(content_type, Some("text/plain; charset=utf-8"));
}

#[tokio::test]
async fn signature_raw_v_writes_the_recovery_id() {
    let s = start_bug(Bug::SignatureRawV).await;
    let r = post_hello(&s, client_handshake(&s).hello().to_json()).await;
    assert_eq!(r.status, 200);
    let hello = ServerHello::parse(&r.body).unwrap();
    let sig = hex_decode_0x(&hello.signature).unwrap();
    assert!(sig[64] <= 1, "v = {}", sig[64]);
}

#[tokio::test]
async fn address_sha3_announces_an_address_the_signature_does_not_recover_to() {
    let s = start_bug(Bug::AddressSha3).await;
    let hs = client_handshake(&s);
    let hello = hs.hello().clone();
    let r = post_hello(&s, hello.to_json()).await;
    assert_eq!(r.status, 200, "the server answers to its SHA3 address");
    let server = ServerHello::parse(&r.body).unwrap();
    let payload = Transcript::from_hellos(&hello, &server).render();
    let signer = recover_channel_signer(
        payload.as_bytes(),
        &server.signature,
        SignaturePolicy::default(),
    )
    .unwrap();
    assert_ne!(signer, s.agent_address);
}

fn hello_with(
    s: &osc_harness::server::RunningServer,
    field: &str,
    value: serde_json::Value,
) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(&client_handshake(s).hello().to_json()).unwrap();
    v[field] = value;
    v.to_string()
}

#[tokio::test]
async fn hello_version_unchecked_serves_v2() {
    let s = start_bug(Bug::HelloVersionUnchecked).await;
    let r = post_hello(&s, hello_with(&s, "v", 2.into())).await;
    assert_eq!(r.status, 200, "{}", text(&r));
}

#[tokio::test]
async fn garbage_hello_500() {
    let s = start_bug(Bug::GarbageHello500).await;
    let r = post_hello(&s, "not json").await;
    assert_eq!(r.status, 500, "{}", text(&r));
}

#[tokio::test]
async fn unknown_agent_malformed() {
    let s = start_bug(Bug::UnknownAgentMalformed).await;
    let other = format!("0x{}", "ab".repeat(20));
    let r = post_hello(&s, hello_with(&s, "agentAddress", other.into())).await;
    assert_eq!(r.status, 400, "{}", text(&r));
    assert!(text(&r).contains("Malformed handshake"));
}

#[tokio::test]
async fn stream_nonce_little_endian_breaks_frames_after_the_first() {
    let (frames, _, mut opener) = stream_frames(Bug::StreamNonceLittleEndian).await;
    opener.open(&frames[0]).unwrap();
    assert!(opener.open(&frames[1]).is_err());
}

#[tokio::test]
async fn replay_before_aead_answers_a_forgery_on_a_used_seq_with_409() {
    let s = start_bug(Bug::ReplayBeforeAead).await;
    let sess = handshake(&s).await;
    let pt = authed(&s, "GET", "/health").to_json();
    let r = post_call(&s, sess.seal_at(5, pt.as_bytes()).to_json(), true).await;
    assert_eq!(r.status, 200);
    let mut forged = sess.seal_at(5, pt.as_bytes());
    forged.ct = b64url_encode(&[1u8; 48]);
    let r = post_call(&s, forged.to_json(), true).await;
    assert_eq!(r.status, 409, "{}", text(&r));
}

#[tokio::test]
async fn either_direction_opens_a_call_sealed_with_s2c() {
    let s = start_bug(Bug::EitherDirectionOpens).await;
    let sess = handshake(&s).await;
    let pt = authed(&s, "GET", "/health").to_json();
    let aad = osc_harness::protocol::keys::request_aad(sess.sid(), 7);
    let ct =
        osc_harness::protocol::keys::seal_b64(&sess.keys().s2c, 7, aad.as_bytes(), pt.as_bytes());
    let body = serde_json::json!({"v": 1, "sid": sess.sid(), "seq": 7, "ct": ct}).to_string();
    let r = post_call(&s, body, true).await;
    assert_eq!(r.status, 200, "{}", text(&r));
}

#[tokio::test]
async fn fin_on_last_chunk_has_no_empty_fin_frame() {
    let (frames, _, mut opener) = stream_frames(Bug::FinOnLastChunk).await;
    assert_eq!(
        frames.len(),
        4,
        "three events and [DONE], the last with fin"
    );
    let mut last = Vec::new();
    for f in &frames {
        last = opener.open(f).unwrap();
    }
    opener.finish().unwrap();
    assert!(frames.last().unwrap().is_fin());
    assert!(!last.is_empty(), "the fin frame carries data");
}

#[tokio::test]
async fn session_tied_to_origin_refuses_the_other_kind_of_caller() {
    let s = start_bug(Bug::SessionTiedToOrigin).await;
    let mut sess = handshake(&s).await;
    let inner = authed(&s, "GET", "/health");
    let (_, r) = call(&s, &mut sess, &inner, true).await;
    assert_eq!(r.status, 200);
    let (_, r) = call(&s, &mut sess, &inner, false).await;
    assert_eq!(r.status, 401, "{}", text(&r));
}

#[tokio::test]
async fn loopback_gated_refuses_local_plaintext_runs() {
    let s = start_bug(Bug::LoopbackGated).await;
    let r = send(
        &s,
        OuterRequest::post_json(run_path(&s), "{}")
            .with_header("Authorization", format!("Bearer {}", s.access_key)),
    )
    .await;
    assert_eq!(r.status, 426, "{}", text(&r));
}

#[tokio::test]
async fn channel_run_gated_refuses_sealed_runs() {
    let s = start_bug(Bug::ChannelRunGated).await;
    let mut sess = handshake(&s).await;
    let inner = authed(&s, "POST", &run_path(&s));
    let r = call_ok(&s, &mut sess, &inner, true).await;
    assert_eq!(r.status, 426);
}
