//! The relay's edits of traffic in the middle: a ServerHello changed
//! after signing or its signature re-encoded, a buffered frame's fin
//! dropped or cut, stream frames dropped, cut, swapped, doubled or sent
//! after fin. Each edit changes what the honest server sent; nothing here
//! answers in the server's place (that is [`super::fake`]).

use bytes::Bytes;

use crate::knobs::{cut_in_half, SwapFirstTwo};
use crate::protocol::encoding::b64url_encode;
use crate::protocol::wire::{Frame, ServerHello};

use super::relay::adversary_note;
use super::{Attack, State};

/// Applies the hello attack in force to `hello`: the body to send instead
/// of the server's, or `None` to send the server's own bytes.
pub(super) fn edit_hello(
    state: &State,
    slot: Option<usize>,
    hello: &mut ServerHello,
) -> Option<Vec<u8>> {
    let mut body = None;
    let mut tampered = true;
    if state.has(Attack::SwapServerKey) {
        let secret = crate::rng::RandomSource::bytes::<32>(&mut crate::rng::SystemRandom);
        let public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret));
        hello.enc_pub = b64url_encode(public.as_bytes());
    } else if state.has(Attack::EditSid) {
        let fresh = crate::rng::RandomSource::bytes::<16>(&mut crate::rng::SystemRandom);
        hello.sid = b64url_encode(&fresh);
    } else if state.has(Attack::EditExp) {
        hello.expires_at = hello.expires_at.saturating_add(3600);
    } else if state.has(Attack::HelloV2) {
        hello.v = 2;
    } else {
        tampered = false;
        // Re-encodings of the same signature: the hello still
        // proves the agent, so calls on it are not counted.
        if let Some((attack, sig)) = reencode_signature(state, &hello.signature) {
            hello.signature = sig;
            body = Some(hello.to_json().into_bytes());
            state.note(slot, adversary_note(attack));
        }
    }
    if tampered {
        for a in [
            Attack::SwapServerKey,
            Attack::EditSid,
            Attack::EditExp,
            Attack::HelloV2,
        ] {
            if state.has(a) {
                state.note(slot, adversary_note(a));
                break;
            }
        }
        body = Some(hello.to_json().into_bytes());
        state.observe(|o| o.tampered_hellos += 1);
        state.tampered_sids_insert(hello.sid.clone());
    }
    body
}

/// The signature of a ServerHello in another encoding, under the
/// `sig-v-01` and `sig-high-s` attacks.
fn reencode_signature(state: &State, signature: &str) -> Option<(Attack, String)> {
    let raw = hex::decode(signature.strip_prefix("0x")?).ok()?;
    let mut sig: [u8; 65] = raw.try_into().ok()?;
    if !matches!(sig[64], 27 | 28) {
        return None;
    }
    let attack = if state.has(Attack::SigV01) {
        sig[64] -= 27;
        Attack::SigV01
    } else if state.has(Attack::SigHighS) {
        // A signature with r or s out of range has no high-S twin: it
        // passes as it came, and the attack is not applied to it.
        sig = crate::protocol::identity::to_high_s(&sig).ok()?;
        Attack::SigHighS
    } else {
        return None;
    };
    Some((attack, format!("0x{}", hex::encode(sig))))
}

/// The buffered (one-frame) response after checks and edits.
pub(super) fn buffered_edit(
    state: &State,
    slot: Option<usize>,
    status: u16,
    body: Vec<u8>,
) -> Bytes {
    for a in [Attack::Reorder, Attack::Duplicate] {
        if state.has(a) {
            state.note(
                slot,
                format!("adversary ({a}): not applicable to a buffered answer (one frame)"),
            );
        }
    }
    if status != 200 {
        return Bytes::from(body);
    }
    match Frame::parse(&body) {
        Ok(mut frame) => {
            if !frame.is_fin() {
                state.observe(|o| o.responses_without_fin += 1);
                state.problem("a buffered response frame is not marked fin".into());
            }
            if state.has(Attack::DropFin) {
                state.note(slot, adversary_note(Attack::DropFin));
                frame.fin = None;
                return Bytes::from(frame.to_json());
            }
        }
        Err(e) => state.problem(format!("a buffered response is not a frame: {e}")),
    }
    if state.has(Attack::CutMidFrame) {
        state.note(slot, adversary_note(Attack::CutMidFrame));
        return Bytes::copy_from_slice(cut_in_half(&body));
    }
    Bytes::from(body)
}

/// The stream edits, applied event by event.
pub(super) struct StreamEdit {
    pub(super) passive: bool,
    drop_fin: bool,
    cut: bool,
    reorder: SwapFirstTwo<Bytes>,
    duplicate: bool,
    after_fin: bool,
    first: Option<Vec<u8>>,
    index: usize,
    pub(super) saw_fin: bool,
    last_seq: Option<u64>,
    pub(super) done: bool,
}

impl StreamEdit {
    /// The attacks that edit a stream on its way to the client.
    pub(super) const ATTACKS: [Attack; 5] = [
        Attack::DropFin,
        Attack::CutMidFrame,
        Attack::Reorder,
        Attack::Duplicate,
        Attack::FrameAfterFin,
    ];

    pub(super) fn new(state: &State) -> Self {
        let drop_fin = state.has(Attack::DropFin);
        let cut = state.has(Attack::CutMidFrame);
        let reorder = state.has(Attack::Reorder);
        let duplicate = state.has(Attack::Duplicate);
        let after_fin = state.has(Attack::FrameAfterFin);
        StreamEdit {
            passive: !(drop_fin || cut || reorder || duplicate || after_fin),
            drop_fin,
            cut,
            reorder: SwapFirstTwo::new(reorder),
            duplicate,
            after_fin,
            first: None,
            index: 0,
            saw_fin: false,
            last_seq: None,
            done: false,
        }
    }

    /// The passive checks of one event: a well-formed frame, rising frame
    /// seqs, nothing after fin.
    pub(super) fn check(&mut self, state: &State, event: &[u8]) {
        match Frame::parse(event) {
            Ok(frame) => {
                if self.saw_fin {
                    state.problem("a stream frame follows the fin frame".into());
                }
                if self.last_seq.is_some_and(|s| frame.seq <= s) {
                    state.problem(format!("stream frame seq {} does not rise", frame.seq));
                }
                self.last_seq = Some(frame.seq);
                self.saw_fin |= frame.is_fin();
            }
            Err(e) => state.problem(format!("a stream event is not a frame: {e}")),
        }
    }

    pub(super) fn apply(&mut self, event: Vec<u8>) -> Vec<Bytes> {
        if self.passive || self.done {
            return Vec::new();
        }
        let index = self.index;
        self.index += 1;
        let fin = Frame::parse(&event).is_ok_and(|f| f.is_fin());
        let encoded = encode(&event);
        let mut out = Vec::new();
        if index == 0 {
            self.first = Some(event.clone());
        }
        if fin && self.drop_fin {
            self.done = true;
            return out;
        }
        if fin && self.cut {
            out.push(Bytes::copy_from_slice(cut_in_half(&encoded)));
            self.done = true;
            return out;
        }
        out.extend(self.reorder.pass(encoded, !fin));
        if out.is_empty() {
            return out;
        }
        if self.duplicate && index == 0 {
            out.push(encode(&event));
        }
        if fin && self.after_fin {
            if let Some(first) = &self.first {
                out.push(encode(first));
            }
        }
        out
    }

    pub(super) fn flush(&mut self) -> Vec<Bytes> {
        self.reorder.flush().into_iter().collect()
    }
}

fn encode(event: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(event.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(event);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}
