//! The bounded session store (HS-9, SES-1): sid → session, pruned of
//! expired sessions on insert and lookup, evicting the session closest to
//! expiry when full, as upstream's `SecureSessionStore` does.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::protocol::session::{CallHooks, ServerSession};

/// The sessions of one server process.
pub struct SessionStore {
    sessions: Mutex<Sessions>,
    capacity: usize,
}

/// Sessions with their registration order: upstream's expiry is a
/// sub-second date, so among sessions expiring in the same second the
/// first registered is the one closest to expiry.
#[derive(Default)]
struct Sessions {
    map: HashMap<String, (u64, ServerSession)>,
    registered: u64,
}

impl SessionStore {
    /// An empty store holding at most `capacity` sessions.
    pub fn new(capacity: usize) -> Self {
        SessionStore {
            sessions: Mutex::new(Sessions::default()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        // A panicking handler (a fuzzer-only knob) must not take the store
        // down with it; the map stays consistent because no handler panics
        // while holding the lock half-way through an update.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a session: drops expired ones, then, if still full and
    /// `bounded`, evicts the one with the smallest expiry.
    pub fn insert(&self, session: ServerSession, now: i64, bounded: bool, hooks: &dyn CallHooks) {
        let mut guard = self.lock();
        let sessions = &mut *guard;
        let map = &mut sessions.map;
        map.retain(|_, (_, s)| !hooks.expired(now, s.expires_at()));
        if bounded {
            while map.len() >= self.capacity {
                let oldest = map
                    .iter()
                    .min_by_key(|(_, (order, s))| (s.expires_at(), *order))
                    .map(|(sid, _)| sid.clone());
                match oldest {
                    Some(sid) => map.remove(&sid),
                    None => break,
                };
            }
        }
        sessions.registered += 1;
        map.insert(session.sid().to_owned(), (sessions.registered, session));
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
        let mut guard = self.lock();
        let map = &mut guard.map;
        let expired = hooks.expired(now, map.get(sid)?.1.expires_at());
        if expired {
            map.remove(sid);
            return None;
        }
        map.get_mut(sid).map(|(_, s)| f(s))
    }

    /// How many sessions are held.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }
}
