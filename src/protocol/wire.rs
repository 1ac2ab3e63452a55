//! The protocol's JSON messages: exact field names, strict typed parsing
//! that names the failing field, bounded sizes, unknown fields ignored,
//! and encoders that reproduce upstream's bytes (ENC-3, ENC-4).

use serde_json::{Map, Value};

use super::error::WireError;
use super::json::{push_raw_string, ObjectWriter, SlashStyle};

/// Largest ClientHello the core will parse (the server's 64 KiB body limit).
pub const MAX_HELLO_BYTES: usize = 64 * 1024;
/// Largest CallRequest the core will parse (the server's 32 MiB body limit).
pub const MAX_CALL_BYTES: usize = 32 * 1024 * 1024;
/// Largest single response frame the core will parse.
pub const MAX_FRAME_BYTES: usize = 48 * 1024 * 1024;

/// `POST /secure/session` request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// Protocol version; must be 1.
    pub v: i64,
    /// The pinned agent address (sent lowercased).
    pub agent_address: String,
    /// base64url of the client's ephemeral X25519 public key, as sent.
    pub enc_pub: String,
    /// base64url of 16 random bytes, as sent.
    pub nonce: String,
}

/// `POST /secure/session` success body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHello {
    /// Protocol version; must be 1.
    pub v: i64,
    /// Session id (base64url of 16 bytes).
    pub sid: String,
    /// base64url of the server's ephemeral X25519 public key.
    pub enc_pub: String,
    /// Unix seconds at which the session ends.
    pub expires_at: i64,
    /// `0x` + 130 hex: r || s || v over the transcript.
    pub signature: String,
}

/// `POST /secure/call` request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRequest {
    /// Protocol version; must be 1.
    pub v: i64,
    /// Session id.
    pub sid: String,
    /// Request sequence number (1, 2, 3…).
    pub seq: u64,
    /// base64url(ciphertext || tag) of the InnerRequest.
    pub ct: String,
}

/// One response frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Frame sequence number within the call (0, 1, 2…).
    pub seq: u64,
    /// base64url(ciphertext || tag).
    pub ct: String,
    /// `Some(true)` on the last frame; absent otherwise on the wire.
    pub fin: Option<bool>,
}

/// A parsed frame whose `ct` may borrow from the bytes it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameView<'a> {
    /// Frame sequence number within the call.
    pub seq: u64,
    /// base64url(ciphertext || tag).
    pub ct: std::borrow::Cow<'a, str>,
    /// `Some(true)` on the last frame.
    pub fin: Option<bool>,
}

impl FrameView<'_> {
    /// Whether this frame claims to be the last.
    pub fn is_fin(&self) -> bool {
        self.fin == Some(true)
    }
}

/// A frame read by its shape alone: the three fields of
/// `{"seq":N,"ct":"…"}` or `{"seq":N,"ct":"…","fin":true}`, with `ct` the
/// bytes between its quotes, unchecked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameShape<'a> {
    /// Frame sequence number within the call.
    pub seq: u64,
    /// The bytes between the quotes of `ct`, as they are.
    pub ct: &'a [u8],
    /// `Some(true)` when the frame ends in `,"fin":true`.
    pub fin: Option<bool>,
}

/// The shape [`Frame::to_json`] writes (seq in plain decimal, no space, no
/// other key), without looking inside `ct`.
fn canonical_shape(bytes: &[u8]) -> Option<FrameShape<'_>> {
    if bytes.len() > MAX_FRAME_BYTES {
        return None;
    }
    let rest = bytes.strip_prefix(b"{\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 || (digits > 1 && rest[0] == b'0') {
        return None;
    }
    let seq: u64 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let rest = rest[digits..].strip_prefix(b",\"ct\":\"")?;
    let (ct, fin) = if let Some(ct) = rest.strip_suffix(b"\",\"fin\":true}") {
        (ct, Some(true))
    } else {
        (rest.strip_suffix(b"\"}")?, None)
    };
    Some(FrameShape { seq, ct, fin })
}

/// The canonical shape with a `ct` that JSON reads as itself (ASCII, no
/// quote, backslash or control byte): exactly the frames for which the
/// full parser gives the same three fields. Anything else is left to the
/// full parser.
fn canonical_frame(bytes: &[u8]) -> Option<FrameView<'_>> {
    let FrameShape { seq, ct, fin } = canonical_shape(bytes)?;
    // One branch-free pass the compiler vectorises: a large `ct` costs a
    // fraction of its decoding.
    let odd = ct.chunks(64).fold(0u8, |acc, chunk| {
        acc | chunk.iter().fold(0u8, |a, &b| {
            a | u8::from(b == b'"') | u8::from(b == b'\\') | u8::from(b < 0x20) | (b & 0x80)
        })
    });
    if odd != 0 {
        return None;
    }
    let ct = std::str::from_utf8(ct).ok()?;
    Some(FrameView {
        seq,
        ct: std::borrow::Cow::Borrowed(ct),
        fin,
    })
}

impl Frame {
    /// Whether this frame claims to be the last.
    pub fn is_fin(&self) -> bool {
        self.fin == Some(true)
    }
}

/// The plaintext of a call: the HTTP request the channel carries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InnerRequest {
    /// HTTP method.
    pub method: String,
    /// Path with optional query; must start with `/`.
    pub path: String,
    /// Full `Authorization` value.
    pub authorization: Option<String>,
    /// `Accept` value.
    pub accept: Option<String>,
    /// `Content-Type` value.
    pub content_type: Option<String>,
    /// Extra headers, in the order given.
    pub headers: Option<Vec<(String, String)>>,
    /// base64url of the body, as sent (decoding is the server's policy).
    pub body: Option<String>,
}

/// The plaintext of a buffered response frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InnerResponse {
    /// The real HTTP status.
    pub status: i64,
    /// Inner `Content-Type`.
    pub content_type: Option<String>,
    /// base64url of the body.
    pub body: Option<String>,
}

/// The `{"error":{"code","message","type"}}` shape (secure-call errors, 426).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodedErrorBody {
    /// `error.code`, when present.
    pub code: Option<String>,
    /// `error.message`.
    pub message: Option<String>,
    /// `error.type`.
    pub kind: Option<String>,
}

/// The `{"error":"…"}` shape of handshake refusals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainErrorBody {
    /// The error text.
    pub error: String,
}

struct Fields<'a> {
    what: &'static str,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn get(&self, field: &'static str) -> Result<&'a Value, WireError> {
        self.map.get(field).ok_or(WireError::Missing {
            what: self.what,
            field,
        })
    }
    fn wrong(&self, field: &'static str, expected: &'static str) -> WireError {
        WireError::WrongType {
            what: self.what,
            field,
            expected,
        }
    }
    fn string(&self, field: &'static str) -> Result<String, WireError> {
        self.get(field)?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.wrong(field, "a string"))
    }
    fn opt_string(&self, field: &'static str) -> Result<Option<String>, WireError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.wrong(field, "a string")),
        }
    }
    fn int(&self, field: &'static str) -> Result<i64, WireError> {
        self.get(field)?
            .as_i64()
            .ok_or_else(|| self.wrong(field, "an integer"))
    }
    fn u64(&self, field: &'static str) -> Result<u64, WireError> {
        self.get(field)?
            .as_u64()
            .ok_or_else(|| self.wrong(field, "an integer in 0..=2^64-1"))
    }
    fn opt_bool(&self, field: &'static str) -> Result<Option<bool>, WireError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.wrong(field, "a boolean")),
        }
    }
}

fn parse_object(
    what: &'static str,
    bytes: &[u8],
    limit: usize,
) -> Result<Map<String, Value>, WireError> {
    if bytes.len() > limit {
        return Err(WireError::TooLarge {
            what,
            len: bytes.len(),
            limit,
        });
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(WireError::NotJson {
            what,
            reason: "the top level is not an object".into(),
        }),
        Err(e) => Err(WireError::NotJson {
            what,
            reason: e.to_string(),
        }),
    }
}

impl ClientHello {
    /// Parses a ClientHello body.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let map = parse_object("ClientHello", bytes, MAX_HELLO_BYTES)?;
        let f = Fields {
            what: "ClientHello",
            map: &map,
        };
        Ok(ClientHello {
            v: f.int("v")?,
            agent_address: f.string("agentAddress")?,
            enc_pub: f.string("encPub")?,
            nonce: f.string("nonce")?,
        })
    }

    /// Encodes as the upstream client does (declaration order, `\/`).
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(160);
        let mut w = ObjectWriter::new(&mut out, SlashStyle::Plain);
        w.int("v", self.v)
            .string("agentAddress", &self.agent_address)
            .string("encPub", &self.enc_pub)
            .string("nonce", &self.nonce);
        w.finish();
        out
    }
}

impl ServerHello {
    /// Parses a ServerHello body.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let map = parse_object("ServerHello", bytes, MAX_HELLO_BYTES)?;
        let f = Fields {
            what: "ServerHello",
            map: &map,
        };
        Ok(ServerHello {
            v: f.int("v")?,
            sid: f.string("sid")?,
            enc_pub: f.string("encPub")?,
            expires_at: f.int("expiresAt")?,
            signature: f.string("signature")?,
        })
    }

    /// Encodes with sorted keys and unescaped slashes, as upstream (ENC-4).
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(256);
        let mut w = ObjectWriter::new(&mut out, SlashStyle::Plain);
        w.string("encPub", &self.enc_pub)
            .int("expiresAt", self.expires_at)
            .string("sid", &self.sid)
            .string("signature", &self.signature)
            .int("v", self.v);
        w.finish();
        out
    }
}

impl CallRequest {
    /// Parses a CallRequest body (CALL-2's first check).
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let map = parse_object("CallRequest", bytes, MAX_CALL_BYTES)?;
        let f = Fields {
            what: "CallRequest",
            map: &map,
        };
        Ok(CallRequest {
            v: f.int("v")?,
            sid: f.string("sid")?,
            seq: f.u64("seq")?,
            ct: f.string("ct")?,
        })
    }

    /// The JSON [`CallRequest::to_json`] would write for this `v`, `sid`
    /// and `seq`, with the `ct` string's contents appended by `write_ct`,
    /// which must write base64url only. Saves the intermediate `ct` string
    /// and its copy on the seal path.
    pub fn json_with_ct(
        v: i64,
        sid: &str,
        seq: u64,
        ct_len: usize,
        write_ct: impl FnOnce(&mut String),
    ) -> String {
        let mut out = String::with_capacity(ct_len + sid.len() + 48);
        let mut w = ObjectWriter::new(&mut out, SlashStyle::Plain);
        w.int("v", v)
            .string("sid", sid)
            .int("seq", seq)
            .raw_json("ct", "\"");
        write_ct(&mut out);
        out.push_str("\"}");
        out
    }

    /// Encodes in declaration order.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.ct.len() + self.sid.len() + 48);
        let mut w = ObjectWriter::new(&mut out, SlashStyle::Plain);
        w.int("v", self.v)
            .string("sid", &self.sid)
            .int("seq", self.seq)
            // ct is base64url: one copy instead of a per-char escape scan.
            .raw_string("ct", &self.ct);
        w.finish();
        out
    }
}

impl Frame {
    /// Parses one frame.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let map = parse_object("Frame", bytes, MAX_FRAME_BYTES)?;
        let f = Fields {
            what: "Frame",
            map: &map,
        };
        Ok(Frame {
            seq: f.u64("seq")?,
            ct: f.string("ct")?,
            fin: f.opt_bool("fin")?,
        })
    }

    /// Parses one frame with the same answers as [`Frame::parse`], but
    /// borrows `ct` from `bytes` when they have exactly the shape
    /// [`Frame::to_json`] writes, so a reader of large frames copies the
    /// ciphertext text zero times; any other shape takes the full parser.
    pub fn parse_view(bytes: &[u8]) -> Result<FrameView<'_>, WireError> {
        if let Some(view) = canonical_frame(bytes) {
            return Ok(view);
        }
        let f = Frame::parse(bytes)?;
        Ok(FrameView {
            seq: f.seq,
            ct: std::borrow::Cow::Owned(f.ct),
            fin: f.fin,
        })
    }

    /// The frame's fields when `bytes` have exactly the shape
    /// [`Frame::to_json`] writes, without looking inside `ct`. They are
    /// the fields [`Frame::parse`] gives whenever `ct` holds only bytes
    /// JSON reads as themselves: a caller that goes on to decode `ct` as
    /// canonical base64url checks that in the same pass, and takes
    /// [`Frame::parse_view`] when decoding fails.
    pub fn parse_shape(bytes: &[u8]) -> Option<FrameShape<'_>> {
        canonical_shape(bytes)
    }

    /// Encodes as `{"seq":N,"ct":"…"}` or `{"seq":N,"ct":"…","fin":true}`.
    /// `ct` is base64url and needs no escaping, so it is copied once.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.ct.len() + 40);
        self.write_json(&mut out);
        out
    }

    /// Appends the frame's JSON to `out`.
    pub fn write_json(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = write!(out, "{{\"seq\":{},\"ct\":", self.seq);
        push_raw_string(out, &self.ct);
        match self.fin {
            Some(true) => out.push_str(",\"fin\":true}"),
            Some(false) => out.push_str(",\"fin\":false}"),
            None => out.push('}'),
        }
    }
}

impl InnerRequest {
    /// Parses an inner request: `method` and `path` are required.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let map = parse_object("InnerRequest", bytes, MAX_CALL_BYTES)?;
        let f = Fields {
            what: "InnerRequest",
            map: &map,
        };
        let headers = match map.get("headers") {
            None | Some(Value::Null) => None,
            Some(Value::Object(h)) => {
                let mut out = Vec::with_capacity(h.len());
                for (k, v) in h {
                    let v = v
                        .as_str()
                        .ok_or_else(|| f.wrong("headers", "an object of strings"))?;
                    out.push((k.clone(), v.to_owned()));
                }
                Some(out)
            }
            Some(_) => return Err(f.wrong("headers", "an object of strings")),
        };
        Ok(InnerRequest {
            method: f.string("method")?,
            path: f.string("path")?,
            authorization: f.opt_string("authorization")?,
            accept: f.opt_string("accept")?,
            content_type: f.opt_string("contentType")?,
            headers,
            body: f.opt_string("body")?,
        })
    }

    /// Encodes as a plain Swift encoder does: declaration order, absent
    /// fields omitted, `/` escaped.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(128 + self.body.as_ref().map_or(0, String::len));
        let mut w = ObjectWriter::new(&mut out, SlashStyle::Plain);
        w.string("method", &self.method)
            .string("path", &self.path)
            .opt_string("authorization", self.authorization.as_deref())
            .opt_string("accept", self.accept.as_deref())
            .opt_string("contentType", self.content_type.as_deref());
        if let Some(headers) = &self.headers {
            let mut h = String::new();
            let mut hw = ObjectWriter::new(&mut h, SlashStyle::Plain);
            for (k, v) in headers {
                hw.string(k, v);
            }
            hw.finish();
            w.raw_json("headers", &h);
        }
        if let Some(body) = &self.body {
            w.raw_string("body", body);
        }
        w.finish();
        out
    }
}

impl InnerResponse {
    /// Parses an inner response: `status` is required.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let map = parse_object("InnerResponse", bytes, MAX_FRAME_BYTES)?;
        let f = Fields {
            what: "InnerResponse",
            map: &map,
        };
        Ok(InnerResponse {
            status: f.int("status")?,
            content_type: f.opt_string("contentType")?,
            body: f.opt_string("body")?,
        })
    }

    /// Encodes as upstream's plain encoder: `status, contentType, body`, `\/`.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(64 + self.body.as_ref().map_or(0, String::len));
        let mut w = ObjectWriter::new(&mut out, SlashStyle::Plain);
        w.int("status", self.status)
            .opt_string("contentType", self.content_type.as_deref());
        if let Some(body) = &self.body {
            w.raw_string("body", body);
        }
        w.finish();
        out
    }
}

impl CodedErrorBody {
    /// Parses `{"error":{…}}` with an object under `error`.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let map = parse_object("error body", bytes, MAX_HELLO_BYTES)?;
        let inner = match map.get("error") {
            Some(Value::Object(o)) => o,
            Some(_) => {
                return Err(WireError::WrongType {
                    what: "error body",
                    field: "error",
                    expected: "an object",
                })
            }
            None => {
                return Err(WireError::Missing {
                    what: "error body",
                    field: "error",
                })
            }
        };
        let f = Fields {
            what: "error body",
            map: inner,
        };
        Ok(CodedErrorBody {
            code: f.opt_string("code")?,
            message: f.opt_string("message")?,
            kind: f.opt_string("type")?,
        })
    }
}

impl PlainErrorBody {
    /// Parses `{"error":"…"}`.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let map = parse_object("error body", bytes, MAX_HELLO_BYTES)?;
        let f = Fields {
            what: "error body",
            map: &map,
        };
        Ok(PlainErrorBody {
            error: f.string("error")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_request_names_the_bad_field() {
        let e = CallRequest::parse(br#"{"v":1,"sid":"a","seq":-1,"ct":"x"}"#).unwrap_err();
        assert!(
            matches!(e, WireError::WrongType { field: "seq", .. }),
            "{e}"
        );
        let e = CallRequest::parse(br#"{"v":1,"sid":"a","seq":18446744073709551616,"ct":"x"}"#)
            .unwrap_err();
        assert!(
            matches!(e, WireError::WrongType { field: "seq", .. }),
            "{e}"
        );
        let ok = CallRequest::parse(
            br#"{"v":1,"sid":"a","seq":18446744073709551615,"ct":"x","extra":[1]}"#,
        )
        .unwrap();
        assert_eq!(ok.seq, u64::MAX);
        let e = CallRequest::parse(br#"{"v":1,"seq":1,"ct":"x"}"#).unwrap_err();
        assert_eq!(
            e,
            WireError::Missing {
                what: "CallRequest",
                field: "sid"
            }
        );
    }

    #[test]
    fn frame_round_trip_and_fin_omitted() {
        let f = Frame {
            seq: 3,
            ct: "abc".into(),
            fin: None,
        };
        assert_eq!(f.to_json(), r#"{"seq":3,"ct":"abc"}"#);
        assert_eq!(Frame::parse(f.to_json().as_bytes()).unwrap(), f);
        let g = Frame {
            seq: 0,
            ct: "x".into(),
            fin: Some(true),
        };
        assert_eq!(g.to_json(), r#"{"seq":0,"ct":"x","fin":true}"#);
    }

    #[test]
    fn oversized_is_refused_before_parsing() {
        let big = vec![b' '; MAX_HELLO_BYTES + 1];
        assert!(matches!(
            ClientHello::parse(&big),
            Err(WireError::TooLarge { .. })
        ));
    }
}
