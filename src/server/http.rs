//! The HTTP layer: accepting connections, header and body limits
//! (LIM-1), the handshake rate limit (HS-8), and routing of the outer
//! request to the channel endpoints or the plaintext app.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::transport::Stream;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::protocol::error::HandshakeRefusal;
use crate::protocol::names::{CALL_PATH, RELAY_ORIGIN_HEADER, SESSION_PATH};
use crate::protocol::wire::{MAX_CALL_BYTES, MAX_HELLO_BYTES};
use crate::transport::OutBody;

use super::app::{App, AppBody, AppRequest, AppResponse};
use super::body::{read_body, BodyError};
use super::bugs::Knobs;
use super::config::{ServerConfig, MAX_CONNECTIONS};
use super::gate;
use super::head;
use super::ratelimit::{source_key, RateLimiter};
use super::secure::{self, Outer};
use super::store::SessionStore;

/// Most header fields a request may carry before 431 (LIM-1).
pub const MAX_HEADER_FIELDS: usize = 200;
/// Most header name + value bytes before 431 (LIM-1).
pub const MAX_HEADER_BYTES: usize = 1024 * 1024;
/// Most head bytes read before the head checks decide; room for the
/// request line and separators around 1 MiB of fields.
const MAX_HEAD_READ: usize = MAX_HEADER_BYTES + 64 * 1024;

/// Everything the handlers of one server share.
pub struct Shared {
    /// The configuration the server started with.
    pub config: ServerConfig,
    /// The active fault knobs.
    pub knobs: Knobs,
    /// The sessions.
    pub store: SessionStore,
    /// The handshake limiter.
    pub limiter: RateLimiter,
    /// The inner application.
    pub app: App,
    /// The agent's address, lowercased, as handshakes compare it.
    pub agent_address_lower: String,
}

/// A JSON response with the exact body given.
pub fn json_response(status: u16, body: String) -> Response<OutBody> {
    app_response(AppResponse::json(status, body))
}

/// A plaintext app response as an HTTP response.
fn app_response(resp: AppResponse) -> Response<OutBody> {
    let mut builder = Response::builder().status(resp.status);
    if let Some(ct) = &resp.content_type {
        builder = builder.header("content-type", ct.as_str());
    }
    let body = match resp.body {
        AppBody::Full(b) => OutBody::full(b),
        AppBody::Stream(rx) => OutBody::Stream(rx),
    };
    builder.body(body).unwrap_or_else(|_| {
        let mut r = Response::new(OutBody::full("Internal Server Error"));
        *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

fn limit_error(status: u16, message: &str, kind: &str) -> Response<OutBody> {
    let body = serde_json::json!({ "error": { "message": message, "type": kind } });
    json_response(status, body.to_string())
}

fn body_error(e: BodyError) -> Response<OutBody> {
    match e {
        BodyError::TooLarge { len, limit } => limit_error(
            413,
            &format!("Request body too large ({len} > {limit} bytes)"),
            "payload_too_large",
        ),
        BodyError::Timeout(_) => app_response(AppResponse::text(408, "Request Timeout")),
        BodyError::Broken(_) => app_response(AppResponse::text(400, "Bad Request")),
    }
}

/// Accepts connections until `stop` changes; every connection is its own
/// task in `conns`, so a panicking handler drops only its connection, and
/// dropping this future (abort) ends them all.
pub async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        while let Some(done) = conns.try_join_next() {
            if let Err(e) = done {
                if e.is_panic() {
                    tracing::warn!("a connection handler panicked; the connection was dropped");
                }
            }
        }
        let accepted = tokio::select! {
            _ = stop.changed() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!("connection limit of {MAX_CONNECTIONS} reached; closing {peer}");
            continue;
        };
        // Stream frames are small writes the client waits for one by one.
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        conns.spawn(async move {
            let _permit = permit;
            serve_connection(shared, stream, peer).await;
        });
    }
    conns.shutdown().await;
}

/// One connection: TLS if configured, then HTTP/2 when ALPN (or
/// `http2_only`) says so, else one HTTP/1.1 request after the head checks.
async fn serve_connection(shared: Arc<Shared>, tcp: TcpStream, peer: SocketAddr) {
    let header_timeout = shared.config.header_read_timeout;
    let http2_only = shared.config.http2_only;
    let stream = match &shared.config.tls {
        None => Stream::Plain(tcp),
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
            match tokio::time::timeout(header_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => Stream::Tls(Box::new(tokio_rustls::TlsStream::Server(s))),
                Ok(Err(e)) => {
                    tracing::debug!("TLS handshake with {peer} failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake with {peer} timed out");
                    return;
                }
            }
        }
    };
    let svc = service_fn(move |req| {
        let shared = shared.clone();
        async move {
            let (method, path) = (req.method().clone(), req.uri().path().to_owned());
            let resp = handle(shared, peer, req).await;
            tracing::debug!(%peer, %method, path, status = resp.status().as_u16(), "request");
            Ok::<_, Infallible>(resp)
        }
    });
    let h2 = stream.is_h2() || (!stream.is_tls() && http2_only);
    if h2 {
        let result = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_header_list_size((MAX_HEADER_BYTES + 64 * 1024) as u32)
            .serve_connection(TokioIo::new(stream), svc)
            .await;
        if let Err(e) = result {
            tracing::debug!("HTTP/2 connection from {peer}: {e}");
        }
        return;
    }
    let io = match head::inspect(
        stream,
        MAX_HEADER_FIELDS,
        MAX_HEADER_BYTES,
        MAX_HEAD_READ,
        header_timeout,
    )
    .await
    {
        head::Head::Pass(io) => io,
        head::Head::Refuse(mut stream, reply) => {
            // Best effort: the peer may already be gone.
            let _ = stream.write_all(&reply).await;
            let _ = stream.shutdown().await;
            return;
        }
        head::Head::Drop => return,
    };
    let result = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(false)
        .max_headers(4 * MAX_HEADER_FIELDS)
        .max_buf_size(MAX_HEAD_READ + 64 * 1024)
        .serve_connection(TokioIo::new(io), svc)
        .await;
    if let Err(e) = result {
        tracing::debug!("connection from {peer}: {e}");
    }
}

/// One outer request: limits, then the channel endpoints or the app.
async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<OutBody> {
    let headers = req.headers();
    if req.method() == Method::OPTIONS {
        return Response::builder()
            .status(204)
            .body(OutBody::Full(None))
            .unwrap_or_else(|_| Response::new(OutBody::Full(None)));
    }
    let config = &shared.config;
    let relay_marker = headers.contains_key(RELAY_ORIGIN_HEADER);
    let remote = gate::is_remote(
        peer.ip(),
        relay_marker,
        config.trust_loopback,
        &shared.knobs,
    );
    let header_str = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let raw_path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let routed = gate::normalize(&raw_path);
    let limit = match routed.as_str() {
        "/pair" | "/pair-invite" | SESSION_PATH => MAX_HELLO_BYTES,
        _ => MAX_CALL_BYTES,
    };
    if let Some(declared) = hyper::body::Body::size_hint(req.body()).exact() {
        if declared > limit as u64 {
            return body_error(BodyError::TooLarge {
                len: declared,
                limit,
            });
        }
    }
    let deadline = shared
        .knobs
        .body_deadline()
        .then_some(config.body_read_timeout);
    let is_post = req.method() == Method::POST;
    let method = req.method().as_str().to_owned();

    if is_post && routed == SESSION_PATH {
        let source = source_key(
            peer.ip(),
            relay_marker,
            header_str("x-forwarded-for").as_deref(),
        );
        if let Some(r) = super::stand_in::handshake(&shared.knobs) {
            return r;
        }
        if !shared.limiter.allow(&source, Instant::now()) {
            let r = HandshakeRefusal::RateLimited;
            return json_response(r.status(), r.body());
        }
        return match read_body(req.into_body(), limit, deadline).await {
            Ok(body) => app_response(secure::handshake(&shared, &body)),
            Err(e) => body_error(e),
        };
    }
    if is_post && routed == CALL_PATH {
        if let Some(r) = super::stand_in::call(&shared.knobs, shared.knobs.next_call()) {
            return r;
        }
        let outer = Outer {
            remote,
            relay_marker,
            host: header_str("host"),
            user_agent: header_str("user-agent"),
        };
        return match read_body(req.into_body(), limit, deadline).await {
            Ok(body) => secure::call(shared.clone(), &body, outer).await,
            Err(e) => body_error(e),
        };
    }
    let plain_headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let body = match read_body(req.into_body(), limit, deadline).await {
        Ok(b) => b,
        Err(e) => return body_error(e),
    };
    let app_req = AppRequest {
        method,
        path: raw_path,
        headers: plain_headers,
        body,
        inside_channel: false,
        remote,
    };
    app_response(shared.app.handle(&app_req, &shared.knobs))
}

/// Builds the shared state of a server from its configuration.
pub fn shared_state(config: ServerConfig, knobs: Knobs) -> Shared {
    let address = knobs.agent_address(&config.identity);
    let app = App::new(
        config.agent_id.clone(),
        address,
        config.access_key.clone(),
        config.scoped_key.clone(),
        config.scoped_agent_id.clone(),
    );
    Shared {
        agent_address_lower: address.to_lower(),
        store: SessionStore::new(config.max_sessions),
        limiter: RateLimiter::new(config.handshake_rate),
        app,
        knobs,
        config,
    }
}
