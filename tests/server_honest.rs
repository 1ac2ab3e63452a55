//! The honest reference server meets each server requirement of SPEC
//! §4–§10, over real loopback HTTP, driven with the protocol core.

mod support;

use osc_harness::protocol::encoding::b64url_encode;
use osc_harness::protocol::error::{HandshakeRefusal, UPGRADE_REQUIRED_BODY};
use osc_harness::protocol::handshake::low_order_points;
use osc_harness::protocol::wire::{ClientHello, InnerRequest, ServerHello};
use osc_harness::transport::OuterRequest;
use support::server::*;

fn hello_with(base: &ClientHello, f: impl FnOnce(&mut ClientHello)) -> String {
    let mut h = base.clone();
    f(&mut h);
    h.to_json()
}

#[tokio::test]
async fn hs_handshake_verifies_against_the_pinned_address_and_keys_are_fresh() {
    let s = start().await;
    let (_, a, _) = handshake_raw(&s).await;
    let (_, b, _) = handshake_raw(&s).await;
    assert_ne!(
        a.enc_pub, b.enc_pub,
        "HS-3: fresh ephemeral key per session"
    );
    assert_ne!(a.sid, b.sid);
    let ttl = a.expires_at - now();
    assert!(
        (3590..=3600).contains(&ttl),
        "expiresAt is now + 3600: {ttl}"
    );
}

#[tokio::test]
async fn hs_refusals_have_exact_statuses_and_bodies() {
    let s = start().await;
    let base = client_handshake(&s).hello().clone();
    let cases: Vec<(String, HandshakeRefusal)> = vec![
        ("not json".into(), HandshakeRefusal::InvalidRequest),
        (r#"{"v":1}"#.into(), HandshakeRefusal::InvalidRequest),
        (
            hello_with(&base, |h| h.v = 2),
            HandshakeRefusal::UnsupportedVersion,
        ),
        (
            hello_with(&base, |h| {
                h.agent_address = format!("0x{}", "11".repeat(20))
            }),
            HandshakeRefusal::UnknownAgent,
        ),
        (
            hello_with(&base, |h| h.enc_pub = b64url_encode(&[7u8; 31])),
            HandshakeRefusal::Malformed,
        ),
        (
            hello_with(&base, |h| h.nonce.clear()),
            HandshakeRefusal::Malformed,
        ),
    ];
    for (body, want) in cases {
        let r = post_hello(&s, body.clone()).await;
        assert_eq!(r.status, want.status(), "{body}");
        assert_eq!(text(&r), want.body(), "{body}");
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("application/json"));
    }
}

#[tokio::test]
async fn hs7_low_order_client_keys_are_refused() {
    let s = start().await;
    let base = client_handshake(&s).hello().clone();
    for (name, point) in low_order_points() {
        let r = post_hello(&s, hello_with(&base, |h| h.enc_pub = b64url_encode(&point))).await;
        assert_eq!(r.status, 400, "{name}");
        assert_eq!(text(&r), HandshakeRefusal::Malformed.body(), "{name}");
    }
}

#[tokio::test]
async fn hs8_rate_limit_per_source_with_relay_hops() {
    let s = start_with(&[], |c| c.handshake_rate = Some((2, 60))).await;
    let hs = || client_handshake(&s).hello().to_json();
    for _ in 0..2 {
        assert_eq!(post_hello(&s, hs()).await.status, 200);
    }
    // Garbage counts against nobody once the budget is spent: 429 first.
    let r = post_hello(&s, "garbage").await;
    assert_eq!(r.status, 429);
    assert_eq!(text(&r), HandshakeRefusal::RateLimited.body());
    // Relay-origin traffic is keyed on the first X-Forwarded-For hop.
    let relay = |hop: &str| {
        OuterRequest::post_json("/secure/session", hs())
            .with_header(RELAY, "1")
            .with_header("X-Forwarded-For", format!("{hop}, 10.0.0.1"))
    };
    for _ in 0..2 {
        assert_eq!(send(&s, relay("203.0.113.7")).await.status, 200);
    }
    assert_eq!(send(&s, relay("203.0.113.7")).await.status, 429);
    assert_eq!(send(&s, relay("203.0.113.8")).await.status, 200);
}

#[tokio::test]
async fn hs9_store_is_bounded_and_evicts_the_oldest() {
    let s = start_with(&[], |c| c.max_sessions = 3).await;
    let mut first = handshake(&s).await;
    let mut rest = Vec::new();
    for _ in 0..3 {
        rest.push(handshake(&s).await);
    }
    let (_, r) = call(&s, &mut first, &inner("GET", "/health"), false).await;
    assert_eq!(r.status, 401, "the oldest session was evicted");
    assert_eq!(error_code(&r).as_deref(), Some("secure_session_unknown"));
    for sess in &mut rest {
        let resp = call_ok(&s, sess, &inner("GET", "/health"), false).await;
        assert_eq!(resp.status, 200);
    }
    assert!(s.sessions_held() <= 3);
}

#[tokio::test]
async fn resp2_buffered_response_is_one_sealed_fin_frame() {
    let s = start().await;
    let mut sess = handshake(&s).await;
    let path = format!("/agents/{}/run", s.agent_id);
    let req = InnerRequest {
        body: Some(b64url_encode(b"hello")),
        ..authed(&s, "POST", &path)
    };
    let (seq, r) = call(&s, &mut sess, &req, true).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-osaurus-secure-channel"), Some("1"));
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let body = text(&r);
    assert!(body.contains("\"fin\":true") && !body.contains("hello"));
    let resp = open_buffered(&sess, seq, &r);
    assert_eq!(resp.status, 200);
    let echo = inner_json(&resp);
    assert_eq!(echo["agentId"], s.agent_id.as_str());
    assert_eq!(echo["bodyLen"], 5);
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["executions"], 1);
    // The real status travels only inside (RESP-2).
    let (seq, r) = call(&s, &mut sess, &authed(&s, "GET", "/nowhere"), true).await;
    assert_eq!(r.status, 200);
    assert_eq!(open_buffered(&sess, seq, &r).status, 404);
}

#[tokio::test]
async fn resp3_stream_is_one_frame_per_write_and_an_empty_fin() {
    let s = start().await;
    let mut sess = handshake(&s).await;
    for (events, size) in [(0u64, 1u64), (1, 16), (40, 3000)] {
        let (seq, r) = call(&s, &mut sess, &dispatch(&s, events, size), true).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-osaurus-secure-channel"), Some("1"));
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("text/event-stream"));
        let (frames, leftover) = sse_frames(&r.body);
        assert!(leftover.is_empty());
        assert_eq!(frames.len() as u64, events + 2, "events, [DONE], fin");
        let mut opener = sess.response_opener(seq);
        let mut plain = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.is_fin(), i + 1 == frames.len());
            plain.push(opener.open(f).expect("frame opens in order"));
        }
        opener.finish().expect("fin authenticated");
        assert!(plain.last().unwrap().is_empty(), "fin frame is empty");
        assert_eq!(plain[plain.len() - 2], b"data: [DONE]\n\n");
        if events > 0 {
            let first = String::from_utf8(plain[0].clone()).unwrap();
            assert!(first.starts_with("data: {\"n\":0,\"pad\":\""));
            assert_eq!(
                first.len(),
                size as usize + "data: {\"n\":0,\"pad\":\"\"}\n\n".len()
            );
        }
    }
}

#[tokio::test]
async fn call2_check_order_and_exact_codes() {
    let s = start().await;
    let mut sess = handshake(&s).await;
    let expect = |r: &osc_harness::transport::OuterResponse, status: u16, code: &str| {
        assert_eq!(r.status, status, "{}", text(r));
        assert_eq!(error_code(r).as_deref(), Some(code));
        assert!(text(r).contains("\"type\":\"secure_channel_error\""));
    };
    expect(&post_call(&s, "{", true).await, 400, "secure_malformed");
    expect(
        &post_call(&s, r#"{"v":1,"sid":"x","seq":-1,"ct":""}"#, true).await,
        400,
        "secure_malformed",
    );
    // Unknown sid with v 2: the session check comes first.
    let unknown = format!(
        r#"{{"v":2,"sid":"{}","seq":1,"ct":"AAAA"}}"#,
        b64url_encode(&[9; 16])
    );
    expect(
        &post_call(&s, unknown, true).await,
        401,
        "secure_session_unknown",
    );
    let mut call = sess.seal_call(&inner("GET", "/health"), now()).unwrap();
    call.v = 2;
    expect(
        &post_call(&s, call.to_json(), true).await,
        400,
        "secure_decrypt_failed",
    );
    let mut call = sess.seal_call(&inner("GET", "/health"), now()).unwrap();
    call.ct = b64url_encode(&[0u8; 40]);
    expect(
        &post_call(&s, call.to_json(), true).await,
        400,
        "secure_decrypt_failed",
    );
    // A bad inner request consumes its seq.
    let bad = sess.seal_call_bytes(br#"{"method":"GET"}"#, now()).unwrap();
    expect(
        &post_call(&s, bad.to_json(), true).await,
        400,
        "secure_malformed",
    );
    assert!(text(&post_call(&s, bad.to_json(), true).await).contains("secure_replay"));
    let no_slash = sess.seal_call(&inner("GET", "health"), now()).unwrap();
    expect(
        &post_call(&s, no_slash.to_json(), true).await,
        400,
        "secure_malformed",
    );
}

#[tokio::test]
async fn call1_call3_replay_window() {
    let s = start().await;
    let mut sess = handshake(&s).await;
    let run = authed(&s, "POST", &format!("/agents/{}/run", s.agent_id));
    let pt = run.to_json();
    let zero = sess.seal_at(0, pt.as_bytes());
    let r = post_call(&s, zero.to_json(), true).await;
    assert_eq!(
        (r.status, error_code(&r).as_deref()),
        (409, Some("secure_replay"))
    );
    let first = sess.seal_call(&run, now()).unwrap();
    assert_eq!(post_call(&s, first.to_json(), true).await.status, 200);
    let again = post_call(&s, first.to_json(), true).await;
    assert_eq!(again.status, 409, "a replay is refused");
    assert_eq!(s.executions(), 1, "a replayed call never executes twice");
    let high = sess.seal_at(100, pt.as_bytes());
    assert_eq!(post_call(&s, high.to_json(), true).await.status, 200);
    let too_old = sess.seal_at(36, pt.as_bytes());
    assert_eq!(post_call(&s, too_old.to_json(), true).await.status, 409);
    let in_window = sess.seal_at(37, pt.as_bytes());
    assert_eq!(post_call(&s, in_window.to_json(), true).await.status, 200);
    assert_eq!(post_call(&s, in_window.to_json(), true).await.status, 409);
}

#[tokio::test]
async fn call4_forged_frames_do_not_burn_seqs() {
    let s = start().await;
    let sess = handshake(&s).await;
    let mut forged = sess.seal_at(5, inner("GET", "/health").to_json().as_bytes());
    forged.ct = b64url_encode(&[1u8; 48]);
    assert_eq!(post_call(&s, forged.to_json(), true).await.status, 400);
    let genuine = sess.seal_at(5, authed(&s, "GET", "/health").to_json().as_bytes());
    assert_eq!(post_call(&s, genuine.to_json(), true).await.status, 200);
}

#[tokio::test]
async fn call5_frames_cannot_move_between_sessions() {
    let s = start().await;
    let a = handshake(&s).await;
    let b = handshake(&s).await;
    let mut moved = a.seal_at(1, authed(&s, "GET", "/health").to_json().as_bytes());
    moved.sid = b.sid().to_owned();
    let r = post_call(&s, moved.to_json(), true).await;
    assert_eq!(
        (r.status, error_code(&r).as_deref()),
        (400, Some("secure_decrypt_failed"))
    );
}

#[tokio::test]
async fn call6_inner_access_key_and_scope() {
    let s = start().await;
    let mut sess = handshake(&s).await;
    let run = format!("/agents/{}/run", s.agent_id);
    let resp = call_ok(&s, &mut sess, &inner("POST", &run), true).await;
    assert_eq!(resp.status, 401);
    assert_eq!(inner_json(&resp)["error"]["type"], "authentication_error");
    let wrong = InnerRequest {
        authorization: Some("Bearer osk-v1.wrong".into()),
        ..inner("POST", &run)
    };
    assert_eq!(call_ok(&s, &mut sess, &wrong, true).await.status, 401);
    let scoped = |path: &str| InnerRequest {
        authorization: Some(format!("Bearer {}", s.scoped_key.clone().unwrap())),
        ..inner("POST", path)
    };
    let denied = call_ok(&s, &mut sess, &scoped(&run), true).await;
    assert_eq!(denied.status, 403);
    assert_eq!(inner_json(&denied)["error"], "agent_scope_denied");
    let own = format!("/agents/{}/run", s.scoped_agent_id);
    assert_eq!(
        call_ok(&s, &mut sess, &scoped(&own), true).await.status,
        200
    );
    // By address as well as by id.
    let by_addr = format!("/agents/{}/run", s.agent_address);
    assert_eq!(
        call_ok(&s, &mut sess, &authed(&s, "POST", &by_addr), true)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn call7_reserved_headers_and_relay_marker_carry_over() {
    let s = start().await;
    let mut sess = handshake(&s).await;
    let req = InnerRequest {
        headers: Some(vec![
            ("Authorization".into(), "Bearer evil".into()),
            ("Host".into(), "evil.example".into()),
            ("X-Osaurus-Relay-Origin".into(), "0".into()),
            ("Content-Type".into(), "text/evil".into()),
            ("X-Custom".into(), "yes".into()),
        ]),
        content_type: Some("application/json".into()),
        ..authed(&s, "POST", &format!("/agents/{}/run", s.agent_id))
    };
    let echo = inner_json(&call_ok(&s, &mut sess, &req, true).await);
    let h = &echo["headers"];
    assert_eq!(
        h["authorization"],
        format!("Bearer {}", s.access_key).as_str()
    );
    assert_eq!(h["x-custom"], "yes");
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["x-osaurus-relay-origin"], "1");
    assert_ne!(h["host"], "evil.example");
}

#[tokio::test]
async fn call8_nested_secure_paths_are_refused_after_normalisation() {
    let s = start().await;
    let mut sess = handshake(&s).await;
    for path in [
        "/secure/session",
        "/v1/secure/session",
        "/api/secure/call",
        "/v1/api/secure/call?x",
    ] {
        let (_, r) = call(&s, &mut sess, &authed(&s, "POST", path), true).await;
        assert_eq!(
            (r.status, error_code(&r).as_deref()),
            (400, Some("secure_malformed")),
            "{path}"
        );
    }
}

#[tokio::test]
async fn call9_invalid_inner_body_is_refused() {
    let s = start().await;
    let mut sess = handshake(&s).await;
    let req = InnerRequest {
        body: Some("not base64!".into()),
        ..authed(&s, "POST", &format!("/agents/{}/run", s.agent_id))
    };
    let (_, r) = call(&s, &mut sess, &req, true).await;
    assert_eq!(
        (r.status, error_code(&r).as_deref()),
        (400, Some("secure_malformed"))
    );
}

#[tokio::test]
async fn call10_loopback_without_marker_skips_the_inner_key() {
    let s = start().await;
    let mut sess = handshake(&s).await;
    let run = inner("POST", &format!("/agents/{}/run", s.agent_id));
    assert_eq!(call_ok(&s, &mut sess, &run, false).await.status, 200);
    assert_eq!(call_ok(&s, &mut sess, &run, true).await.status, 401);
}

#[tokio::test]
async fn ses1_expired_sessions_get_401() {
    let s = start_with(&[], |c| c.session_ttl_secs = 0).await;
    let sess = handshake(&s).await;
    let call = sess.seal_at(1, authed(&s, "GET", "/health").to_json().as_bytes());
    let r = post_call(&s, call.to_json(), true).await;
    assert_eq!(
        (r.status, error_code(&r).as_deref()),
        (401, Some("secure_session_unknown"))
    );
}

#[tokio::test]
async fn ses4_a_restart_forgets_sessions() {
    let s = start().await;
    let mut sess = handshake(&s).await;
    let url = s.url.clone();
    let addr = s.local_addr;
    s.shutdown().await;
    let again = start_with(&[], |c| c.listen = addr).await;
    assert_eq!(again.url, url);
    let (_, r) = call(&again, &mut sess, &inner("GET", "/health"), false).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn gate_426_for_remote_plaintext_agent_runs() {
    let s = start().await;
    let run = format!("/agents/{}/run", s.agent_id);
    let bearer = format!("Bearer {}", s.access_key);
    let remote = |path: &str| OuterRequest::post_json(path, "{}").with_header(RELAY, "1");
    // GATE-6: the key gate comes first.
    let r = send(&s, remote(&run)).await;
    assert_eq!(r.status, 401);
    assert!(text(&r).contains("authentication_error"));
    // GATE-1, GATE-3, GATE-7.
    for path in [
        run.clone(),
        format!("/v1{run}"),
        format!("/agents/{}/dispatch", s.agent_id),
    ] {
        let r = send(
            &s,
            remote(&path).with_header("Authorization", bearer.clone()),
        )
        .await;
        assert_eq!(r.status, 426, "{path}");
        assert_eq!(text(&r), UPGRADE_REQUIRED_BODY);
        assert_eq!(s.executions(), 0);
    }
    // GATE-2: loopback keeps plaintext access.
    let r = send(&s, OuterRequest::post_json(&run, "{}")).await;
    assert_eq!(r.status, 200);
    // GATE-4: the same run inside the channel executes.
    let mut sess = handshake(&s).await;
    assert_eq!(
        call_ok(&s, &mut sess, &authed(&s, "POST", &run), true)
            .await
            .status,
        200
    );
    // GATE-5: metadata stays plaintext.
    for path in ["/health", "/models", "/v1/models"] {
        let r = send(
            &s,
            OuterRequest::get(path)
                .with_header(RELAY, "1")
                .with_header("Authorization", bearer.clone()),
        )
        .await;
        assert_eq!(r.status, 200, "{path}");
    }
}

#[tokio::test]
async fn gate_trust_loopback_off_makes_loopback_remote() {
    let s = start_with(&[], |c| c.trust_loopback = false).await;
    let run = format!("/agents/{}/run", s.agent_id);
    let r = send(
        &s,
        OuterRequest::post_json(&run, "{}")
            .with_header("Authorization", format!("Bearer {}", s.access_key)),
    )
    .await;
    assert_eq!(r.status, 426);
}

#[tokio::test]
async fn gate7_channel_endpoints_answer_under_prefixes() {
    let s = start().await;
    let hs = client_handshake(&s);
    let r = send(
        &s,
        OuterRequest::post_json("/v1/secure/session", hs.hello().to_json()),
    )
    .await;
    assert_eq!(r.status, 200);
    let mut sess = hs.finish(&ServerHello::parse(&r.body).unwrap()).unwrap();
    let call = sess
        .seal_call(&authed(&s, "GET", "/health"), now())
        .unwrap();
    let r = send(
        &s,
        OuterRequest::post_json("/api/secure/call", call.to_json()),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        send(&s, OuterRequest::get("/secure/session")).await.status,
        404
    );
}

#[tokio::test]
async fn gate8_agent_ids_by_uuid_address_or_default_for_runs() {
    let s = start().await;
    let mut sess = handshake(&s).await;
    for (method, path, want) in [
        ("POST", "/agents/default/run".to_owned(), 200),
        ("GET", "/agents/default".to_owned(), 404),
        (
            "GET",
            format!("/agents/{}", s.agent_address.to_lower()),
            200,
        ),
        ("GET", format!("/agents/{}", s.agent_id), 200),
        ("POST", "/agents/no-such-agent/run".to_owned(), 404),
    ] {
        let resp = call_ok(&s, &mut sess, &authed(&s, method, &path), true).await;
        assert_eq!(resp.status, want, "{method} {path}");
    }
    let described = call_ok(
        &s,
        &mut sess,
        &authed(&s, "GET", &format!("/agents/{}", s.agent_id)),
        true,
    )
    .await;
    assert_eq!(
        inner_json(&described)["address"],
        s.agent_address.to_checksum().as_str()
    );
}

#[tokio::test]
async fn preflight_is_answered_before_any_channel_processing() {
    let s = start().await;
    let r = send(
        &s,
        OuterRequest {
            method: "OPTIONS".into(),
            ..OuterRequest::get("/secure/call")
        },
    )
    .await;
    assert_eq!(r.status, 204);
}

#[tokio::test]
async fn dispatch_sizes_from_the_request_body() {
    let s = start().await;
    let mut sess = handshake(&s).await;
    let (seq, r) = call(&s, &mut sess, &dispatch(&s, 10_000, 1), true).await;
    let (frames, _) = sse_frames(&r.body);
    assert_eq!(frames.len(), 10_002);
    let mut opener = sess.response_opener(seq);
    for f in &frames {
        opener.open(f).unwrap();
    }
    opener.finish().unwrap();
    let (seq, r) = call(&s, &mut sess, &dispatch(&s, 1, 1 << 20), true).await;
    let (frames, _) = sse_frames(&r.body);
    let first = sess.response_opener(seq).open(&frames[0]).unwrap();
    assert_eq!(
        first.len(),
        (1 << 20) + "data: {\"n\":0,\"pad\":\"\"}\n\n".len()
    );
    let too_big = dispatch(&s, 1_000_000, 4 << 20);
    let resp = call_ok(&s, &mut sess, &too_big, true).await;
    assert_eq!(resp.status, 400);
    assert_eq!(inner_body(&resp), b"Invalid request format");
}
