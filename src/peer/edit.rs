//! The one edit language: a step (honest action plus named edits) and the
//! one implementation that applies its edits. The network fuzzer's cases
//! and the scenario files both speak it, so a fuzzer finding is a scenario
//! step as it stands, and an edit means the same bytes on the wire in both.
//!
//! Steps describe the input, not its bytes, so they replay on any fresh
//! session (new sid, new keys). Applying an edit never panics: positions
//! wrap around the body, and raw JSON that serde cannot hold is spliced in
//! as text.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::RELAY_HEADER;
use crate::protocol::wire::InnerRequest;
use crate::transport::Target as Endpoint;

/// One step of a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum Step {
    /// `POST /secure/call`, sealed honestly and then mutated.
    Call(CallStep),
    /// Send the previous call's body again, byte for byte (a replay).
    Resend,
    /// Wait until the session's `expiresAt` has passed, then make an honest
    /// call on it (SES-1). Skipped, never judged, when the session expires
    /// later than the run's `--expiry-wait`.
    CallAfterExpiry,
    /// `POST /secure/session` with this body, as is.
    Handshake {
        /// The ClientHello text sent (usually a mutated honest hello).
        body: String,
    },
    /// A plaintext request that bypasses the channel.
    Plain {
        /// The method.
        method: String,
        /// The path; `{agent}` expands to the agent id.
        path: String,
        /// Whether the access key is sent as a bearer token.
        with_key: bool,
        /// The body text.
        body: String,
        /// Extra outer headers (the scenario suite's; placeholders expand).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
        /// An `Authorization` text sent instead of the key (wins over
        /// `with_key`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        authorization: Option<String>,
        /// Send (`true`) or omit (`false`) the relay marker; `None`: the
        /// run's choice.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        relay: Option<bool>,
    },
    /// `POST /secure/session` with an honest ClientHello edited field by
    /// field (no edit: the honest handshake).
    Hello(HelloStep),
    /// Send the envelope a call saved under this name again, byte for byte.
    ResendSaved {
        /// The name the call saved it under.
        envelope: String,
    },
    /// A call after expiry with the relay marker chosen: sent (`true`) or
    /// omitted (`false`).
    CallAfterExpiryRelay {
        /// Whether the relay marker is sent.
        relay: bool,
    },
    /// Verify the session's stored ServerHello against the pinned address,
    /// after a man in the middle edited one transcript field, or against
    /// the transcript without one field. Sends nothing.
    Verify {
        /// The transcript field edited: `encPub`, `sid`, `expiresAt`,
        /// `nonce`, `clientEncPub` or `agentAddress`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        edit: Option<String>,
        /// The transcript field left out of the signed payload.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        without: Option<String>,
    },
    /// This many honest handshakes; ephemeral keys, sids and signature `r`
    /// values must never repeat (HS-3).
    Freshness {
        /// How many handshakes (at least 2 are made).
        count: usize,
    },
    /// Wait, sending nothing.
    Wait(Wait),
    /// Honest handshakes past the target's session bound, to overflow it.
    Flood {
        /// How many handshakes beyond the bound.
        extra: usize,
    },
    /// Search every outer byte so far for the access key and the inner
    /// canaries. Sends nothing.
    Blind,
}

impl Step {
    /// Whether the network fuzzer generates and judges this step: a call
    /// without the suite's inner form, foreign seal, relay choice or saved
    /// name; a resend of the previous call; a call after expiry; a raw
    /// handshake body; a plaintext request with no headers of its own.
    pub fn is_fuzz_step(&self) -> bool {
        match self {
            Step::Call(c) => {
                !matches!(c.inner, Inner::Custom(_))
                    && c.seal_with.is_none()
                    && c.relay.is_none()
                    && c.save.is_none()
            }
            Step::Plain {
                headers,
                authorization,
                ..
            } => headers.is_empty() && authorization.is_none(),
            Step::Resend | Step::CallAfterExpiry | Step::Handshake { .. } => true,
            _ => false,
        }
    }

    /// Whether the step is one request the engine sends as it stands
    /// ([`crate::peer::Conversation::run`]); the others (verify, freshness,
    /// wait, flood, blind) are the suite's, built from its primitives.
    pub fn is_one_request(&self) -> bool {
        !matches!(
            self,
            Step::Verify { .. }
                | Step::Freshness { .. }
                | Step::Wait(_)
                | Step::Flood { .. }
                | Step::Blind
        )
    }
}

/// How long a `wait` step waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "until", rename_all = "kebab-case")]
pub enum Wait {
    /// This many seconds.
    Seconds {
        /// Seconds.
        secs: u64,
    },
    /// Until the session has expired.
    Expiry,
}

/// A handshake: the honest ClientHello with these edits, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloStep {
    /// The edits of the hello's fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edits: Vec<HelloEdit>,
    /// An honest handshake may take the run's shared session when
    /// handshakes are budgeted (its session only needs fresh seqs).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

/// One edit of the honest ClientHello's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "edit", rename_all = "kebab-case", deny_unknown_fields)]
pub enum HelloEdit {
    /// Replace a field's value with raw JSON text (text that is not JSON is
    /// set as a JSON string).
    Set {
        /// The field.
        field: String,
        /// Raw JSON.
        json: String,
    },
    /// Remove a field.
    Remove {
        /// The field.
        field: String,
    },
    /// Use the n-th low-order X25519 point (wrapping) as `encPub`.
    LowOrder {
        /// Which point.
        index: usize,
    },
}

/// Applies hello edits to the honest ClientHello's fields.
pub fn edit_hello(hello: &mut serde_json::Map<String, serde_json::Value>, edits: &[HelloEdit]) {
    for edit in edits {
        match edit {
            HelloEdit::Set { field, json } => {
                let value = serde_json::from_str(json)
                    .unwrap_or_else(|_| serde_json::Value::from(json.clone()));
                hello.insert(field.clone(), value);
            }
            HelloEdit::Remove { field } => {
                hello.remove(field);
            }
            HelloEdit::LowOrder { index } => {
                let points = crate::protocol::handshake::low_order_points();
                let (_, p) = points[index % points.len()];
                hello.insert(
                    "encPub".into(),
                    serde_json::Value::from(crate::protocol::encoding::b64url_encode(&p)),
                );
            }
        }
    }
}

/// How a call is built: the inner request, the seq, then mutations applied
/// in order (envelope fields, raw bytes, HTTP framing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallStep {
    /// What is sealed.
    pub inner: Inner,
    /// The seq sealed with; `None` takes the session's next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// A seq chosen relative to the session's calls so far (wins over
    /// `seq`), so the case replays on any fresh session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<SeqAt>,
    /// Envelope edits after sealing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub envelope: Vec<EnvelopeEdit>,
    /// Byte-level edits of the whole body, after the envelope edits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bytes: Vec<ByteEdit>,
    /// How the body is framed on the wire.
    #[serde(default, skip_serializing_if = "Framing::is_normal")]
    pub framing: Framing,
    /// Seal with the server-to-client key instead of client-to-server: a
    /// call in the wrong direction, which must not open (CALL-5).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wrong_direction: bool,
    /// Seal with this session's keys and sid, sent under the step's
    /// session (a foreign seal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal_with: Option<String>,
    /// Send (`true`) or omit (`false`) the relay marker; `None`: the run's
    /// choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<bool>,
    /// Save the sent envelope under this name for
    /// [`Step::ResendSaved`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save: Option<String>,
}

impl CallStep {
    /// `inner` sealed honestly with the session's next seq, no edit.
    pub fn honest(inner: Inner) -> Self {
        CallStep {
            inner,
            seq: None,
            at: None,
            envelope: Vec::new(),
            bytes: Vec::new(),
            framing: Framing::Normal,
            wrong_direction: false,
            seal_with: None,
            relay: None,
            save: None,
        }
    }
}

/// A seq relative to the calls already made on the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "seq", rename_all = "kebab-case")]
pub enum SeqAt {
    /// `by` above the highest seq used so far; later calls continue above it.
    Ahead {
        /// Distance above the highest used seq (at least 1).
        by: u64,
    },
    /// `by` below the highest seq used so far (0 when that would underflow).
    Behind {
        /// Distance below the highest used seq.
        by: u64,
    },
    /// The seq of the case's previous call, sealed again over this step's
    /// inner request (not a byte-for-byte resend).
    Same,
}

impl SeqAt {
    /// A short name for signatures.
    pub fn name(&self) -> &'static str {
        match self {
            SeqAt::Ahead { .. } => "seq-ahead",
            SeqAt::Behind { by } if *by < crate::protocol::REPLAY_WINDOW => "seq-in-window",
            SeqAt::Behind { .. } => "seq-too-old",
            SeqAt::Same => "seq-reuse",
        }
    }
}

/// The plaintext sealed into a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Inner {
    /// A well-formed InnerRequest.
    Request {
        /// Inner method.
        method: String,
        /// Inner path; `{agent}` expands to the agent id.
        path: String,
        /// Inner authorization.
        auth: Auth,
        /// Raw text of the inner `body` field (normally base64url).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
    },
    /// Arbitrary text sealed instead of an InnerRequest.
    Plaintext {
        /// The text.
        text: String,
    },
    /// An InnerRequest with every field chosen (the scenario suite's):
    /// placeholders expand in every text, not only the path.
    Custom(Box<InnerSpec>),
}

/// Every field of an inner request, for [`Inner::Custom`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InnerSpec {
    /// Inner method.
    pub method: String,
    /// Inner path.
    pub path: String,
    /// Inner authorization (a text's placeholders expand).
    pub auth: Auth,
    /// Inner headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Body text, base64url-encoded into the `body` field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Raw text placed in the `body` field as is (wins over `body`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_field: Option<String>,
    /// Inner `accept` (also sent as the outer `Accept`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept: Option<String>,
    /// Inner `contentType` (default: JSON when there is a body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// A unique canary goes into an `X-Canary` header and the body, for
    /// [`Step::Blind`] to search for.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub canary: bool,
    /// Seal this text instead of an InnerRequest (placeholders expand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext: Option<String>,
}

impl InnerSpec {
    /// The plaintext sealed: every text expanded by `expand`, the canary
    /// (when asked for) in an `X-Canary` header and as the body's secret.
    pub fn plaintext(
        &self,
        access_key: &str,
        expand: impl Fn(&str) -> String,
        canary: Option<&str>,
    ) -> Vec<u8> {
        if let Some(text) = &self.plaintext {
            return expand(text).into_bytes();
        }
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), expand(v)))
            .collect();
        let mut body_text = self.body.as_deref().map(&expand);
        if let Some(canary) = canary.filter(|_| self.canary) {
            headers.push(("X-Canary".into(), canary.to_owned()));
            body_text = Some(format!("{{\"secret\":\"{canary}\"}}"));
        }
        InnerRequest {
            method: self.method.clone(),
            path: expand(&self.path),
            authorization: match &self.auth {
                Auth::Key => Some(format!("Bearer {access_key}")),
                Auth::None => None,
                Auth::Text(t) => Some(expand(t)),
            },
            accept: self.accept.clone(),
            content_type: self
                .content_type
                .clone()
                .or_else(|| body_text.as_ref().map(|_| "application/json".to_string())),
            headers: (!headers.is_empty()).then_some(headers),
            body: self.body_field.clone().or_else(|| {
                body_text.map(|b| crate::protocol::encoding::b64url_encode(b.as_bytes()))
            }),
        }
        .to_json()
        .into_bytes()
    }
}

impl Inner {
    /// The inner `accept` a call also sends as its outer `Accept`.
    pub fn accept(&self) -> Option<&str> {
        match self {
            Inner::Custom(spec) => spec.accept.as_deref(),
            _ => None,
        }
    }

    /// The honest call to the demo app's run route: what a call after
    /// expiry seals, and the fuzzer's valid call.
    pub fn honest_run() -> Inner {
        Inner::Request {
            method: "POST".into(),
            path: "/agents/{agent}/run".into(),
            auth: Auth::Key,
            // base64url of `{"input":"fuzz"}`
            body: Some("eyJpbnB1dCI6ImZ1enoifQ".into()),
        }
    }

    /// `GET /agents/{agent}` with the key: the honest call a preflight
    /// makes on a target's first session.
    pub fn agent_card() -> Inner {
        Inner::Request {
            method: "GET".into(),
            path: "/agents/{agent}".into(),
            auth: Auth::Key,
            body: None,
        }
    }
}

/// The inner `authorization` value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Auth {
    /// `Bearer <access key>`.
    #[default]
    Key,
    /// Left out.
    None,
    /// This text.
    Text(String),
}

/// One edit of the sealed envelope's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "edit", rename_all = "kebab-case")]
pub enum EnvelopeEdit {
    /// Flip one bit of the first ciphertext byte.
    FlipCt,
    /// Flip one bit of the last tag byte.
    FlipTag,
    /// Replace a field's value with raw JSON text.
    Set {
        /// The field.
        field: String,
        /// Raw JSON.
        json: String,
        /// Whether the new value can never be honestly accepted.
        invalid: bool,
    },
    /// Remove a field.
    Remove {
        /// The field.
        field: String,
    },
    /// Append a second copy of a field with this raw JSON value.
    Duplicate {
        /// The field.
        field: String,
        /// Raw JSON.
        json: String,
    },
}

impl EnvelopeEdit {
    /// The envelope field this edit touches.
    pub fn field(&self) -> &str {
        match self {
            EnvelopeEdit::FlipCt => "ct",
            EnvelopeEdit::FlipTag => "tag",
            EnvelopeEdit::Set { field, .. }
            | EnvelopeEdit::Remove { field }
            | EnvelopeEdit::Duplicate { field, .. } => field,
        }
    }

    /// Whether, after this edit, an honest target must refuse the call.
    pub fn must_refuse(&self) -> bool {
        match self {
            EnvelopeEdit::FlipCt | EnvelopeEdit::FlipTag => true,
            EnvelopeEdit::Set { invalid, .. } => *invalid,
            EnvelopeEdit::Remove { field } => field != "v",
            EnvelopeEdit::Duplicate { .. } => false,
        }
    }
}

/// One edit of the raw body bytes; positions wrap around the body length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "edit", rename_all = "kebab-case")]
pub enum ByteEdit {
    /// Keep only the first `keep` bytes.
    Truncate {
        /// Bytes kept.
        keep: usize,
    },
    /// XOR one byte. Kept so old findings load; the generator emits `Set`,
    /// because a XOR's result depends on the session's random ciphertext.
    Xor {
        /// Position.
        at: usize,
        /// Mask (never 0).
        mask: u8,
    },
    /// Overwrite one byte with a fixed value: the same case yields the
    /// same byte at the position on any session.
    Set {
        /// Position.
        at: usize,
        /// The byte written.
        byte: u8,
    },
    /// Insert text.
    Insert {
        /// Position.
        at: usize,
        /// The text.
        text: String,
    },
}

/// How the HTTP request carrying a call is framed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "framing", rename_all = "kebab-case")]
pub enum Framing {
    /// Content-Length equal to the body, through the HTTP client.
    #[default]
    Normal,
    /// Content-Length larger than the bytes sent (the body never ends).
    LengthLie {
        /// Bytes promised but never sent.
        extra: usize,
    },
    /// Content-Length smaller than the body; the rest trails.
    LengthShort {
        /// Bytes left out of the count.
        short: usize,
    },
    /// Chunked transfer coding with chunks of this size.
    Chunked {
        /// Chunk size.
        size: usize,
    },
    /// Chunked, with a chunk size line that is not hex.
    ChunkedBadSize,
    /// Chunked without the final zero-length chunk.
    ChunkedUnterminated,
    /// Both Content-Length and chunked.
    LengthAndChunked,
}

impl Framing {
    /// Whether this is the ordinary framing.
    pub fn is_normal(&self) -> bool {
        *self == Framing::Normal
    }

    /// Whether the request never ends: the framing promises bytes that
    /// are never sent, so the target may fairly wait for them.
    pub fn leaves_request_incomplete(&self) -> bool {
        matches!(
            self,
            Framing::LengthLie { .. } | Framing::ChunkedUnterminated
        )
    }

    /// A short name for signatures.
    pub fn name(&self) -> &'static str {
        match self {
            Framing::Normal => "normal",
            Framing::LengthLie { .. } => "content-length-lie",
            Framing::LengthShort { .. } => "content-length-short",
            Framing::Chunked { .. } => "chunked",
            Framing::ChunkedBadSize => "chunked-bad-size",
            Framing::ChunkedUnterminated => "chunked-unterminated",
            Framing::LengthAndChunked => "length-and-chunked",
        }
    }
}

/// Applies envelope edits to the sealed JSON text.
pub fn edit_envelope(json: &str, edits: &[EnvelopeEdit]) -> Vec<u8> {
    let Ok(serde_json::Value::Object(mut obj)) = serde_json::from_str::<serde_json::Value>(json)
    else {
        return json.as_bytes().to_vec();
    };
    let mut duplicates = Vec::new();
    for edit in edits {
        match edit {
            EnvelopeEdit::FlipCt | EnvelopeEdit::FlipTag => {
                let ct = obj.get("ct").and_then(|v| v.as_str()).unwrap_or("");
                let flipped = super::seal::flip_bit(ct, matches!(edit, EnvelopeEdit::FlipTag));
                if flipped != ct {
                    obj.insert("ct".into(), flipped.into());
                }
            }
            EnvelopeEdit::Set { field, json, .. } => {
                // Raw JSON that serde cannot hold (a lone surrogate) is
                // spliced in as text below.
                match serde_json::from_str::<serde_json::Value>(json) {
                    Ok(v) if !json.contains("\\ud8") => {
                        obj.insert(field.clone(), v);
                    }
                    _ => {
                        obj.remove(field);
                        duplicates.push((field.clone(), json.clone()));
                    }
                }
            }
            EnvelopeEdit::Remove { field } => {
                obj.remove(field);
            }
            EnvelopeEdit::Duplicate { field, json } => {
                duplicates.push((field.clone(), json.clone()));
            }
        }
    }
    let mut text = serde_json::Value::Object(obj).to_string();
    for (field, json) in duplicates {
        text.pop();
        if !text.ends_with('{') {
            text.push(',');
        }
        text.push_str(&format!("{}:{}}}", serde_json::Value::from(field), json));
    }
    text.into_bytes()
}

/// Applies one byte edit; positions wrap around the body length.
pub fn apply_byte_edit(body: &mut Vec<u8>, edit: &ByteEdit) {
    let len = body.len();
    match edit {
        ByteEdit::Truncate { keep } => {
            if len > 0 {
                body.truncate(keep % len);
            }
        }
        ByteEdit::Xor { at, mask } => {
            if len > 0 {
                body[at % len] ^= mask.max(&1);
            }
        }
        ByteEdit::Set { at, byte } => {
            if len > 0 {
                body[at % len] = *byte;
            }
        }
        ByteEdit::Insert { at, text } => {
            let at = at % (len + 1);
            body.splice(at..at, text.bytes());
        }
    }
}

/// The raw HTTP/1.1 request that carries call `body` to `/secure/call` of
/// `target` in `framing` (with the relay marker when `relay`).
pub fn frame_request(target: &Endpoint, relay: bool, body: &[u8], framing: &Framing) -> Vec<u8> {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nConnection: close\r\n",
        target.join("/secure/call"),
        target.authority()
    );
    if relay {
        head.push_str(&format!("{RELAY_HEADER}: 1\r\n"));
    }
    let mut payload = Vec::new();
    if matches!(
        framing,
        Framing::Chunked { .. } | Framing::ChunkedBadSize | Framing::ChunkedUnterminated
    ) {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
    }
    match framing {
        Framing::Normal => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            payload.extend_from_slice(body);
        }
        Framing::LengthLie { extra } => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len() + extra));
            payload.extend_from_slice(body);
        }
        Framing::LengthShort { short } => {
            head.push_str(&format!(
                "Content-Length: {}\r\n\r\n",
                body.len().saturating_sub(*short)
            ));
            payload.extend_from_slice(body);
        }
        Framing::Chunked { size } => chunked(&mut payload, body, (*size).max(1)),
        Framing::LengthAndChunked => {
            head.push_str(&format!(
                "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
                body.len()
            ));
            chunked(&mut payload, body, 16);
        }
        Framing::ChunkedBadSize => {
            payload.extend_from_slice(b"zz\r\n");
            payload.extend_from_slice(body);
            payload.extend_from_slice(b"\r\n0\r\n\r\n");
        }
        Framing::ChunkedUnterminated => {
            payload.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
            payload.extend_from_slice(body);
            payload.extend_from_slice(b"\r\n");
        }
    }
    let mut raw = head.into_bytes();
    raw.extend_from_slice(&payload);
    raw
}

fn chunked(payload: &mut Vec<u8>, body: &[u8], size: usize) {
    for chunk in body.chunks(size) {
        payload.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        payload.extend_from_slice(chunk);
        payload.extend_from_slice(b"\r\n");
    }
    payload.extend_from_slice(b"0\r\n\r\n");
}

/// A seq relative to the session's calls: the counters [`SeqAt`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqCursor {
    /// The next fresh seq (the highest used is one below).
    pub next: u64,
    /// The seq of the latest call.
    pub last: u64,
}

impl Default for SeqCursor {
    fn default() -> Self {
        SeqCursor { next: 1, last: 0 }
    }
}

impl SeqCursor {
    /// The seq `at` names; `Ahead` moves the cursor past it so later calls
    /// continue above it.
    pub fn relative(&mut self, at: SeqAt) -> u64 {
        let highest = self.next - 1;
        let seq = match at {
            SeqAt::Ahead { by } => {
                let s = highest.saturating_add(by.max(1));
                self.next = s.saturating_add(1);
                s
            }
            SeqAt::Behind { by } => highest.saturating_sub(by),
            SeqAt::Same => self.last,
        };
        self.last = seq;
        seq
    }
}

/// The plaintext `inner` seals: an InnerRequest with its path expanded by
/// `expand` and `Auth::Key` as `Bearer <access_key>`, or the text as is.
pub fn inner_plaintext(
    inner: &Inner,
    access_key: &str,
    expand: impl Fn(&str) -> String,
) -> Vec<u8> {
    match inner {
        Inner::Plaintext { text } => text.as_bytes().to_vec(),
        Inner::Custom(spec) => {
            let canary = spec.canary.then(|| {
                use crate::rng::{RandomSource, SystemRandom};
                let mut b = [0u8; 12];
                SystemRandom.fill(&mut b);
                format!("canary-{}", hex::encode(b))
            });
            spec.plaintext(access_key, expand, canary.as_deref())
        }
        Inner::Request {
            method,
            path,
            auth,
            body,
        } => InnerRequest {
            method: method.clone(),
            path: expand(path),
            authorization: match auth {
                Auth::Key => Some(format!("Bearer {access_key}")),
                Auth::None => None,
                Auth::Text(t) => Some(t.clone()),
            },
            accept: None,
            content_type: body.as_ref().map(|_| "application/json".to_string()),
            headers: None,
            body: body.clone(),
        }
        .to_json()
        .into_bytes(),
    }
}

/// The head of a raw HTTP reply, read leniently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawReply {
    /// The status.
    pub status: u16,
    /// The content type.
    pub content_type: Option<String>,
    /// Everything after the head.
    pub body: Vec<u8>,
}

/// Reads the status, content type and body of a raw reply; `None` when
/// the bytes do not start with an HTTP status line.
pub fn parse_raw_reply(bytes: &[u8]) -> Option<RawReply> {
    let head_end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(bytes.len());
    let head = String::from_utf8_lossy(&bytes[..head_end]);
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())?;
    Some(RawReply {
        status,
        content_type: head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        }),
        body: bytes[(head_end + 4).min(bytes.len())..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_edits_reach_the_wire() {
        let json = r#"{"v":1,"sid":"s","seq":1,"ct":"AAAA"}"#;
        let dup = edit_envelope(
            json,
            &[EnvelopeEdit::Duplicate {
                field: "seq".into(),
                json: "2".into(),
            }],
        );
        let text = String::from_utf8(dup).unwrap();
        assert!(text.ends_with(r#","seq":2}"#), "{text}");
        let lone = edit_envelope(
            json,
            &[EnvelopeEdit::Set {
                field: "sid".into(),
                json: "\"\\ud800\"".into(),
                invalid: false,
            }],
        );
        assert!(String::from_utf8(lone)
            .unwrap()
            .contains(r#""sid":"\ud800""#));
        let gone = edit_envelope(json, &[EnvelopeEdit::Remove { field: "ct".into() }]);
        assert!(!String::from_utf8(gone).unwrap().contains("ct"));
    }

    #[test]
    fn byte_edits_wrap_and_never_panic() {
        let mut b = b"abc".to_vec();
        apply_byte_edit(&mut b, &ByteEdit::Xor { at: 4, mask: 1 });
        assert_eq!(b, b"acc");
        apply_byte_edit(&mut b, &ByteEdit::Truncate { keep: 5 });
        assert_eq!(b, b"ac");
        let mut empty = Vec::new();
        apply_byte_edit(&mut empty, &ByteEdit::Truncate { keep: 3 });
        apply_byte_edit(&mut empty, &ByteEdit::Xor { at: 3, mask: 9 });
        apply_byte_edit(
            &mut empty,
            &ByteEdit::Insert {
                at: 7,
                text: "x".into(),
            },
        );
        assert_eq!(empty, b"x");
    }
}
