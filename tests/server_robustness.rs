//! The honest server under abuse: a handshake flood keeps the store at its
//! bound and the server answering; garbage, truncated and oversized
//! requests get the documented 4xx, never a 5xx or a panic.

mod support;

use std::time::Duration;

use osc_harness::protocol::encoding::b64url_encode;
use osc_harness::rng::{RandomSource, SeededRandom};
use osc_harness::transport::{self, Limits, OuterRequest};
use support::server::*;

fn raw_limits() -> Limits {
    Limits {
        response_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_millis(500),
        ..limits()
    }
}

async fn raw(s: &osc_harness::server::RunningServer, bytes: &[u8]) -> String {
    let reply = transport::send_raw(&target(s), bytes, &raw_limits())
        .await
        .expect("the server answers");
    String::from_utf8_lossy(&reply).into_owned()
}

#[tokio::test]
async fn handshake_flood_stays_bounded_and_answering() {
    let s = start_with(&[], |c| c.max_sessions = 8).await;
    let mut first = handshake(&s).await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = s.url.clone();
        let address = s.agent_address;
        tasks.push(tokio::spawn(async move {
            let target = osc_harness::transport::Target::parse(&url).unwrap();
            for _ in 0..10 {
                let hs = osc_harness::protocol::handshake::ClientHandshake::new(
                    address,
                    osc_harness::rng::SystemRandom.bytes(),
                    osc_harness::rng::SystemRandom.bytes(),
                );
                let req = OuterRequest::post_json("/secure/session", hs.hello().to_json());
                let r = transport::send(&target, &req, &limits()).await.unwrap();
                assert_eq!(r.status, 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(s.sessions_held() <= 8, "held {}", s.sessions_held());
    let (_, r) = call(&s, &mut first, &authed(&s, "GET", "/health"), true).await;
    assert_eq!(r.status, 401, "the oldest session was evicted");
    let mut fresh = handshake(&s).await;
    let resp = call_ok(&s, &mut fresh, &authed(&s, "GET", "/health"), true).await;
    assert_eq!(resp.status, 200, "still answering");
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let s = start().await;
    let big = vec![b'a'; 64 * 1024 + 1];
    let r = post_hello(&s, big.clone()).await;
    assert_eq!(r.status, 413);
    assert_eq!(
        text(&r),
        r#"{"error":{"message":"Request body too large (65537 > 65536 bytes)","type":"payload_too_large"}}"#
    );
    // Under a prefix the same limit applies (the outer path is normalised).
    let r = send(&s, OuterRequest::post_json("/v1/secure/session", big)).await;
    assert_eq!(r.status, 413);
    // A declared length above 32 MiB is refused before any body is sent.
    let reply = raw(
        &s,
        b"POST /secure/call HTTP/1.1\r\nHost: x\r\nContent-Length: 40000000\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("payload_too_large"));
    // Chunked bodies are counted as they arrive.
    let chunk = "a".repeat(40 * 1024);
    let chunked = format!(
        "POST /secure/session HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{len:x}\r\n{chunk}\r\n{len:x}\r\n{chunk}\r\n0\r\n\r\n",
        len = chunk.len()
    );
    let reply = raw(&s, chunked.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
}

#[tokio::test]
async fn header_floods_get_431() {
    let s = start().await;
    let mut req = OuterRequest::get("/health");
    for i in 0..201 {
        req = req.with_header(format!("x-h{i}"), "v");
    }
    let r = send(&s, req).await;
    assert_eq!(r.status, 431);
    assert_eq!(
        text(&r),
        r#"{"error":{"message":"Request header fields too large","type":"request_header_fields_too_large"}}"#
    );
    let r = send(
        &s,
        OuterRequest::get("/health").with_header("x-big", "v".repeat(1024 * 1024 + 10)),
    )
    .await;
    assert_eq!(r.status, 431);
    // Far beyond hyper's own limits the body is still the documented one.
    let mut flood = String::from("GET /health HTTP/1.1\r\nHost: x\r\n");
    for i in 0..2000 {
        flood.push_str(&format!("x-{i}: v\r\n"));
    }
    flood.push_str("\r\n");
    let reply = raw(&s, flood.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    assert!(reply.contains("request_header_fields_too_large"));
    let r = send(&s, OuterRequest::get("/health")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn bad_content_length_gets_400() {
    let s = start().await;
    for cl in ["abc", "-1", "1, 2"] {
        let reply = raw(
            &s,
            format!("POST /secure/call HTTP/1.1\r\nHost: x\r\nContent-Length: {cl}\r\n\r\n{{}}")
                .as_bytes(),
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 400"), "{cl}: {reply}");
        assert!(reply.contains("text/plain; charset=utf-8"), "{reply}");
        assert!(reply.ends_with("\r\n\r\nBad Request"), "{reply}");
    }
}

#[tokio::test]
async fn garbage_and_truncated_requests_get_4xx() {
    let s = start().await;
    for bytes in [
        &b"\x00\x01\x02garbage\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"POST /secure/session HTTP/9.9\r\n\r\n",
    ] {
        let reply = raw(&s, bytes).await;
        assert!(reply.starts_with("HTTP/1.1 4"), "{reply:?}");
    }
    let sess = handshake(&s).await;
    let good = sess
        .seal_at(1, authed(&s, "GET", "/health").to_json().as_bytes())
        .to_json();
    let hello = client_handshake(&s).hello().to_json();
    for cut in [0, 1, good.len() / 2, good.len() - 1] {
        let r = post_call(&s, good[..cut].to_owned(), true).await;
        assert_eq!(r.status, 400, "cut at {cut}");
    }
    for cut in [0, 1, hello.len() / 2, hello.len() - 1] {
        let r = post_hello(&s, hello[..cut].to_owned()).await;
        assert_eq!(r.status, 400, "cut at {cut}");
    }
    assert_eq!(send(&s, OuterRequest::get("/health")).await.status, 200);
}

#[tokio::test]
async fn random_bodies_never_get_5xx() {
    let s = start().await;
    let sess = handshake(&s).await;
    let mut rng = SeededRandom::new(7, "server-robustness");
    for i in 0..60u64 {
        let len = rng.below(200) as usize;
        let mut junk = vec![0u8; len];
        rng.fill(&mut junk);
        let body = match i % 3 {
            0 => junk,
            1 => format!(
                r#"{{"v":1,"sid":"{}","seq":{},"ct":"{}"}}"#,
                sess.sid(),
                rng.next_u64(),
                b64url_encode(&junk)
            )
            .into_bytes(),
            _ => format!(
                r#"{{"v":1,"agentAddress":"{}","encPub":"{}","nonce":"{}"}}"#,
                s.agent_address.to_lower(),
                b64url_encode(&junk),
                b64url_encode(&junk)
            )
            .into_bytes(),
        };
        let path = if i % 3 == 2 {
            "/secure/session"
        } else {
            "/secure/call"
        };
        let r = send(
            &s,
            OuterRequest::post_json(path, body).with_header(RELAY, "1"),
        )
        .await;
        assert!(
            (200..500).contains(&r.status),
            "case {i}: {} {}",
            r.status,
            text(&r)
        );
    }
}

#[tokio::test]
async fn slow_bodies_time_out_instead_of_holding_a_task() {
    let s = start_with(&[], |c| c.body_read_timeout = Duration::from_secs(1)).await;
    let reply = raw(
        &s,
        b"POST /agents/x/run HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
}

#[tokio::test]
async fn other_methods_on_channel_endpoints() {
    let s = start().await;
    let r = send(
        &s,
        OuterRequest::get("/secure/call").with_header(RELAY, "1"),
    )
    .await;
    assert_eq!(r.status, 401, "remote: the key gate answers first");
    let r = send(&s, OuterRequest::get("/secure/call")).await;
    assert_eq!(r.status, 404);
    assert_eq!(text(&r), "Not Found");
}
