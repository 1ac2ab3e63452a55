//! The bounded session store (HS-9, SES-1): sid → session, pruned of
//! expired sessions on insert and lookup, evicting the session closest to
//! expiry when full, as upstream's `SecureSessionStore` does.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::protocol::session::{CallHooks, ServerSession};

/// The sessions of one server process.
pub struct SessionStore {
    sessions: Mutex<HashMap<String, ServerSession>>,
    capacity: usize,
}

impl SessionStore {
    /// An empty store holding at most `capacity` sessions.
    pub fn new(capacity: usize) -> Self {
        SessionStore {
            sessions: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ServerSession>> {
        // A panicking handler (a fuzzer-only knob) must not take the store
        // down with it; the map stays consistent because no handler panics
        // while holding the lock half-way through an update.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a session: drops expired ones, then, if still full and
    /// `bounded`, evicts the one with the smallest expiry.
    pub fn insert(&self, session: ServerSession, now: i64, bounded: bool, hooks: &dyn CallHooks) {
        let mut map = self.lock();
        map.retain(|_, s| !hooks.expired(now, s.expires_at()));
        if bounded {
            while map.len() >= self.capacity {
                let oldest = map
                    .iter()
                    .min_by_key(|(_, s)| s.expires_at())
                    .map(|(sid, _)| sid.clone());
                match oldest {
                    Some(sid) => map.remove(&sid),
                    None => break,
                };
            }
        }
        map.insert(session.sid().to_owned(), session);
    }

    /// Runs `f` on the live session `sid`, or returns `None` when it is
    /// unknown or expired (an expired one is removed).
    pub fn with_session<R>(
        &self,
        sid: &str,
        now: i64,
        hooks: &dyn CallHooks,
        f: impl FnOnce(&mut ServerSession) -> R,
    ) -> Option<R> {
        let mut map = self.lock();
        let expired = hooks.expired(now, map.get(sid)?.expires_at());
        if expired {
            map.remove(sid);
            return None;
        }
        map.get_mut(sid).map(f)
    }

    /// How many sessions are held.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}
