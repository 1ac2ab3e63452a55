//! Sealed calls with any edit of the envelope, and the three ways to send
//! one: buffered ([`super::Target::send`]), streamed
//! ([`super::Target::send_streaming`]) or as raw bytes
//! ([`super::Target::send_raw`]).

use serde_json::{Map, Value};

use crate::protocol::encoding::flip_b64url_bit;
use crate::protocol::keys::{request_aad, seal_b64, SymmetricKey};
use crate::protocol::VERSION;

/// `ct` for `plaintext` sealed under `key` as request `seq` of session
/// `sid` (the sid goes into the AAD only).
pub fn sealed_ct(key: &SymmetricKey, sid: &str, seq: u64, plaintext: &[u8]) -> String {
    seal_b64(key, seq, request_aad(sid, seq).as_bytes(), plaintext)
}

/// `ct` with one bit flipped: in the first byte, or in the tag's last
/// byte when `in_tag`. A `ct` that is not base64url is returned as it is.
pub fn flip_bit(ct: &str, in_tag: bool) -> String {
    flip_b64url_bit(ct, 0, in_tag).unwrap_or_else(|| ct.to_owned())
}

/// The envelope `{"v","sid","seq","ct"}` as a JSON object, bent by `edit`,
/// written out.
pub fn envelope(
    sid: &str,
    seq: u64,
    ct: String,
    edit: impl FnOnce(&mut Map<String, Value>),
) -> Vec<u8> {
    let mut env = Map::new();
    env.insert("v".into(), Value::from(VERSION));
    env.insert("sid".into(), Value::from(sid));
    env.insert("seq".into(), Value::from(seq));
    env.insert("ct".into(), Value::from(ct));
    edit(&mut env);
    Value::Object(env).to_string().into_bytes()
}
