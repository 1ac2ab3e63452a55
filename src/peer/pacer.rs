//! [`HandshakePacer`]: the one handshake budget (HS-8), shared by every
//! worker of a run, and [`parse_handshake_budget`], the one reading of
//! `--handshake-budget`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Reads `--handshake-budget`: `N/SECS` (SECS also as `90s`, `5m`, `1h`),
/// or `none`, `off` or `0` for no budget. `N` of 0 means no budget too.
pub fn parse_handshake_budget(text: &str) -> Result<Option<(u32, u64)>, String> {
    parse_budget("--handshake-budget", text)
}

/// Reads a budget flag's value as `--handshake-budget` reads it (`N/SECS`,
/// or `none`, `off`, `0`, `0/SECS` for none); errors name `flag`.
pub fn parse_budget(flag: &str, text: &str) -> Result<Option<(u32, u64)>, String> {
    let t = text.trim();
    if matches!(t, "none" | "off" | "0") {
        return Ok(None);
    }
    let (n, secs) = t
        .split_once('/')
        .ok_or_else(|| format!("{flag} {text:?}: expected N/SECS, e.g. 5/60 (or none)"))?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("{flag}: {n:?} is not a count"))?;
    let secs = crate::server::parse_duration_secs(secs).map_err(|e| format!("{flag}: {e}"))?;
    if n == 0 {
        return Ok(None);
    }
    if secs <= 0 {
        return Err(format!("{flag}: SECS must be above 0"));
    }
    Ok(Some((n, secs as u64)))
}

/// Spends at most N handshakes per window, waiting when they are spent.
/// Shared by reference: every method takes `&self`.
#[derive(Debug)]
pub struct HandshakePacer {
    budget: Option<(u32, u64)>,
    spent: Mutex<VecDeque<Instant>>,
    total: AtomicU64,
    rate_limited: AtomicU64,
    hellos_deferred: AtomicU64,
}

impl HandshakePacer {
    /// A pacer for `budget` (N per SECS); `None` is unlimited.
    pub fn new(budget: Option<(u32, u64)>) -> Self {
        HandshakePacer {
            budget: budget.map(|(n, s)| (n.max(1), s.max(1))),
            spent: Mutex::new(VecDeque::new()),
            total: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            hellos_deferred: AtomicU64::new(0),
        }
    }

    /// The budget, N per SECS; `None` when unlimited.
    pub fn budget(&self) -> Option<(u32, u64)> {
        self.budget
    }

    /// Whether handshakes are unlimited.
    pub fn unlimited(&self) -> bool {
        self.budget.is_none()
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.budget.map_or(1, |(_, s)| s))
    }

    fn spent(&self) -> std::sync::MutexGuard<'_, VecDeque<Instant>> {
        // A worker that panicked while holding the lock left the queue in
        // a consistent state (every change is one push or pop).
        self.spent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the handshakes that have left the window by `now`.
    fn forget_expired(&self, spent: &mut VecDeque<Instant>, now: Instant) {
        let window = self.window();
        while spent.front().is_some_and(|t| *t + window <= now) {
            spent.pop_front();
        }
    }

    /// Waits until one more handshake fits the budget, then books it.
    pub async fn acquire(&self) {
        if let Some((n, _)) = self.budget {
            loop {
                let wake = {
                    let mut spent = self.spent();
                    let now = Instant::now();
                    self.forget_expired(&mut spent, now);
                    if spent.len() < n as usize {
                        spent.push_back(now);
                        break;
                    }
                    spent[0] + self.window()
                };
                tokio::time::sleep_until(wake).await;
            }
        }
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    /// Waits until `n` handshakes fit the window at once, without booking
    /// them (each handshake still books its own): so `n` sessions opened
    /// back to back live side by side for as long as the target lets them.
    /// False at once when the budget can never hold `n` (more than N).
    pub async fn wait_for_room(&self, n: usize) -> bool {
        let Some((count, _)) = self.budget else {
            return true;
        };
        if n > count as usize {
            return false;
        }
        loop {
            let wake = {
                let mut spent = self.spent();
                let now = Instant::now();
                self.forget_expired(&mut spent, now);
                if spent.len() + n <= count as usize {
                    return true;
                }
                spent[spent.len() + n - count as usize - 1] + self.window()
            };
            tokio::time::sleep_until(wake).await;
        }
    }

    /// Books `n` handshakes now if that still leaves one free in the window
    /// (for an honest session), without waiting; false otherwise.
    pub fn try_spare(&self, n: usize) -> bool {
        if let Some((count, _)) = self.budget {
            let mut spent = self.spent();
            let now = Instant::now();
            self.forget_expired(&mut spent, now);
            if spent.len() + n >= count as usize {
                return false;
            }
            spent.extend(std::iter::repeat_n(now, n));
        }
        self.total.fetch_add(n as u64, Ordering::Relaxed);
        true
    }

    /// How long to back off after a `429` that named no Retry-After.
    pub fn backoff(&self) -> Duration {
        match self.budget {
            None => Duration::from_millis(500),
            Some((n, _)) => self.window() / n,
        }
    }

    /// Counts a `429` answer to a handshake.
    pub fn note_rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a mutated hello left out for want of a spare handshake.
    pub fn note_hello_deferred(&self) {
        self.hellos_deferred.fetch_add(1, Ordering::Relaxed);
    }

    /// Handshakes booked so far.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// `429` answers to handshakes so far.
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// Mutated hellos left out so far.
    pub fn hellos_deferred(&self) -> u64 {
        self.hellos_deferred.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_parser_reads_every_spelling() {
        assert_eq!(parse_handshake_budget("5/60"), Ok(Some((5, 60))));
        assert_eq!(parse_handshake_budget("4/1m"), Ok(Some((4, 60))));
        for off in ["none", "off", "0", "0/60"] {
            assert_eq!(parse_handshake_budget(off), Ok(None), "{off}");
        }
        assert!(parse_handshake_budget("5").is_err());
        assert!(parse_handshake_budget("x/60").is_err());
        assert!(parse_handshake_budget("5/0").is_err());
    }

    #[tokio::test]
    async fn spare_handshakes_keep_one_in_reserve() {
        let pacer = HandshakePacer::new(Some((3, 60)));
        assert!(pacer.try_spare(2));
        assert!(
            !pacer.try_spare(1),
            "the last one stays for an honest session"
        );
        pacer.acquire().await;
        assert_eq!(pacer.total(), 3);
        assert_eq!(pacer.backoff(), Duration::from_secs(20));
        assert!(HandshakePacer::new(None).try_spare(100));
    }

    #[tokio::test]
    async fn room_for_several_is_room_for_all_at_once() {
        let pacer = HandshakePacer::new(Some((3, 60)));
        pacer.acquire().await;
        assert!(pacer.wait_for_room(2).await, "two of three are free");
        assert!(!pacer.wait_for_room(4).await, "never more than N");
        assert_eq!(pacer.total(), 1, "waiting for room books nothing");
        assert!(HandshakePacer::new(None).wait_for_room(9).await);
    }
}
