//! Raw bytes over TCP (or TLS offering only HTTP/1.1), for attacks that
//! HTTP libraries refuse to send.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::target::Purpose;
use super::{HttpVersion, Limits, Target, TransportError};

/// Writes `bytes` on a fresh connection and reads the raw reply.
///
/// Returns once the peer closes, once `max_body_bytes` have arrived (the
/// reply is then cut there), or once the peer has said something and then
/// stays quiet for `idle_timeout` (a keep-alive server does that after its
/// answer). A peer that says nothing within `response_timeout` is a
/// [`TransportError::Timeout`]. The write side stays open, because a
/// half-close would change what a server under test does.
///
/// Over TLS only `http/1.1` is offered by ALPN. A target told to speak
/// HTTP/2 (`--http2`), or one whose TLS refuses `http/1.1`, is a
/// [`TransportError::NeedsHttp1`]: the bytes were never sent, and callers
/// must not judge the target on them.
pub async fn send_raw(
    target: &Target,
    bytes: &[u8],
    limits: &Limits,
) -> Result<Vec<u8>, TransportError> {
    let url = target.url();
    if target.net().settings().http == HttpVersion::Http2 {
        return Err(TransportError::NeedsHttp1 {
            url,
            reason: "the target is reached over HTTP/2 only (--http2)".into(),
        });
    }
    let mut stream = match target.connect(limits.connect_timeout, Purpose::Raw).await {
        Err(TransportError::Tls { url, reason }) if reason.contains("ALPN") => {
            return Err(TransportError::NeedsHttp1 {
                url,
                reason: format!("its TLS refuses HTTP/1.1 ({reason})"),
            })
        }
        other => other?,
    };
    let deadline = Instant::now() + limits.response_timeout;
    let timeout = |during| TransportError::Timeout {
        url: url.clone(),
        during,
        after: limits.response_timeout,
    };
    tokio::time::timeout_at(deadline, stream.write_all(bytes))
        .await
        .map_err(|_| timeout("writing the request"))?
        .map_err(|source| TransportError::Io {
            url: url.clone(),
            during: "writing the request",
            source,
        })?;

    let mut reply = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let room = limits.max_body_bytes.saturating_sub(reply.len());
        if room == 0 {
            return Ok(reply);
        }
        let want = room.min(buf.len());
        let read = if reply.is_empty() {
            tokio::time::timeout_at(deadline, stream.read(&mut buf[..want]))
                .await
                .map_err(|_| timeout("waiting for a reply"))?
        } else {
            let idle = Instant::now() + limits.idle_timeout;
            match tokio::time::timeout_at(idle.min(deadline), stream.read(&mut buf[..want])).await {
                Ok(r) => r,
                Err(_) => return Ok(reply),
            }
        };
        match read {
            Ok(0) => return Ok(reply),
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            // A reset after the reply is how some servers close; keep what came.
            Err(_) if !reply.is_empty() => return Ok(reply),
            Err(source) => {
                return Err(TransportError::Io {
                    url,
                    during: "reading the reply",
                    source,
                })
            }
        }
    }
}

/// Opens a connection as a request would (TCP, proxy, TLS with the
/// request ALPN) and closes it: what reaching the target costs before any
/// HTTP.
pub async fn connect_only(target: &Target, limits: &Limits) -> Result<(), TransportError> {
    target
        .connect(limits.connect_timeout, Purpose::Http)
        .await
        .map(drop)
}
