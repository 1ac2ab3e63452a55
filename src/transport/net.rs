//! How connections to a target are made: trust, HTTP version and proxy,
//! chosen once per command and carried by every [`super::Target`] it
//! makes, so each caller gets TLS, HTTP/2 and the proxy without code of
//! its own.

use std::sync::{Arc, OnceLock};

use tokio_rustls::rustls;

use super::tls::{self, TlsConfigError, TrustSettings, ALPN_H2, ALPN_HTTP1};

/// Which HTTP version requests use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/2 when a TLS server picks `h2` by ALPN, else HTTP/1.1.
    #[default]
    Auto,
    /// HTTP/1.1 only (`--http1`).
    Http1,
    /// HTTP/2 only (`--http2`): ALPN `h2` over TLS, prior knowledge over
    /// plain TCP.
    Http2,
}

/// Where the proxy setting comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProxyChoice {
    /// `HTTPS_PROXY` (or `https_proxy`) for `https` targets, minus the
    /// hosts `NO_PROXY` lists.
    #[default]
    FromEnv,
    /// Connect directly.
    Direct,
    /// Tunnel every connection through this HTTP proxy (`--proxy`).
    Url(ProxyAddr),
}

/// An HTTP proxy's host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyAddr {
    /// The host, without brackets.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl ProxyAddr {
    /// Parses `http://host[:port][/]` (the port defaults to 80).
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| (!url.contains("://")).then_some(url))
            .ok_or_else(|| format!("proxy {url:?}: only http:// proxies are supported"))?;
        let authority = rest.trim_end_matches('/');
        if authority.contains(['/', '@', '?', '#']) {
            return Err(format!(
                "proxy {url:?}: give http://host:port (no path or credentials)"
            ));
        }
        let (host, port) = super::target::split_host_port(authority, 80)
            .ok_or_else(|| format!("proxy {url:?}: cannot read host:port"))?;
        if host.is_empty() {
            return Err(format!("proxy {url:?}: missing host"));
        }
        Ok(Self {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
        })
    }
}

/// The connection settings one command chose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetSettings {
    /// Certificate trust for `https` targets.
    pub trust: TrustSettings,
    /// The HTTP version.
    pub http: HttpVersion,
    /// The proxy.
    pub proxy: ProxyChoice,
}

/// Settings plus the TLS configurations built from them (once, on first
/// use). Cheap to clone.
#[derive(Clone, Default)]
pub struct Net(Arc<NetInner>);

#[derive(Default)]
struct NetInner {
    settings: NetSettings,
    /// ALPN as `http` says, for honest requests.
    requests: OnceLock<Result<Arc<rustls::ClientConfig>, String>>,
    /// ALPN `http/1.1` alone, for raw bytes.
    raw: OnceLock<Result<Arc<rustls::ClientConfig>, String>>,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.settings.fmt(f)
    }
}

impl PartialEq for Net {
    fn eq(&self, other: &Self) -> bool {
        self.0.settings == other.0.settings
    }
}

impl Eq for Net {}

impl Net {
    /// Connections made with `settings`.
    pub fn new(settings: NetSettings) -> Self {
        Self(Arc::new(NetInner {
            settings,
            ..NetInner::default()
        }))
    }

    /// Builds the TLS configurations now, so a bad `--ca-cert` is a usage
    /// error before anything is sent.
    pub fn check(&self) -> Result<(), TlsConfigError> {
        let trust = &self.0.settings.trust;
        tls::client_config(trust, &[]).map(|_| ())
    }

    /// The settings.
    pub fn settings(&self) -> &NetSettings {
        &self.0.settings
    }

    /// The client configuration for an honest request, or for raw bytes.
    pub(crate) fn client_config(&self, raw: bool) -> Result<Arc<rustls::ClientConfig>, String> {
        let (cell, alpn): (_, &[&[u8]]) = if raw {
            (&self.0.raw, &[ALPN_HTTP1])
        } else {
            match self.0.settings.http {
                HttpVersion::Auto => (&self.0.requests, &[ALPN_H2, ALPN_HTTP1]),
                HttpVersion::Http1 => (&self.0.requests, &[ALPN_HTTP1]),
                HttpVersion::Http2 => (&self.0.requests, &[ALPN_H2]),
            }
        };
        cell.get_or_init(|| {
            tls::client_config(&self.0.settings.trust, alpn).map_err(|e| e.to_string())
        })
        .clone()
    }

    /// The proxy to tunnel a connection to `host` through, if any.
    pub(crate) fn proxy_for(&self, host: &str, https: bool) -> Result<Option<ProxyAddr>, String> {
        match &self.0.settings.proxy {
            ProxyChoice::Direct => Ok(None),
            ProxyChoice::Url(p) => Ok(Some(p.clone())),
            ProxyChoice::FromEnv => {
                if !https {
                    return Ok(None);
                }
                let Some(url) = env_var("HTTPS_PROXY") else {
                    return Ok(None);
                };
                if no_proxy_matches(env_var("NO_PROXY").as_deref().unwrap_or(""), host) {
                    return Ok(None);
                }
                ProxyAddr::parse(&url)
                    .map(Some)
                    .map_err(|e| format!("HTTPS_PROXY: {e}"))
            }
        }
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .or_else(|| std::env::var(name.to_ascii_lowercase()).ok())
        .filter(|v| !v.trim().is_empty())
}

/// Whether `NO_PROXY` (comma-separated hosts, `.suffix` or `*`) exempts
/// `host`. A bare name also matches its subdomains, as curl does.
pub fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    list.split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            // An entry may carry a port; hosts are compared without it.
            let entry = match entry.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') && p.parse::<u16>().is_ok() => h.to_string(),
                _ => entry,
            };
            let bare = entry.trim_start_matches('.');
            host == bare || host.ends_with(&format!(".{bare}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_lists() {
        assert!(no_proxy_matches("*", "example.com"));
        assert!(no_proxy_matches("localhost,127.0.0.1", "127.0.0.1"));
        assert!(no_proxy_matches(".example.com", "a.example.com"));
        assert!(no_proxy_matches("example.com", "a.example.com"));
        assert!(no_proxy_matches("example.com:443", "example.com"));
        assert!(no_proxy_matches("::1", "[::1]"));
        assert!(!no_proxy_matches("example.com", "badexample.com"));
        assert!(!no_proxy_matches("", "example.com"));
    }

    #[test]
    fn proxy_urls() {
        let p = ProxyAddr::parse("http://127.0.0.1:3128/").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("127.0.0.1", 3128));
        assert_eq!(ProxyAddr::parse("proxy.local").unwrap().port, 80);
        assert!(ProxyAddr::parse("https://p:1").is_err());
        assert!(ProxyAddr::parse("http://u:p@p:1").is_err());
    }
}
