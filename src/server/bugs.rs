//! The server's fault knobs (`--bug NAME`), all in one place.
//!
//! Each knob bends exactly one honest step. The handshake and call steps go
//! through the core's [`ServerHandshakeHooks`] and [`CallHooks`]; the HTTP
//! steps (gate, auth, framing, limits) ask [`Knobs`] at the point where the
//! honest code does the right thing. Reading this file tells you every way
//! the reference server can be made to lie.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use crate::protocol::error::HandshakeRefusal;
use crate::protocol::framing::ResponseSealer;
use crate::protocol::handshake::{
    low_order_points, AnnouncedKey, ServerHandshakeHooks, Transcript, TranscriptField,
};
use crate::protocol::identity::{domain_digest, Address, AgentIdentity, OTHER_PREFIXES};
use crate::protocol::keys::{
    derive_session_keys, response_aad, seal_b64, SessionKeys, SymmetricKey,
};
use crate::protocol::session::{CallHooks, ReplayWindow};
use crate::protocol::wire::Frame;
use crate::protocol::REPLAY_WINDOW;

crate::knobs! {
    /// A deliberate fault of the reference server.
    pub enum Bug: Server {
        /// Replayed seqs are accepted.
        ReplayCheckOff = "replay-check-off", "CALL-3", Suite, "the replay window accepts every seq, so a captured call executes again";
        /// A seq exactly 64 below the highest is accepted.
        WindowOffByOne = "window-off-by-one", "CALL-3", Suite, "a seq exactly 64 below the highest seen is accepted (window of 65)";
        /// Seq 0 with a valid tag is accepted.
        SeqZeroAccepted = "seq-zero-accepted", "CALL-1", Suite, "a call with seq 0 is accepted instead of refused with 409";
        /// The seq is marked before the AEAD opens.
        MarkBeforeOpen = "mark-before-open", "CALL-4", Suite, "the seq is marked before the AEAD opens, so forged frames burn sequence numbers";
        /// No 426 gate.
        No426Gate = "no-426-gate", "GATE-1", Suite, "remote plaintext agent runs are executed instead of refused with 426";
        /// The relay marker is ignored.
        RelayMarkerTrusted = "relay-marker-trusted", "GATE-3", Suite, "a loopback request carrying X-Osaurus-Relay-Origin is trusted as loopback";
        /// Streams end without fin.
        StreamDropsFin = "stream-drops-fin", "RESP-5", Suite, "streamed responses end cleanly without the final fin frame";
        /// Streams are cut in the middle of a frame.
        StreamCutMidFrame = "stream-cut-mid-frame", "RESP-5", Suite, "streamed responses stop in the middle of the final frame's event";
        /// The first two stream frames are swapped.
        FramesReordered = "frames-reordered", "RESP-4", Suite, "the first two frames of a stream are sent in swapped order";
        /// Every frame claims fin.
        FinOnEveryFrame = "fin-on-every-frame", "RESP-1", Suite, "every stream frame is sealed and sent with fin set";
        /// One ephemeral key for every session.
        StaticEphemeralKey = "static-ephemeral-key", "HS-3", Suite, "the server reuses one ephemeral X25519 key for every session";
        /// The hello is signed by a key that is not the agent's.
        WrongSigningKey = "wrong-signing-key", "HS-1", Suite, "the ServerHello is signed by a key that is not the agent's";
        /// The hello is signed under another domain prefix.
        WrongSignatureDomain = "wrong-signature-domain", "ID-2", Suite, "the ServerHello is signed under the \"Osaurus Signed Message\" prefix";
        /// One transcript field is left out of the signature.
        TranscriptFieldUnsigned = "transcript-field-unsigned", "HS-2", Suite, "the server's encPub is left out of the signed transcript";
        /// Sessions never expire.
        SessionsNeverExpire = "sessions-never-expire", "SES-1", Suite, "calls on a session past its expiresAt are still served";
        /// The session key seals responses.
        SessionKeyForResponses = "session-key-for-responses", "KS-2", Suite, "responses are sealed with s2c itself instead of the per-call response key";
        /// c2s is used in both directions.
        SameKeyBothDirections = "same-key-both-directions", "KS-1", Suite, "the server derives s2c equal to c2s, one key for both directions";
        /// The inner status leaks onto the outer response.
        StatusOutside = "status-outside", "RESP-2", Suite, "buffered responses carry the inner status on the outer response instead of 200";
        /// The inner access key is not checked inside the channel.
        InnerAuthUnchecked = "inner-auth-unchecked", "CALL-6", Suite, "inner requests skip the access-key check";
        /// Nested /secure/* paths pass after normalisation.
        NestedSecureAllowed = "nested-secure-allowed", "CALL-8", Suite, "inner paths such as /v1/secure/session pass the nesting check (literal prefix only)";
        /// Low-order client keys are accepted.
        LowOrderAccepted = "low-order-accepted", "HS-7", Suite, "a low-order client encPub is accepted, giving an all-zero shared secret";
        /// The hello announces a low-order eS (a client-role knob).
        LowOrderServerKey = "low-order-server-key", "HS-7", ClientSuite, "the ServerHello announces a signed low-order encPub, so a client that accepts it derives keys anyone can compute";
        /// The session store has no bound.
        SessionStoreUnbounded = "session-store-unbounded", "HS-9", Suite, "the session store never evicts, so a handshake flood grows it without limit";
        /// The hello announces an expiry in the past.
        ExpiryInPast = "expiry-in-past", "SES-3", Suite, "the ServerHello announces an expiresAt one minute in the past";
        /// The hello's signature is written in uppercase hex.
        SignatureHexUppercase = "signature-hex-uppercase", "ENC-2", Suite, "the ServerHello's signature is written as 0x + UPPERCASE hex instead of lowercase";
        /// The envelope version is checked before the session lookup.
        VersionBeforeSession = "version-before-session", "CALL-2", Suite, "the envelope's v is checked before the session lookup, so an unknown sid with v 2 gets 400 secure_decrypt_failed instead of 401";
        /// Response frames carry padded base64url.
        FrameCtPadded = "frame-ct-padded", "ENC-1", Suite, "response frames write ct as base64url with = padding";
        /// Handshake refusals are plain text.
        HelloRefusalNotJson = "hello-refusal-not-json", "ENC-3", Suite, "handshake refusals are sent as text/plain sentences instead of JSON";
        /// The signature's v is the raw recovery id.
        SignatureRawV = "signature-raw-v", "ID-3", Suite, "the ServerHello signature's v byte is the raw recovery id 0/1 instead of 27/28";
        /// The address is derived with SHA3-256.
        AddressSha3 = "address-sha3", "ID-1", Suite, "the server derives its agent address with SHA3-256 instead of Keccak-256, so the signature recovers to another address";
        /// A hello with v 2 is served.
        HelloVersionUnchecked = "hello-version-unchecked", "HS-4", Suite, "a ClientHello with v != 1 is answered as if it said 1";
        /// An undecodable hello gets 500.
        GarbageHello500 = "garbage-hello-500", "HS-5", Suite, "a handshake body that does not decode gets 500 instead of 400 Invalid handshake request";
        /// An unknown agent gets 400.
        UnknownAgentMalformed = "unknown-agent-malformed", "HS-6", Suite, "an unknown agentAddress gets 400 Malformed handshake instead of 404 Unknown agent address";
        /// Stream frames after the first use a little-endian nonce.
        StreamNonceLittleEndian = "stream-nonce-little-endian", "KS-3", Suite, "stream frames are sealed with the seq written little-endian in the nonce";
        /// The replay window is consulted before the AEAD.
        ReplayBeforeAead = "replay-before-aead", "CALL-2", Suite, "the replay check runs before the AEAD, so a forged tag on a used seq (or seq 0) gets 409 instead of 400";
        /// Calls sealed with s2c open too.
        EitherDirectionOpens = "either-direction-opens", "CALL-5", Suite, "a call sealed with the s2c key opens as well as one sealed with c2s";
        /// The last chunk carries fin.
        FinOnLastChunk = "fin-on-last-chunk", "RESP-3", Suite, "a stream's last data frame carries fin instead of a separate empty fin frame";
        /// A session answers only callers of the origin of its first call.
        SessionTiedToOrigin = "session-tied-to-origin", "SES-4", Suite, "a session remembers whether its first call came from a remote or a loopback caller and answers 401 to calls from the other";
        /// Loopback callers get 426 too.
        LoopbackGated = "loopback-gated", "GATE-2", Suite, "plaintext agent runs from loopback callers are refused with 426 too";
        /// Sealed runs get 426.
        ChannelRunGated = "channel-run-gated", "GATE-4", Suite, "agent runs through the channel are refused with 426 like plaintext ones";
        /// A call with an empty ct panics the handler.
        PanicOnEmptyCt = "panic-on-empty-ct", "CALL-2", FuzzerOnly, "a call whose ct is empty panics the handling task (the connection drops)";
        /// A seq above 2^53 panics the handler.
        PanicOnHugeSeq = "panic-on-huge-seq", "CALL-2", FuzzerOnly, "a call whose seq is above 2^53 panics the handling task (the connection drops)";
        /// A body shorter than its Content-Length is waited for forever.
        HangOnLengthLie = "hang-on-length-lie", "LIM-2", Suite, "a request body shorter than its Content-Length is waited for forever";
        /// The first call is answered 401 secure_session_unknown (a client-role knob).
        UnknownSessionOnce = "unknown-session-once", "SES-2", ClientSuite, "the first call is answered 401 secure_session_unknown, as after a restart";
        /// Every call is answered 401 secure_session_unknown (a client-role knob).
        UnknownSessionAlways = "unknown-session-always", "SES-2", ClientSuite, "every call is answered 401 secure_session_unknown";
        /// The first call is answered 409 secure_replay (a client-role knob).
        ReplayRefusedOnce = "replay-refused-once", "SES-2", ClientSuite, "the first call is answered 409 secure_replay";
        /// Every handshake is answered 429 (a client-role knob).
        RateLimitEveryHandshake = "rate-limit-every-handshake", "HS-8", ClientSuite, "every handshake is answered 429";
        /// Every call is answered with the plaintext 426 (a client-role knob).
        UpgradeRequiredOnCall = "upgrade-required-on-call", "GATE-1", ClientSuite, "every sealed call is answered with the plaintext 426 upgrade_required body";
        /// A plaintext inner response stands where the sealed frame belongs (a client-role knob).
        PlaintextInnerResponse = "plaintext-inner-response", "RESP-2", ClientSuite, "the call is answered with a plaintext inner response instead of a sealed frame";
        /// The call is answered with an event stream that never ends (a client-role knob).
        EndlessStream = "endless-stream", "LIM-1", ClientSuite, "the call is answered with an event stream of keep-alive comments that never ends";
        /// The call is answered with a stream that drips (a client-role knob).
        SlowDrip = "slow-drip", "LIM-1", ClientSuite, "the call is answered with an event stream that sends one short line every 200 ms";
        /// The call is answered with one huge event (a client-role knob).
        HugeEvent = "huge-event", "LIM-1", ClientSuite, "the call is answered with one 64 MiB event";
    }
}

impl std::str::FromStr for Bug {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Bug::from_name(s)
            .ok_or_else(|| format!("unknown bug {s:?}; `osc-harness serve --list-bugs` lists them"))
    }
}

/// The active knobs and the material some of them need. The honest
/// server is a `Knobs` with an empty set.
pub struct Knobs {
    bugs: BTreeSet<Bug>,
    /// Signs in place of the agent under `wrong-signing-key`.
    impostor: AgentIdentity,
    /// The ephemeral secret reused under `static-ephemeral-key`.
    static_ephemeral: [u8; 32],
    /// Calls seen, for the knobs that answer only the first in the
    /// server's place.
    calls: std::sync::atomic::AtomicU64,
    /// `(sid, seq)` of calls that opened, for `replay-before-aead`.
    seen: Mutex<HashSet<(String, u64)>>,
    /// Whether each session's first call was remote, for
    /// `session-tied-to-origin`.
    origins: Mutex<HashMap<String, bool>>,
}

impl Knobs {
    /// Knobs for `bugs`, with the impostor key and static ephemeral secret
    /// drawn by the caller.
    pub fn new(bugs: BTreeSet<Bug>, impostor: AgentIdentity, static_ephemeral: [u8; 32]) -> Self {
        Knobs {
            bugs,
            impostor,
            static_ephemeral,
            calls: std::sync::atomic::AtomicU64::new(0),
            seen: Mutex::new(HashSet::new()),
            origins: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one more call: its number, from 1.
    pub fn next_call(&self) -> u64 {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            .saturating_add(1)
    }

    /// Whether `bug` is on.
    pub fn on(&self, bug: Bug) -> bool {
        self.bugs.contains(&bug)
    }

    /// HS-3: the server's ephemeral secret for one handshake.
    pub fn ephemeral_secret(&self, fresh: [u8; 32]) -> [u8; 32] {
        if self.on(Bug::StaticEphemeralKey) {
            self.static_ephemeral
        } else {
            fresh
        }
    }

    /// SES-3: the expiry to announce for a session granted at `now`.
    pub fn expires_at(&self, now: i64, ttl: i64) -> i64 {
        if self.on(Bug::ExpiryInPast) {
            now - 60
        } else {
            now.saturating_add(ttl)
        }
    }

    /// HS-9: whether the session store evicts at its bound.
    pub fn store_bounded(&self) -> bool {
        !self.on(Bug::SessionStoreUnbounded)
    }

    /// GATE-3: whether the relay marker makes a loopback caller remote.
    pub fn relay_marker_counts(&self) -> bool {
        !self.on(Bug::RelayMarkerTrusted)
    }

    /// GATE-1: whether the 426 gate refuses remote plaintext agent calls.
    pub fn gate_426(&self) -> bool {
        !self.on(Bug::No426Gate)
    }

    /// CALL-6: whether an inner request's access key is checked.
    pub fn check_access_key(&self, inside_channel: bool) -> bool {
        !(inside_channel && self.on(Bug::InnerAuthUnchecked))
    }

    /// CALL-8: the normalisation used by the nesting check (honest: the
    /// routing normalisation; broken: none, so only the literal prefix counts).
    pub fn nesting_normalize(&self, path: &str) -> String {
        if self.on(Bug::NestedSecureAllowed) {
            path.to_owned()
        } else {
            super::gate::normalize(path)
        }
    }

    /// RESP-2: the outer status of a buffered sealed response.
    pub fn buffered_outer_status(&self, inner_status: u16) -> u16 {
        if self.on(Bug::StatusOutside) {
            inner_status
        } else {
            200
        }
    }

    /// RESP-1: whether a non-final stream frame is sealed with fin.
    pub fn fin_on_data_frame(&self) -> bool {
        self.on(Bug::FinOnEveryFrame)
    }

    /// RESP-4: whether the first two stream frames are swapped.
    pub fn reorder_frames(&self) -> bool {
        self.on(Bug::FramesReordered)
    }

    /// How a stream ends (RESP-3, RESP-5).
    pub fn stream_end(&self) -> StreamEnd {
        if self.on(Bug::StreamDropsFin) {
            StreamEnd::NoFin
        } else if self.on(Bug::StreamCutMidFrame) {
            StreamEnd::CutMidFrame
        } else {
            StreamEnd::Fin
        }
    }

    /// CALL-2: whether the envelope's `v` is checked before the session is
    /// looked up (honest: after, so an unknown sid is 401 whatever `v` says).
    pub fn version_before_session(&self) -> bool {
        self.on(Bug::VersionBeforeSession)
    }

    /// ID-1: the address the server announces and answers to (honest:
    /// Keccak-256 of the public key; `address-sha3`: SHA3-256).
    pub fn agent_address(&self, identity: &AgentIdentity) -> Address {
        if !self.on(Bug::AddressSha3) {
            return identity.address();
        }
        use sha3::Digest as _;
        let Ok(key) = k256::ecdsa::SigningKey::from_slice(&identity.secret_bytes()) else {
            return identity.address();
        };
        let point = key.verifying_key().to_sec1_point(false);
        let hash = sha3::Sha3_256::digest(&point.as_bytes()[1..]);
        let mut out = [0u8; 20];
        out.copy_from_slice(&hash[12..]);
        Address(out)
    }

    /// HS-4: the `v` the handshake goes on with (`hello-version-unchecked`
    /// reads every `v` as 1).
    pub fn hello_version(&self, v: i64) -> i64 {
        if self.on(Bug::HelloVersionUnchecked) {
            crate::protocol::VERSION
        } else {
            v
        }
    }

    /// HS-5, HS-6, ENC-3: the refusal actually sent for `honest`, as
    /// (status, content type, body).
    pub fn hello_refusal(&self, honest: HandshakeRefusal) -> (u16, &'static str, String) {
        let r = match honest {
            HandshakeRefusal::InvalidRequest if self.on(Bug::GarbageHello500) => {
                HandshakeRefusal::Internal
            }
            HandshakeRefusal::UnknownAgent if self.on(Bug::UnknownAgentMalformed) => {
                HandshakeRefusal::Malformed
            }
            r => r,
        };
        if self.on(Bug::HelloRefusalNotJson) {
            (
                r.status(),
                "text/plain; charset=utf-8",
                r.message().to_owned(),
            )
        } else {
            (r.status(), super::app::JSON, r.body())
        }
    }

    /// CALL-2 order under `replay-before-aead`: whether `seq` is refused
    /// as a replay before its frame is opened (seq 0, or one that opened
    /// before on this session).
    pub fn replay_before_aead(&self, sid: &str, seq: u64) -> bool {
        if !self.on(Bug::ReplayBeforeAead) {
            return false;
        }
        seq == 0
            || self
                .seen
                .lock()
                .is_ok_and(|s| s.contains(&(sid.to_owned(), seq)))
    }

    /// Notes a call that opened, for [`Knobs::replay_before_aead`].
    pub fn opened(&self, sid: &str, seq: u64) {
        if self.on(Bug::ReplayBeforeAead) {
            if let Ok(mut seen) = self.seen.lock() {
                // Bounded: only the self-test's few sessions go through here.
                if seen.len() > 100_000 {
                    seen.clear();
                }
                seen.insert((sid.to_owned(), seq));
            }
        }
    }

    /// SES-4 under `session-tied-to-origin`: whether a call from a
    /// `remote` (or loopback) caller is refused because the session's
    /// first call came from the other kind.
    pub fn origin_refused(&self, sid: &str, remote: bool) -> bool {
        if !self.on(Bug::SessionTiedToOrigin) {
            return false;
        }
        let Ok(mut origins) = self.origins.lock() else {
            return false;
        };
        if origins.len() > 100_000 {
            origins.clear();
        }
        *origins.entry(sid.to_owned()).or_insert(remote) != remote
    }

    /// CALL-5: whether a call that fails to open under c2s is tried
    /// under s2c.
    pub fn either_direction_opens(&self) -> bool {
        self.on(Bug::EitherDirectionOpens)
    }

    /// RESP-3: whether the last data frame carries fin in place of a
    /// separate empty fin frame.
    pub fn fin_on_last_chunk(&self) -> bool {
        self.on(Bug::FinOnLastChunk)
    }

    /// GATE-2: whether loopback callers are gated too.
    pub fn gate_loopback(&self) -> bool {
        self.on(Bug::LoopbackGated)
    }

    /// GATE-4: whether runs inside the channel are gated too.
    pub fn gate_channel(&self) -> bool {
        self.on(Bug::ChannelRunGated)
    }

    /// Seals one response frame (RESP-1), bent by `frame-ct-padded`
    /// (ENC-1) and `stream-nonce-little-endian` (KS-3).
    pub fn seal_frame(
        &self,
        sealer: &ResponseSealer,
        raw: &RawSealer,
        seq: u64,
        plaintext: &[u8],
        fin: bool,
    ) -> Frame {
        let mut frame = if self.on(Bug::StreamNonceLittleEndian) && seq > 0 {
            let aad = response_aad(&raw.sid, raw.request_seq, seq, fin);
            Frame {
                seq,
                ct: seal_b64(&raw.key, seq.swap_bytes(), aad.as_bytes(), plaintext),
                fin: fin.then_some(true),
            }
        } else {
            sealer.seal_at(seq, plaintext, fin)
        };
        if self.on(Bug::FrameCtPadded) {
            while frame.ct.len() % 4 != 0 {
                frame.ct.push('=');
            }
        }
        frame
    }

    /// LIM-1: whether request bodies are read under a deadline.
    pub fn body_deadline(&self) -> bool {
        !self.on(Bug::HangOnLengthLie)
    }

    /// Fuzzer-only knobs: a crash on inputs the honest server refuses
    /// calmly. Panics on purpose; the connection task dies, the server lives.
    pub fn crash_on_envelope(&self, seq: u64, ct: &str) {
        if self.on(Bug::PanicOnEmptyCt) && ct.is_empty() {
            panic!("panic-on-empty-ct: ct is empty");
        }
        if self.on(Bug::PanicOnHugeSeq) && seq > (1u64 << 53) {
            panic!("panic-on-huge-seq: seq {seq} is above 2^53");
        }
    }
}

/// What a response sealer holds, for the knobs that seal by hand.
pub struct RawSealer {
    /// The response key (KS-2).
    pub key: SymmetricKey,
    /// The session id.
    pub sid: String,
    /// The seq of the call answered.
    pub request_seq: u64,
}

/// How the last frame of a stream is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// Honest: an empty frame with fin.
    Fin,
    /// No final frame at all.
    NoFin,
    /// Half of the final frame's event, then the end of the body.
    CutMidFrame,
}

/// The `low_order_points()` entry announced under `low-order-server-key`.
pub const LOW_ORDER_SERVER_POINT: &str = "order-8 point a";

impl ServerHandshakeHooks for Knobs {
    fn signed_payload(&self, transcript: &Transcript) -> String {
        if self.on(Bug::TranscriptFieldUnsigned) {
            transcript.render_without(Some(TranscriptField::ServerEncPub))
        } else {
            transcript.render()
        }
    }

    fn signature_hex(&self, signature: &[u8; 65]) -> String {
        let honest = crate::protocol::encoding::hex_encode_0x(signature);
        if self.on(Bug::SignatureHexUppercase) {
            format!("0x{}", honest[2..].to_ascii_uppercase())
        } else {
            honest
        }
    }

    fn sign(&self, identity: &AgentIdentity, payload: &[u8]) -> [u8; 65] {
        if self.on(Bug::SignatureRawV) {
            let mut sig = identity.sign_channel(payload);
            sig[64] = sig[64].wrapping_sub(27);
            return sig;
        }
        if self.on(Bug::WrongSigningKey) {
            self.impostor.sign_channel(payload)
        } else if self.on(Bug::WrongSignatureDomain) {
            identity.sign_digest(&domain_digest(OTHER_PREFIXES[0], payload))
        } else {
            identity.sign_channel(payload)
        }
    }

    fn refuse_low_order(&self) -> bool {
        !self.on(Bug::LowOrderAccepted)
    }

    fn announced_key(&self) -> Option<AnnouncedKey> {
        if !self.on(Bug::LowOrderServerKey) {
            return None;
        }
        // An order-8 point rather than all zeros: a client that only looks
        // for zero bytes in eS is caught too; only a check of the X25519
        // output (or a full low-order list) refuses it.
        low_order_points()
            .into_iter()
            .find(|(name, _)| *name == LOW_ORDER_SERVER_POINT)
            .map(|(_, point)| AnnouncedKey::low_order(point))
    }

    fn session_keys(&self, shared: &[u8; 32], transcript: &[u8]) -> SessionKeys {
        let keys = derive_session_keys(shared, transcript);
        if self.on(Bug::SameKeyBothDirections) {
            SessionKeys {
                s2c: keys.c2s,
                c2s: keys.c2s,
            }
        } else {
            keys
        }
    }
}

impl CallHooks for Knobs {
    fn expired(&self, now: i64, expires_at: i64) -> bool {
        !self.on(Bug::SessionsNeverExpire) && now >= expires_at
    }

    fn mark(&self, window: &mut ReplayWindow, seq: u64) -> bool {
        if self.on(Bug::ReplayCheckOff) {
            window.mark(seq);
            return true;
        }
        if self.on(Bug::SeqZeroAccepted) && seq == 0 {
            return true;
        }
        if self.on(Bug::WindowOffByOne)
            && seq != 0
            && window.highest().checked_sub(seq) == Some(REPLAY_WINDOW)
        {
            return true;
        }
        window.mark(seq)
    }

    fn mark_before_open(&self) -> bool {
        self.on(Bug::MarkBeforeOpen)
    }
}

/// The response key of one call (KS-2), bent by `session-key-for-responses`.
pub fn response_key(
    knobs: &Knobs,
    session: &crate::protocol::session::ServerSession,
    request_seq: u64,
) -> crate::protocol::keys::SymmetricKey {
    if knobs.on(Bug::SessionKeyForResponses) {
        session.keys().s2c
    } else {
        session.response_key(request_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = BTreeSet::new();
        for bug in Bug::ALL {
            assert_eq!(Bug::from_name(bug.name()), Some(*bug));
            assert!(seen.insert(bug.name()), "duplicate {}", bug.name());
            assert!(!bug.requirement().is_empty());
        }
        assert!(
            low_order_points()
                .iter()
                .any(|(name, _)| *name == LOW_ORDER_SERVER_POINT),
            "low-order-server-key names a point that exists"
        );
        assert_eq!(Bug::ALL.len(), 52);
    }
}
