//! What can go wrong talking HTTP to a target.

use std::time::Duration;

/// A transport failure, naming the URL and what was being done.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The target URL cannot be used.
    #[error("invalid target URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The TCP connection could not be made.
    #[error("could not connect to {url}: {source}")]
    Connect {
        /// The URL being reached.
        url: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed (untrusted, wrong name, expired, …).
    #[error("TLS with {url} failed: {reason}")]
    Tls {
        /// The URL being reached.
        url: String,
        /// One line saying why.
        reason: String,
    },
    /// Raw HTTP/1.1 bytes were to be sent to a target that speaks only
    /// HTTP/2 (or was told to with `--http2`).
    #[error("{url} cannot be sent raw HTTP/1.1 bytes: {reason}")]
    NeedsHttp1 {
        /// The URL being reached.
        url: String,
        /// Why HTTP/1.1 is not available.
        reason: String,
    },
    /// A time limit ran out.
    #[error("{url} went quiet: no progress within {after:?} while {during}")]
    Timeout {
        /// The URL being reached.
        url: String,
        /// What was being waited for.
        during: &'static str,
        /// The limit that ran out.
        after: Duration,
    },
    /// A size limit was exceeded.
    #[error("{url} sent more than {limit} bytes while {during}")]
    TooLarge {
        /// The URL being reached.
        url: String,
        /// What was being read.
        during: &'static str,
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The peer broke HTTP (bad status line, bad headers, reset mid-body…).
    #[error("{url} broke HTTP while {during}: {detail}")]
    Protocol {
        /// The URL being reached.
        url: String,
        /// What was being done.
        during: &'static str,
        /// What hyper reported.
        detail: String,
    },
    /// A socket read or write failed.
    #[error("I/O error with {url} while {during}: {source}")]
    Io {
        /// The URL being reached.
        url: String,
        /// What was being done.
        during: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl TransportError {
    /// Whether the failure is about reaching the target at all (TCP, proxy,
    /// TLS) rather than what it answered: commands treat these as an
    /// unreachable target.
    pub fn is_connection_failure(&self) -> bool {
        matches!(self, Self::Connect { .. } | Self::Tls { .. })
            || matches!(self, Self::Timeout { during, .. } if during.starts_with("connecting") || *during == "the TLS handshake")
    }
}
