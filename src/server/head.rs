//! A first look at the request head, before hyper parses it, for the
//! refusals whose exact bodies upstream defines but hyper would send
//! empty: too many or too large header fields (431) and a
//! `Content-Length` that is not a non-negative integer (400 `Bad Request`).
//! The bytes read are handed on to hyper unchanged through [`Rewind`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::transport::Stream as TcpStream;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The exact 431 response (LIM-1).
const TOO_LARGE: &str = r#"{"error":{"message":"Request header fields too large","type":"request_header_fields_too_large"}}"#;

/// What the look at the head decided.
pub enum Head {
    /// Hand the connection to hyper, with the bytes already read.
    Pass(Rewind),
    /// Answer with these bytes and close.
    Refuse(TcpStream, Vec<u8>),
    /// The peer went quiet or away before finishing its head.
    Drop,
}

/// Reads the head (bounded by `max_head` bytes and `timeout`) and checks
/// the header count, header bytes and `Content-Length`.
pub async fn inspect(
    mut stream: TcpStream,
    max_fields: usize,
    max_field_bytes: usize,
    max_head: usize,
    timeout: Duration,
) -> Head {
    let mut buf = BytesMut::with_capacity(4096);
    let read = async {
        let mut scanned = 0usize;
        loop {
            // Resume the scan where the last one stopped (less the three
            // bytes a split terminator may straddle): linear, not quadratic.
            let from = scanned.saturating_sub(3);
            if find_end(&buf[from..]).is_some() || buf.len() >= max_head {
                return true;
            }
            scanned = buf.len();
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(16 * 1024);
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return !buf.is_empty(),
                Ok(_) => {}
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(true) => {}
        _ => return Head::Drop,
    }
    let head_len = find_end(&buf).unwrap_or(buf.len());
    match check(&buf[..head_len], max_fields, max_field_bytes) {
        Some(resp) => Head::Refuse(stream, resp),
        None => Head::Pass(Rewind {
            prefix: buf,
            inner: stream,
            stalled: None,
        }),
    }
}

fn find_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

fn check(head: &[u8], max_fields: usize, max_field_bytes: usize) -> Option<Vec<u8>> {
    let mut fields = 0usize;
    let mut field_bytes = 0usize;
    let mut lengths: Vec<&[u8]> = Vec::new();
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue; // Malformed lines are hyper's to refuse.
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        fields += 1;
        field_bytes += name.len() + value.len();
        if name.eq_ignore_ascii_case(b"content-length") {
            lengths.push(value);
        }
    }
    if fields > max_fields || field_bytes > max_field_bytes {
        return Some(response(
            "431 Request Header Fields Too Large",
            "application/json; charset=utf-8",
            TOO_LARGE,
        ));
    }
    let valid = |v: &&[u8]| !v.is_empty() && v.len() <= 19 && v.iter().all(u8::is_ascii_digit);
    let consistent = lengths.windows(2).all(|w| w[0] == w[1]);
    if !lengths.iter().all(valid) || !consistent {
        return Some(response(
            "400 Bad Request",
            "text/plain; charset=utf-8",
            "Bad Request",
        ));
    }
    None
}

fn response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// How long a write may stay blocked on a peer that does not read before
/// the connection is dropped.
const WRITE_STALL: Duration = Duration::from_secs(30);

/// A stream that first replays the bytes already read from it, and gives
/// up on writes a peer leaves blocked for [`WRITE_STALL`].
pub struct Rewind {
    prefix: BytesMut,
    inner: TcpStream,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Rewind {
    fn track<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_STALL)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.track(cx, poll)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.track(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_rules() {
        let head = |cl: &str| format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {cl}");
        assert!(check(head("12").as_bytes(), 200, 1 << 20).is_none());
        for bad in ["abc", "-1", "1, 2", "", "+5", "99999999999999999999"] {
            let r = check(head(bad).as_bytes(), 200, 1 << 20).expect(bad);
            assert!(r.ends_with(b"\r\n\r\nBad Request"), "{bad}");
        }
        let twice = "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2";
        assert!(check(twice.as_bytes(), 200, 1 << 20).is_some());
    }

    #[test]
    fn field_limits() {
        let mut head = String::from("GET / HTTP/1.1");
        for i in 0..3 {
            head.push_str(&format!("\r\nx-{i}: v"));
        }
        assert!(check(head.as_bytes(), 3, 1 << 20).is_none());
        assert!(check(head.as_bytes(), 2, 1 << 20).is_some());
        assert!(check(head.as_bytes(), 3, 8).is_some());
    }
}
