//! Buffered and streamed requests over hyper's HTTP/1.1 or HTTP/2 client.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::target::Purpose;
use super::{HttpVersion, Limits, OuterRequest, OuterResponse, Target, TransportError};

/// Aborts the task driving the connection when the response is done with,
/// so a peer that keeps the socket open cannot keep a task alive.
struct ConnGuard(JoinHandle<()>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends one request and reads the whole response within `limits`.
pub async fn send(
    target: &Target,
    request: &OuterRequest,
    limits: &Limits,
) -> Result<OuterResponse, TransportError> {
    let deadline = Instant::now() + limits.response_timeout;
    let mut streaming = open(target, request, limits, deadline).await?;
    if let Some(len) = streaming
        .header("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        if len > limits.max_body_bytes as u64 {
            return Err(streaming.too_large());
        }
    }
    let mut body = Vec::new();
    loop {
        let next = tokio::time::timeout_at(deadline, streaming.next_chunk())
            .await
            .map_err(|_| TransportError::Timeout {
                url: streaming.url.clone(),
                during: "reading the response body",
                after: limits.response_timeout,
            })??;
        match next {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => break,
        }
    }
    Ok(OuterResponse {
        status: streaming.status,
        headers: std::mem::take(&mut streaming.headers),
        body,
    })
}

/// Sends one request and returns as soon as the response head arrives; the
/// body is then read piece by piece with [`StreamingResponse::next_chunk`].
pub async fn send_streaming(
    target: &Target,
    request: &OuterRequest,
    limits: &Limits,
) -> Result<StreamingResponse, TransportError> {
    open(
        target,
        request,
        limits,
        Instant::now() + limits.response_timeout,
    )
    .await
}

/// A response whose body is still arriving.
pub struct StreamingResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The response headers in wire order.
    pub headers: Vec<(String, String)>,
    body: Incoming,
    url: String,
    idle_timeout: Duration,
    max_body_bytes: usize,
    received: usize,
    _conn: ConnGuard,
}

impl std::fmt::Debug for StreamingResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("url", &self.url)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl StreamingResponse {
    /// The first header called `name` (case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::protocol::names::header(&self.headers, name)
    }

    /// The full URL requested (for error messages).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The body bytes received so far.
    pub fn received(&self) -> usize {
        self.received
    }

    /// The next piece of the body, or `None` once it has ended cleanly.
    /// Fails if the peer stays silent longer than the idle timeout, if the
    /// running total passes the byte cap, or if the body ends in a way HTTP
    /// calls broken (e.g. fewer bytes than `Content-Length`, a bad chunk).
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, TransportError> {
        loop {
            let frame = tokio::time::timeout(self.idle_timeout, self.body.frame())
                .await
                .map_err(|_| TransportError::Timeout {
                    url: self.url.clone(),
                    during: "waiting for the next piece of the body",
                    after: self.idle_timeout,
                })?;
            let Some(frame) = frame else {
                return Ok(None);
            };
            let frame = frame.map_err(|e| TransportError::Protocol {
                url: self.url.clone(),
                during: "reading the response body",
                detail: describe(&e),
            })?;
            // Trailers carry no body bytes; skip them.
            let Ok(data) = frame.into_data() else {
                continue;
            };
            self.received = self.received.saturating_add(data.len());
            if self.received > self.max_body_bytes {
                return Err(self.too_large());
            }
            if !data.is_empty() {
                return Ok(Some(data));
            }
        }
    }

    fn too_large(&self) -> TransportError {
        TransportError::TooLarge {
            url: self.url.clone(),
            during: "reading the response body",
            limit: self.max_body_bytes,
        }
    }
}

async fn open(
    target: &Target,
    request: &OuterRequest,
    limits: &Limits,
    deadline: Instant,
) -> Result<StreamingResponse, TransportError> {
    let path = target.join(&request.path);
    let url = target.url_for(&request.path);
    let protocol = |during: &'static str, detail: String| TransportError::Protocol {
        url: url.clone(),
        during,
        detail,
    };

    let stream = target
        .connect(limits.connect_timeout, Purpose::Http)
        .await?;
    // HTTP/2 when TLS agreed on it, or by prior knowledge when forced on
    // plain TCP.
    let h2 =
        stream.is_h2() || (!stream.is_tls() && target.net().settings().http == HttpVersion::Http2);
    // HTTP/2 carries the scheme and authority as pseudo-headers, which
    // hyper takes from an absolute URI.
    let uri = if h2 { url.clone() } else { path.clone() };
    let mut builder = hyper::Request::builder()
        .method(request.method.as_bytes())
        .uri(uri.as_str());
    let has = |name: &str| crate::protocol::names::header(&request.headers, name).is_some();
    if !has("host") && !h2 {
        builder = builder.header("host", target.authority());
    }
    for (k, v) in &request.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let http_request = builder
        .body(Full::new(Bytes::from(request.body.clone())))
        .map_err(|e| protocol("building the request", e.to_string()))?;

    let (sent, guard) = if h2 {
        let (mut sender, conn) = http2::Builder::new(TokioExecutor::new())
            // Bounds the response head as http1's buffer does below.
            .max_header_list_size(64 * 1024)
            .handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| protocol("starting HTTP/2", describe(&e)))?;
        let guard = ConnGuard(tokio::spawn(async move {
            let _ = conn.await;
        }));
        let sent: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> =
            Box::pin(async move { sender.send_request(http_request).await });
        (sent, guard)
    } else {
        let (mut sender, conn) = http1::Builder::new()
            // The smallest buffer hyper allows: response heads larger than
            // this are refused instead of being buffered.
            .max_buf_size(64 * 1024)
            .handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| protocol("starting HTTP/1.1", describe(&e)))?;
        let guard = ConnGuard(tokio::spawn(async move {
            let _ = conn.await;
        }));
        let sent: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> =
            Box::pin(async move { sender.send_request(http_request).await });
        (sent, guard)
    };

    let response = tokio::time::timeout_at(deadline, sent)
        .await
        .map_err(|_| TransportError::Timeout {
            url: url.clone(),
            during: "waiting for the response head",
            after: limits.response_timeout,
        })?
        .map_err(|e| protocol("reading the response head", describe(&e)))?;

    let (parts, body) = response.into_parts();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    Ok(StreamingResponse {
        status: parts.status.as_u16(),
        headers,
        body,
        url,
        idle_timeout: limits.idle_timeout,
        max_body_bytes: limits.max_body_bytes,
        received: 0,
        _conn: guard,
    })
}

/// hyper's top-level messages are terse ("error reading a body from
/// connection"); the cause chain says what actually happened.
fn describe(e: &hyper::Error) -> String {
    use std::error::Error;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
