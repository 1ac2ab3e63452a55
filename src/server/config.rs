//! What a reference server is started with, and how its secrets are made.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::protocol::encoding::b64url_encode;
use crate::protocol::identity::AgentIdentity;
use crate::protocol::SESSION_TTL_SECS;
use crate::rng::{RandomSource, SystemRandom};

use super::bugs::Bug;

/// Upstream's session store capacity (HS-9).
pub const DEFAULT_MAX_SESSIONS: usize = 256;
/// Upstream's handshake budget per source: 5 attempts per 60 s (HS-8).
pub const DEFAULT_HANDSHAKE_RATE: (u32, u64) = (5, 60);
/// Upstream's cap on concurrent connections (LIM-1).
pub const MAX_CONNECTIONS: usize = 512;

/// Everything a reference server needs. Build one with
/// [`ServerConfig::generated`] and change the fields you care about.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The agent's long-term signing key.
    pub identity: AgentIdentity,
    /// The agent's id in routes (`/agents/{id}/…`).
    pub agent_id: String,
    /// The full access key (`Bearer` inside the channel).
    pub access_key: String,
    /// A second key that may only reach `scoped_agent_id`.
    pub scoped_key: Option<String>,
    /// The other agent the scoped key is for.
    pub scoped_agent_id: String,
    /// Session lifetime granted by the handshake, in seconds.
    pub session_ttl_secs: i64,
    /// Whether loopback callers without the relay marker are trusted
    /// (plaintext agent access, no access key).
    pub trust_loopback: bool,
    /// Session store bound.
    pub max_sessions: usize,
    /// Handshake budget per source: `N` attempts per `SECS`; `None` is off.
    pub handshake_rate: Option<(u32, u64)>,
    /// Deliberate faults.
    pub bugs: BTreeSet<Bug>,
    /// How long a request body may take to arrive in full.
    pub body_read_timeout: Duration,
    /// How long a request head may take to arrive.
    pub header_read_timeout: Duration,
    /// TLS for the listener (`serve --tls-cert/--tls-key` or
    /// `--tls-self-signed`); `None` is plain HTTP.
    pub tls: Option<crate::transport::tls::ServerTls>,
    /// The CA file clients should trust, for the ready line (`caCert`).
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Speak HTTP/2 only: ALPN `h2` alone over TLS, prior knowledge over
    /// plain TCP.
    pub http2_only: bool,
}

impl ServerConfig {
    /// A fresh identity and fresh keys, on a free loopback port, with
    /// upstream's defaults and no bugs.
    pub fn generated() -> Self {
        let mut rng = SystemRandom;
        ServerConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            identity: generate_identity(),
            agent_id: generate_agent_id(&mut rng),
            access_key: generate_access_key(),
            scoped_key: Some(generate_access_key()),
            scoped_agent_id: generate_agent_id(&mut rng),
            session_ttl_secs: SESSION_TTL_SECS,
            trust_loopback: true,
            max_sessions: DEFAULT_MAX_SESSIONS,
            handshake_rate: Some(DEFAULT_HANDSHAKE_RATE),
            bugs: BTreeSet::new(),
            body_read_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            tls: None,
            tls_ca_file: None,
            http2_only: false,
        }
    }
}

/// A fresh random secp256k1 agent key.
pub fn generate_identity() -> AgentIdentity {
    let mut rng = SystemRandom;
    loop {
        // A random 32-byte string is a valid scalar with overwhelming
        // probability; retry the astronomically rare miss.
        if let Ok(id) = AgentIdentity::from_bytes(&rng.bytes::<32>()) {
            return id;
        }
    }
}

/// An access key shaped like upstream's: `osk-v1.` + base64url of 24 bytes.
pub fn generate_access_key() -> String {
    format!("osk-v1.{}", b64url_encode(&SystemRandom.bytes::<24>()))
}

/// A random lowercase UUID (version 4 layout), as upstream's agent ids.
fn generate_agent_id(rng: &mut SystemRandom) -> String {
    let mut b = rng.bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Parses a duration: plain seconds (`3600`) or a number with `s`, `m`,
/// `h` or `d` (`90s`, `5m`, `1h`).
pub fn parse_duration_secs(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, ""),
    };
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 3600, 90s, 5m or 1h)"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use s, m, h or d)"
            ))
        }
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too long a duration"))
}

/// Parses `N/SECS` (`5/60`); `0` (or `0/…`) turns the limit off.
pub fn parse_rate(text: &str) -> Result<Option<(u32, u64)>, String> {
    let t = text.trim();
    if t == "0" || t == "off" {
        return Ok(None);
    }
    let (n, secs) = t
        .split_once('/')
        .ok_or_else(|| format!("{text:?} is not N/SECS (for example 5/60, or 0 for off)"))?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: {n:?} is not a count"))?;
    let secs = parse_duration_secs(secs)?;
    if n == 0 {
        return Ok(None);
    }
    if secs <= 0 {
        return Err(format!("{text:?}: the window must be at least one second"));
    }
    Ok(Some((n, secs as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("3600"), Ok(3600));
        assert_eq!(parse_duration_secs("90s"), Ok(90));
        assert_eq!(parse_duration_secs("5m"), Ok(300));
        assert_eq!(parse_duration_secs("1h"), Ok(3600));
        assert!(parse_duration_secs("1x").is_err());
        assert!(parse_duration_secs("h").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("5/60"), Ok(Some((5, 60))));
        assert_eq!(parse_rate("0"), Ok(None));
        assert_eq!(parse_rate("10/1m"), Ok(Some((10, 60))));
        assert!(parse_rate("5").is_err());
    }

    #[test]
    fn keys_look_like_upstream() {
        let k = generate_access_key();
        assert!(k.starts_with("osk-v1."));
        assert_eq!(k.len(), 7 + 32);
        assert_ne!(k, generate_access_key());
    }
}
