//! Sessions: the client's request counter, the server's replay window and
//! expiry, and the opening of calls in the order CALL-2 fixes.

use super::error::{CallError, WireError};
use super::framing::{ResponseOpener, ResponseSealer};
use super::keys::{
    b64_len, open_b64, request_aad, response_key, seal_b64, seal_b64_into, SessionKeys,
    SymmetricKey,
};
use super::wire::{CallRequest, InnerRequest};
use super::{REPLAY_WINDOW, TAG_LEN, VERSION};

/// The 64-wide sliding anti-replay window over request seqs (CALL-3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    highest: u64,
    bitmap: u64,
}

impl ReplayWindow {
    /// An empty window: nothing seen, highest 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The highest seq accepted so far.
    pub fn highest(&self) -> u64 {
        self.highest
    }

    /// Whether `seq` would be accepted, without marking it.
    pub fn would_accept(&self, seq: u64) -> bool {
        if seq == 0 {
            return false;
        }
        if seq > self.highest {
            return true;
        }
        let offset = self.highest - seq;
        offset < REPLAY_WINDOW && self.bitmap & (1u64 << offset) == 0
    }

    /// Accepts and marks `seq`, or refuses it (0, repeated, or 64 or more
    /// below the highest).
    pub fn mark(&mut self, seq: u64) -> bool {
        if !self.would_accept(seq) {
            return false;
        }
        if seq > self.highest {
            let shift = seq - self.highest;
            self.bitmap = if shift >= REPLAY_WINDOW {
                0
            } else {
                self.bitmap << shift
            };
            self.bitmap |= 1;
            self.highest = seq;
        } else {
            self.bitmap |= 1u64 << (self.highest - seq);
        }
        true
    }
}

/// The client half of a session.
#[derive(Debug, Clone)]
pub struct ClientSession {
    sid: String,
    keys: SessionKeys,
    expires_at: i64,
    next_seq: u64,
}

/// A client session that can no longer seal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientSessionError {
    /// `now >= expiresAt` (SES-3).
    #[error("the session expired at {expires_at} (now {now})")]
    Expired {
        /// Expiry.
        expires_at: i64,
        /// The time given.
        now: i64,
    },
    /// Every seq has been used.
    #[error("request sequence numbers exhausted")]
    Exhausted,
}

impl ClientSession {
    /// A session from a completed handshake.
    pub fn new(sid: String, keys: SessionKeys, expires_at: i64) -> Self {
        ClientSession {
            sid,
            keys,
            expires_at,
            next_seq: 1,
        }
    }

    /// The session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The session keys (the harness holds them to read transcripts).
    pub fn keys(&self) -> &SessionKeys {
        &self.keys
    }

    /// Unix seconds at which the session ends.
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// The seq the next [`ClientSession::seal_call`] will use.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Whether the session may be reused at `now` with `margin` seconds left (SES-3).
    pub fn usable_at(&self, now: i64, margin: i64) -> bool {
        now.saturating_add(margin) < self.expires_at
    }

    /// Seals an inner request with the next seq (CALL-1). Refuses an
    /// expired session.
    pub fn seal_call(
        &mut self,
        inner: &InnerRequest,
        now: i64,
    ) -> Result<CallRequest, ClientSessionError> {
        self.seal_call_bytes(inner.to_json().as_bytes(), now)
    }

    /// Seals raw plaintext bytes with the next seq.
    pub fn seal_call_bytes(
        &mut self,
        plaintext: &[u8],
        now: i64,
    ) -> Result<CallRequest, ClientSessionError> {
        if now >= self.expires_at {
            return Err(ClientSessionError::Expired {
                expires_at: self.expires_at,
                now,
            });
        }
        let seq = self.next_seq;
        self.next_seq = seq.checked_add(1).ok_or(ClientSessionError::Exhausted)?;
        Ok(self.seal_at(seq, plaintext))
    }

    /// Seals the next call straight to its JSON body: the same bytes as
    /// `seal_call_bytes(..)?.to_json()`, with one copy of the ciphertext
    /// fewer. Returns the seq used and the body.
    pub fn seal_call_json(
        &mut self,
        plaintext: &[u8],
        now: i64,
    ) -> Result<(u64, String), ClientSessionError> {
        if now >= self.expires_at {
            return Err(ClientSessionError::Expired {
                expires_at: self.expires_at,
                now,
            });
        }
        let seq = self.next_seq;
        self.next_seq = seq.checked_add(1).ok_or(ClientSessionError::Exhausted)?;
        let aad = request_aad(&self.sid, seq);
        let ct_len = b64_len(plaintext.len() + TAG_LEN);
        let body = CallRequest::json_with_ct(VERSION, &self.sid, seq, ct_len, |out| {
            seal_b64_into(&self.keys.c2s, seq, aad.as_bytes(), plaintext, out)
        });
        Ok((seq, body))
    }

    /// Seals with an explicit seq, key unchanged, counter untouched (for
    /// vectors and adversaries).
    pub fn seal_at(&self, seq: u64, plaintext: &[u8]) -> CallRequest {
        CallRequest {
            v: VERSION,
            sid: self.sid.clone(),
            seq,
            ct: seal_b64(
                &self.keys.c2s,
                seq,
                request_aad(&self.sid, seq).as_bytes(),
                plaintext,
            ),
        }
    }

    /// The opener for the response to request `request_seq`.
    pub fn response_opener(&self, request_seq: u64) -> ResponseOpener {
        ResponseOpener::new(
            response_key(&self.keys.s2c, request_seq),
            self.sid.clone(),
            request_seq,
        )
    }
}

/// The steps of opening a call that an adversarial server bends. Defaults
/// are the honest protocol.
pub trait CallHooks {
    /// Whether the session has expired at `now` (honest: `now >= expires_at`).
    fn expired(&self, now: i64, expires_at: i64) -> bool {
        now >= expires_at
    }
    /// Marks `seq` in the window (honest: [`ReplayWindow::mark`]).
    fn mark(&self, window: &mut ReplayWindow, seq: u64) -> bool {
        window.mark(seq)
    }
    /// Whether to mark before the AEAD opens (honest: no, CALL-4).
    fn mark_before_open(&self) -> bool {
        false
    }
}

/// The honest call checks.
pub struct HonestCalls;
impl CallHooks for HonestCalls {}

/// The server half of a session.
#[derive(Debug, Clone)]
pub struct ServerSession {
    sid: String,
    keys: SessionKeys,
    expires_at: i64,
    window: ReplayWindow,
}

/// A call that opened: its seq and plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedCall {
    /// The request seq.
    pub seq: u64,
    /// The decrypted InnerRequest bytes.
    pub plaintext: Vec<u8>,
}

impl ServerSession {
    /// A session from a completed handshake.
    pub fn new(sid: String, keys: SessionKeys, expires_at: i64) -> Self {
        ServerSession {
            sid,
            keys,
            expires_at,
            window: ReplayWindow::new(),
        }
    }

    /// The session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The session keys.
    pub fn keys(&self) -> &SessionKeys {
        &self.keys
    }

    /// Unix seconds at which the session ends.
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// Opens a call whose envelope already parsed and whose sid matched:
    /// version, expiry, AEAD, then the replay window (CALL-2..CALL-4).
    pub fn open_call(
        &mut self,
        call: &CallRequest,
        now: i64,
        hooks: &dyn CallHooks,
    ) -> Result<OpenedCall, CallError> {
        if call.v != VERSION {
            return Err(CallError::Version(call.v));
        }
        if hooks.expired(now, self.expires_at) {
            return Err(CallError::SessionUnknown);
        }
        if hooks.mark_before_open() && !hooks.mark(&mut self.window, call.seq) {
            return Err(CallError::Replay(call.seq));
        }
        let plaintext = open_b64(
            &self.keys.c2s,
            call.seq,
            request_aad(&self.sid, call.seq).as_bytes(),
            &call.ct,
        )
        .map_err(|e| CallError::Decrypt(e.to_string()))?;
        if !hooks.mark_before_open() && !hooks.mark(&mut self.window, call.seq) {
            return Err(CallError::Replay(call.seq));
        }
        Ok(OpenedCall {
            seq: call.seq,
            plaintext,
        })
    }

    /// The sealer for the response to `request_seq` under `key` (honest:
    /// [`ServerSession::response_key`]).
    pub fn response_sealer_with_key(&self, request_seq: u64, key: SymmetricKey) -> ResponseSealer {
        ResponseSealer::new(key, self.sid.clone(), request_seq)
    }

    /// The honest per-call response key (KS-2).
    pub fn response_key(&self, request_seq: u64) -> SymmetricKey {
        response_key(&self.keys.s2c, request_seq)
    }

    /// The honest sealer for the response to `request_seq`.
    pub fn response_sealer(&self, request_seq: u64) -> ResponseSealer {
        self.response_sealer_with_key(request_seq, self.response_key(request_seq))
    }
}

/// Parses and validates a decrypted inner request (CALL-2's last step,
/// CALL-8 after normalisation by `normalize`, CALL-9 when `strict_body`).
pub fn validate_inner(
    plaintext: &[u8],
    normalize: impl Fn(&str) -> String,
    strict_body: bool,
) -> Result<InnerRequest, CallError> {
    let inner = InnerRequest::parse(plaintext)
        .map_err(|e: WireError| CallError::MalformedInner(e.to_string()))?;
    if !inner.path.starts_with('/') {
        return Err(CallError::MalformedInner(format!(
            "path {:?} does not start with /",
            inner.path
        )));
    }
    let routed = normalize(&inner.path);
    if routed == "/secure" || routed.starts_with("/secure/") || inner.path.starts_with("/secure/") {
        return Err(CallError::MalformedInner(format!(
            "path {:?} reaches the channel endpoints",
            inner.path
        )));
    }
    if strict_body {
        if let Some(body) = &inner.body {
            super::encoding::b64url_decode(body, super::encoding::B64Strictness::Upstream)
                .map_err(|_| CallError::MalformedInner("body is not base64url".into()))?;
        }
    }
    Ok(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_call_json_is_byte_identical() {
        let keys = SessionKeys {
            c2s: [1; 32],
            s2c: [2; 32],
        };
        let mut a = ClientSession::new("a/b".into(), keys.clone(), 10);
        let mut b = ClientSession::new("a/b".into(), keys, 10);
        for len in [0, 1, 2, 3, 100, 4096] {
            let pt = vec![7u8; len];
            let (seq, body) = a.seal_call_json(&pt, 0).unwrap();
            let call = b.seal_call_bytes(&pt, 0).unwrap();
            assert_eq!(seq, call.seq);
            assert_eq!(body, call.to_json());
        }
        assert!(a.seal_call_json(b"x", 10).is_err());
    }

    #[test]
    fn window_matches_upstream_rules() {
        let mut w = ReplayWindow::new();
        assert!(!w.mark(0));
        assert!(w.mark(5));
        assert!(!w.mark(5));
        assert!(w.mark(3));
        assert!(w.mark(100));
        assert!(!w.mark(36), "exactly 64 below is refused");
        assert!(w.mark(37), "63 below is accepted once");
        assert!(!w.mark(37));
    }
}
