//! [`RateLimitPolicy`]: how a `429` to a handshake is waited out. A 429 is
//! the target protecting itself (HS-8), never a verdict.

use std::time::Duration;

use crate::transport::OuterResponse;

use super::HandshakePacer;

/// How many times a rate-limited handshake is tried again, and the
/// longest single wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitPolicy {
    /// Retries after the first try (0: a 429 is returned as it is).
    pub retries: u32,
    /// The longest one wait may last, whatever Retry-After says.
    pub max_wait: Duration,
}

impl RateLimitPolicy {
    /// No retry: the caller sees the 429.
    pub const NONE: RateLimitPolicy = RateLimitPolicy {
        retries: 0,
        max_wait: Duration::ZERO,
    };

    /// `retries` retries, no wait longer than `max_wait`.
    pub fn new(retries: u32, max_wait: Duration) -> Self {
        RateLimitPolicy { retries, max_wait }
    }

    /// How long to wait before retry number `attempt` (0-based) after
    /// `response`, or `None` when it is not a 429 or the retries are spent.
    /// Retry-After wins; without it the pacer's share of its window, grown
    /// by doubling from half a second.
    pub fn wait(
        &self,
        response: &OuterResponse,
        attempt: u32,
        pacer: &HandshakePacer,
    ) -> Option<Duration> {
        if response.status != 429 || attempt >= self.retries {
            return None;
        }
        let wait = response
            .header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or_else(|| {
                pacer
                    .backoff()
                    .max(Duration::from_millis(500u64 << attempt.min(16)))
            });
        Some(wait.min(self.max_wait))
    }
}
