//! The per-source handshake limiter (HS-8): a trailing window of `N`
//! allowed attempts per `SECS` per source key; denied attempts are not
//! recorded, as upstream's `PairingRateLimiter`.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Above this many tracked sources, idle ones are pruned so spoofed
/// `X-Forwarded-For` values cannot grow the map without limit.
const MAX_TRACKED_SOURCES: usize = 4096;

/// The limiter shared by every handshake of one server.
pub struct RateLimiter {
    limit: Option<(u32, Duration)>,
    attempts: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    /// `N` per `SECS`, or no limit for `None`.
    pub fn new(rate: Option<(u32, u64)>) -> Self {
        RateLimiter {
            limit: rate.map(|(n, secs)| (n, Duration::from_secs(secs))),
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// Records an attempt from `source` and says whether it is allowed.
    pub fn allow(&self, source: &str, now: Instant) -> bool {
        let Some((max, window)) = self.limit else {
            return true;
        };
        let mut map = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED_SOURCES && !map.contains_key(source) {
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
            if map.len() >= MAX_TRACKED_SOURCES {
                // Still full of live sources: fold the newcomer into one
                // shared overflow bucket rather than grow.
                return Self::record(map.entry("overflow".into()).or_default(), max, window, now);
            }
        }
        Self::record(map.entry(source.to_owned()).or_default(), max, window, now)
    }

    fn record(queue: &mut VecDeque<Instant>, max: u32, window: Duration, now: Instant) -> bool {
        while queue
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            queue.pop_front();
        }
        if queue.len() >= max as usize {
            return false;
        }
        queue.push_back(now);
        true
    }
}

/// The key a handshake is counted under: the socket IP for direct
/// callers; for relay-origin requests, the first `X-Forwarded-For` hop
/// (trimmed, at most 64 characters), else the socket IP, prefixed `relay:`.
pub fn source_key(peer: IpAddr, relay_origin: bool, forwarded_for: Option<&str>) -> String {
    if !relay_origin {
        return peer.to_string();
    }
    let hop = forwarded_for
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|h| !h.is_empty());
    match hop {
        Some(h) => format!("relay:{}", h.chars().take(64).collect::<String>()),
        None => format!("relay:{peer}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_counts_allowed_attempts_only() {
        let rl = RateLimiter::new(Some((2, 60)));
        let t = Instant::now();
        assert!(rl.allow("a", t));
        assert!(rl.allow("a", t));
        assert!(!rl.allow("a", t));
        assert!(rl.allow("b", t));
        assert!(rl.allow("a", t + Duration::from_secs(60)));
    }

    #[test]
    fn relay_keys() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(source_key(ip, false, Some("1.2.3.4")), "127.0.0.1");
        assert_eq!(
            source_key(ip, true, Some(" 1.2.3.4 , 5.6.7.8")),
            "relay:1.2.3.4"
        );
        assert_eq!(source_key(ip, true, None), "relay:127.0.0.1");
    }
}
