//! Parsing the URL a user points the harness at, and connecting to it:
//! plain TCP or TLS, directly or through an HTTP CONNECT proxy.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;

use super::net::Net;
use super::stream::Stream;
use super::tls::describe_handshake_error;
use super::TransportError;

/// Where a server lives: scheme, host, port, a base path that every
/// request path is appended to, a query kept on every request, and how
/// connections to it are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    https: bool,
    host: String,
    port: u16,
    base_path: String,
    query: String,
    net: Net,
}

/// What a connection is for: HTTP through hyper, or raw bytes, which only
/// HTTP/1.1 can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Requests hyper writes (HTTP/1.1 or HTTP/2).
    Http,
    /// Bytes written as they are (HTTP/1.1 framing attacks).
    Raw,
}

impl Target {
    /// Parses an `http://` or `https://` URL. The base path is kept without
    /// its trailing slash, the query is kept and sent with every request,
    /// a fragment is dropped; the port defaults to 80 or 443.
    pub fn parse(url: &str) -> Result<Self, TransportError> {
        let bad = |reason: &str| TransportError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let (https, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else {
            return Err(bad("only http:// and https:// URLs are supported"));
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, q.to_string()),
            None => (rest, String::new()),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad("user info in the URL is not supported"));
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) =
            split_host_port(authority, default_port).ok_or_else(|| bad("cannot read host:port"))?;
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        Ok(Self {
            https,
            host: host.to_string(),
            port,
            base_path: path.trim_end_matches('/').to_string(),
            query,
            net: Net::default(),
        })
    }

    /// A target for a server bound to `addr`, with no base path.
    pub fn from_socket_addr(addr: SocketAddr) -> Self {
        Self {
            https: false,
            host: match addr {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            },
            port: addr.port(),
            base_path: String::new(),
            query: String::new(),
            net: Net::default(),
        }
    }

    /// The same target, connected to with `net`.
    pub fn with_net(mut self, net: Net) -> Self {
        self.net = net;
        self
    }

    /// How connections to this target are made.
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// Whether the target is reached over TLS.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host as written (IPv6 literals keep their brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The base path, empty or starting with `/`, never ending with `/`.
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// The query kept from the URL (without `?`), possibly empty.
    pub fn query(&self) -> &str {
        &self.query
    }

    fn scheme(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }

    /// `host[:port]`, as sent in the `Host` header: the port is left out
    /// when it is the scheme's default, as browsers and curl do.
    pub fn authority(&self) -> String {
        let default_port = if self.https { 443 } else { 80 };
        if self.port == default_port {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The URL, normalised.
    pub fn url(&self) -> String {
        let query = if self.query.is_empty() {
            String::new()
        } else {
            format!("?{}", self.query)
        };
        format!(
            "{}://{}{}{query}",
            self.scheme(),
            self.authority(),
            self.base_path
        )
    }

    /// The full URL of `path` on this target.
    pub fn url_for(&self, path: &str) -> String {
        format!(
            "{}://{}{}",
            self.scheme(),
            self.authority(),
            self.join(path)
        )
    }

    /// The request target for `path`: the base path, then `path`, then the
    /// URL's query (after the path's own, if it has one).
    pub fn join(&self, path: &str) -> String {
        let mut joined = if path.starts_with('/') || path.is_empty() {
            format!("{}{}", self.base_path, path)
        } else {
            format!("{}/{}", self.base_path, path)
        };
        if !self.query.is_empty() {
            joined.push(if joined.contains('?') { '&' } else { '?' });
            joined.push_str(&self.query);
        }
        joined
    }

    /// The socket address, when the host is an IP literal (no DNS lookup).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        format!("{}:{}", self.host, self.port).parse().ok()
    }

    /// Connects for `purpose`: TCP (through the proxy, if any), then TLS
    /// for `https`. `timeout` bounds all of it, TLS handshake included.
    pub(crate) async fn connect(
        &self,
        timeout: Duration,
        purpose: Purpose,
    ) -> Result<Stream, TransportError> {
        let url = self.url();
        let timed_out = |during| TransportError::Timeout {
            url: url.clone(),
            during,
            after: timeout,
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let proxy = self
            .net
            .proxy_for(&self.host, self.https)
            .map_err(|reason| TransportError::BadUrl {
                url: url.clone(),
                reason,
            })?;
        // Names under `localhost` are loopback (RFC 6761 §6.3), as curl and
        // browsers resolve them, so an agent's relay URL on this machine
        // (`http://0x<address>.localhost:PORT`) is reachable as it is.
        let dial = if is_localhost_name(host) {
            "127.0.0.1"
        } else {
            host
        };
        let tcp = match &proxy {
            None => tokio::time::timeout_at(deadline, TcpStream::connect((dial, self.port)))
                .await
                .map_err(|_| timed_out("connecting"))?
                .map_err(|source| TransportError::Connect {
                    url: url.clone(),
                    source,
                })?,
            Some(p) => tokio::time::timeout_at(deadline, self.tunnel(&p.host, p.port))
                .await
                .map_err(|_| timed_out("connecting through the proxy"))??,
        };
        // Small sealed envelopes must not wait on Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        if !self.https {
            return Ok(Stream::Plain(tcp));
        }
        let tls_error = |reason: String| TransportError::Tls {
            url: url.clone(),
            reason,
        };
        let config = self
            .net
            .client_config(purpose == Purpose::Raw)
            .map_err(tls_error)?;
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| tls_error(format!("{host} cannot be a TLS server name: {e}")))?;
        let tls = tokio::time::timeout_at(
            deadline,
            tokio_rustls::TlsConnector::from(config).connect(name, tcp),
        )
        .await
        .map_err(|_| timed_out("the TLS handshake"))?
        .map_err(|e| tls_error(describe_handshake_error(host, &e)))?;
        Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::Client(tls))))
    }

    /// A TCP connection to this target tunnelled through the HTTP proxy at
    /// `proxy_host:proxy_port` with `CONNECT`.
    async fn tunnel(&self, proxy_host: &str, proxy_port: u16) -> Result<TcpStream, TransportError> {
        let proxy_url = format!("http://{proxy_host}:{proxy_port}");
        let io = |during, source| TransportError::Io {
            url: proxy_url.clone(),
            during,
            source,
        };
        let mut tcp = TcpStream::connect((proxy_host, proxy_port))
            .await
            .map_err(|source| TransportError::Connect {
                url: proxy_url.clone(),
                source,
            })?;
        let authority = format!("{}:{}", self.host, self.port);
        let request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
        tcp.write_all(request.as_bytes())
            .await
            .map_err(|e| io("asking the proxy for a tunnel", e))?;
        // Read byte by byte up to the blank line: anything after it belongs
        // to the tunnel. A proxy's answer head is small; cap it.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() >= 8 * 1024 {
                return Err(TransportError::TooLarge {
                    url: proxy_url,
                    during: "reading the proxy's CONNECT answer",
                    limit: 8 * 1024,
                });
            }
            let mut byte = [0u8; 1];
            match tcp.read(&mut byte).await {
                Ok(0) => {
                    return Err(TransportError::Protocol {
                        url: proxy_url,
                        during: "reading the proxy's CONNECT answer",
                        detail: "the proxy closed the connection".into(),
                    })
                }
                Ok(_) => head.push(byte[0]),
                Err(e) => return Err(io("reading the proxy's CONNECT answer", e)),
            }
        }
        let status_line = String::from_utf8_lossy(&head);
        let status_line = status_line.lines().next().unwrap_or_default().to_string();
        let ok = status_line
            .split_whitespace()
            .nth(1)
            .is_some_and(|code| code.starts_with('2'));
        if !ok {
            return Err(TransportError::Protocol {
                url: proxy_url,
                during: "asking the proxy for a tunnel",
                detail: format!("the proxy refused CONNECT {authority}: {status_line}"),
            });
        }
        Ok(tcp)
    }
}

/// Splits `host[:port]`, with `default_port` when none is written.
pub(crate) fn split_host_port(authority: &str, default_port: u16) -> Option<(&str, u16)> {
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let host = &authority[..=end];
        let port = match &authority[end + 1..] {
            "" => default_port,
            p => p.strip_prefix(':')?.parse().ok()?,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h, p.parse().ok()?)),
        None => Some((authority, default_port)),
    }
}

/// Whether `host` is `localhost` or a name under it (`x.localhost`).
fn is_localhost_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_and_base() {
        let t = Target::parse("http://127.0.0.1:8080/api/").unwrap();
        assert_eq!(t.host(), "127.0.0.1");
        assert_eq!(t.port(), 8080);
        assert_eq!(t.join("/secure/call"), "/api/secure/call");
        assert_eq!(t.url(), "http://127.0.0.1:8080/api");
        assert!(t.socket_addr().is_some());
        let t = Target::parse("http://localhost").unwrap();
        assert_eq!(t.port(), 80);
        assert_eq!(t.join("/x"), "/x");
        assert_eq!(t.authority(), "localhost");
        let t = Target::parse("http://[::1]:9/").unwrap();
        assert_eq!(t.host(), "[::1]");
        assert_eq!(t.socket_addr().unwrap().port(), 9);
    }

    #[test]
    fn keeps_what_users_write() {
        let t = Target::parse("https://relay.example/v1/agent?token=a#frag").unwrap();
        assert!(t.is_https());
        assert_eq!(t.port(), 443);
        assert_eq!(t.authority(), "relay.example");
        assert_eq!(t.join("/secure/call"), "/v1/agent/secure/call?token=a");
        assert_eq!(t.join("/x?y=1"), "/v1/agent/x?y=1&token=a");
        assert_eq!(t.url(), "https://relay.example/v1/agent?token=a");
        assert_eq!(
            t.url_for("/health"),
            "https://relay.example/v1/agent/health?token=a"
        );
        let t = Target::parse("https://127.0.0.1:8443").unwrap();
        assert_eq!(t.authority(), "127.0.0.1:8443");
        assert_eq!(t.socket_addr().unwrap().port(), 8443);
    }

    #[test]
    fn refuses_what_it_cannot_reach() {
        for bad in [
            "ftp://x",
            "x:1",
            "http://:1",
            "http://h:99999",
            "http://u@h",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
