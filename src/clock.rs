//! The system clock, read at the edges: the protocol core takes times as
//! inputs, and the server, client, suite and fuzzer read them here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The current Unix time in whole seconds (0 if the clock is before 1970).
pub fn unix_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// How long until a session announced with `expires_at` has surely expired
/// on the peer's clock: peers compare whole seconds (`now >= expiresAt`),
/// so this waits until one whole second past it. Zero if already past.
pub fn until_expired(expires_at: i64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_secs(expires_at.saturating_add(1).max(0) as u64).saturating_sub(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expiry_in_the_past_needs_no_wait_and_a_future_one_does() {
        assert_eq!(until_expired(0), Duration::ZERO);
        assert_eq!(until_expired(i64::MIN), Duration::ZERO);
        let wait = until_expired(unix_secs() + 10);
        assert!(
            wait > Duration::from_secs(10) && wait <= Duration::from_secs(11),
            "{wait:?}"
        );
    }
}
