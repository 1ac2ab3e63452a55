//! The transport against tiny hostile TCP servers written here: every
//! misbehaviour must end in the right error, within the limits, never a hang.

use std::time::Duration;

use osc_harness::transport::{self, Limits, OuterRequest, Target, TransportError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn quick() -> Limits {
    Limits {
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_millis(800),
        idle_timeout: Duration::from_millis(300),
        max_body_bytes: 64 * 1024,
    }
}

/// Serves every connection with `handler` after reading the request head.
async fn serve<F, Fut>(handler: F) -> Target
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = std::sync::Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut b = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&b[..n]),
                    }
                }
                handler(s).await;
            });
        }
    });
    Target::from_socket_addr(addr)
}

#[tokio::test]
async fn well_formed_reply_round_trips() {
    let target = serve(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nX-A: b\r\nContent-Length: 5\r\n\r\nhello")
            .await;
    })
    .await;
    let r = transport::send(
        &target,
        &OuterRequest::post_json("/x", b"{}".to_vec()),
        &quick(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(r.header("x-a"), Some("b"));
    assert_eq!(r.header("CONTENT-TYPE"), Some("text/plain"));
    assert_eq!(r.body, b"hello");
}

#[tokio::test]
async fn endless_body_is_too_large() {
    let target = serve(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await;
        let chunk = format!("{:x}\r\n{}\r\n", 4096, "a".repeat(4096));
        while s.write_all(chunk.as_bytes()).await.is_ok() {}
    })
    .await;
    let e = transport::send(&target, &OuterRequest::get("/"), &quick())
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::TooLarge { .. }), "{e}");

    let mut s = transport::send_streaming(&target, &OuterRequest::get("/"), &quick())
        .await
        .unwrap();
    let e = loop {
        match s.next_chunk().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("endless body ended"),
            Err(e) => break e,
        }
    };
    assert!(matches!(e, TransportError::TooLarge { .. }), "{e}");
    assert!(s.received() <= quick().max_body_bytes + 8192);
}

#[tokio::test]
async fn declared_oversize_is_refused_before_reading() {
    let target = serve(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\nabc")
            .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let e = transport::send(&target, &OuterRequest::get("/"), &quick())
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::TooLarge { .. }), "{e}");
}

#[tokio::test]
async fn silent_server_times_out() {
    let target = serve(|s| async move {
        // Holding the socket open while saying nothing.
        let _held = s;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let e = transport::send(&target, &OuterRequest::get("/"), &quick())
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::Timeout { .. }), "{e}");
    let e = transport::send_raw(&target, b"GET / HTTP/1.1\r\n\r\n", &quick())
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::Timeout { .. }), "{e}");
}

#[tokio::test]
async fn dripping_body_hits_the_deadline() {
    // One byte every 100 ms never trips the idle timeout, so only the
    // overall response deadline can end it.
    let target = serve(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            .await;
        while s.write_all(b"a").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let e = transport::send(&target, &OuterRequest::get("/"), &quick())
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::Timeout { .. }), "{e}");
}

#[tokio::test]
async fn stalled_stream_times_out_per_chunk() {
    let target = serve(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
            .await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let mut s = transport::send_streaming(&target, &OuterRequest::get("/"), &quick())
        .await
        .unwrap();
    assert_eq!(s.status, 200);
    assert_eq!(&s.next_chunk().await.unwrap().unwrap()[..], b"abc");
    let e = s.next_chunk().await.unwrap_err();
    assert!(matches!(e, TransportError::Timeout { .. }), "{e}");
}

#[tokio::test]
async fn bad_status_line_and_short_body_are_protocol_errors() {
    let target = serve(|mut s| async move {
        let _ = s.write_all(b"HTCPCP/1.0 418 teapot\r\n\r\n").await;
    })
    .await;
    let e = transport::send(&target, &OuterRequest::get("/"), &quick())
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::Protocol { .. }), "{e}");

    let target = serve(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            .await;
    })
    .await;
    let e = transport::send(&target, &OuterRequest::get("/"), &quick())
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::Protocol { .. }), "{e}");
}

#[tokio::test]
async fn refused_connection_is_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let e = transport::send(
        &Target::from_socket_addr(addr),
        &OuterRequest::get("/"),
        &quick(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, TransportError::Connect { .. }), "{e}");
}

#[tokio::test]
async fn raw_reply_is_bounded_and_returned_on_close() {
    let target = serve(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await;
    })
    .await;
    let r = transport::send_raw(&target, b"GARBAGE\r\n\r\n", &quick())
        .await
        .unwrap();
    assert!(r.starts_with(b"HTTP/1.1 400"));

    let target =
        serve(|mut s| async move { while s.write_all(&[b'x'; 4096]).await.is_ok() {} }).await;
    let r = transport::send_raw(&target, b"GET / HTTP/1.1\r\n\r\n", &quick())
        .await
        .unwrap();
    assert_eq!(r.len(), quick().max_body_bytes);
}

#[tokio::test]
async fn base_path_is_prepended() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut b).await.unwrap();
            head.extend_from_slice(&b[..n]);
        }
        let _ = s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
        String::from_utf8_lossy(&head).into_owned()
    });
    let target = Target::parse(&format!("http://{addr}/base/")).unwrap();
    let r = transport::send(&target, &OuterRequest::get("/secure/session"), &quick())
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    let head = seen.await.unwrap();
    assert!(
        head.starts_with("GET /base/secure/session HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase().contains(&format!("host: {addr}")),
        "{head}"
    );
}

#[tokio::test]
async fn oversized_or_endless_head_is_refused() {
    // A header that never ends must hit hyper's head buffer bound, not grow.
    let target = serve(|mut s| async move {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nX-Big: ").await;
        while s.write_all(&[b'a'; 4096]).await.is_ok() {}
    })
    .await;
    let e = transport::send(&target, &OuterRequest::get("/"), &quick())
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::Protocol { .. }), "{e}");

    let target = serve(|mut s| async move {
        let mut head = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..500 {
            head.push_str(&format!("X-{i}: v\r\n"));
        }
        head.push_str("Content-Length: 0\r\n\r\n");
        let _ = s.write_all(head.as_bytes()).await;
    })
    .await;
    let e = transport::send(&target, &OuterRequest::get("/"), &quick())
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::Protocol { .. }), "{e}");
}
