//! Parsing the `http://host:port/base` a user points the harness at.

use std::net::SocketAddr;

use super::TransportError;

/// Where a server lives: host, port and a base path that every request path
/// is appended to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    host: String,
    port: u16,
    base_path: String,
}

impl Target {
    /// Parses an `http://` URL. The base path is kept without its trailing
    /// slash; query strings and fragments are refused because appending a
    /// request path to them would make no sense.
    pub fn parse(url: &str) -> Result<Self, TransportError> {
        let bad = |reason: &str| TransportError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// URLs are supported"))?;
        if rest.contains(['?', '#']) {
            return Err(bad("a target URL cannot carry a query or fragment"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad("user info in the URL is not supported"));
        }
        let (host, port) =
            split_host_port(authority).ok_or_else(|| bad("cannot read host:port"))?;
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        Ok(Self {
            host: host.to_string(),
            port,
            base_path: path.trim_end_matches('/').to_string(),
        })
    }

    /// A target for a server bound to `addr`, with no base path.
    pub fn from_socket_addr(addr: SocketAddr) -> Self {
        Self {
            host: match addr {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            },
            port: addr.port(),
            base_path: String::new(),
        }
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

    /// `host:port`, as sent in the `Host` header.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The URL, normalised.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.authority(), self.base_path)
    }

    /// The full URL of `path` on this target.
    pub fn url_for(&self, path: &str) -> String {
        format!("http://{}{}", self.authority(), self.join(path))
    }

    /// The request target for `path`: the base path followed by `path`.
    pub fn join(&self, path: &str) -> String {
        if path.starts_with('/') || path.is_empty() {
            format!("{}{}", self.base_path, path)
        } else {
            format!("{}/{}", self.base_path, path)
        }
    }

    /// The socket address, when the host is an IP literal (no DNS lookup).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.authority().parse().ok()
    }

    pub(crate) async fn connect(
        &self,
        timeout: std::time::Duration,
    ) -> Result<tokio::net::TcpStream, TransportError> {
        let url = self.url();
        let connect = async {
            let host = self.host.trim_start_matches('[').trim_end_matches(']');
            tokio::net::TcpStream::connect((host, self.port)).await
        };
        let stream = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| TransportError::Timeout {
                url: url.clone(),
                during: "connecting",
                after: timeout,
            })?
            .map_err(|source| TransportError::Connect { url, source })?;
        // Small sealed envelopes must not wait on Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

fn split_host_port(authority: &str) -> Option<(&str, u16)> {
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let host = &authority[..=end];
        let port = match &authority[end + 1..] {
            "" => 80,
            p => p.strip_prefix(':')?.parse().ok()?,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h, p.parse().ok()?)),
        None => Some((authority, 80)),
    }
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
        let t = Target::parse("http://[::1]:9/").unwrap();
        assert_eq!(t.host(), "[::1]");
        assert_eq!(t.socket_addr().unwrap().port(), 9);
    }

    #[test]
    fn refuses_what_it_cannot_reach() {
        for bad in [
            "https://x",
            "x:1",
            "http://:1",
            "http://h:99999",
            "http://h/a?b",
            "http://u@h",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
