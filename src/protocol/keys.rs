//! The key schedule and the AEAD (KS-1..KS-3): HKDF-SHA256 session keys,
//! per-call response keys, nonces from sequence numbers, and the AADs that
//! bind every frame to its session, call, direction and position.

use chacha20poly1305::aead::{Aead, AeadInOut, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};

use super::encoding::{b64url_decode, b64url_encode_into, B64Strictness};
use super::{DOMAIN, TAG_LEN};

/// A 32-byte symmetric key.
pub type SymmetricKey = [u8; 32];

/// The two directional keys of a session.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeys {
    /// Client to server: seals requests.
    pub c2s: SymmetricKey,
    /// Server to client: the root of every per-call response key.
    pub s2c: SymmetricKey,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(<redacted>)")
    }
}

fn hkdf32(ikm: &[u8], salt: Option<&[u8]>, info: &[u8]) -> SymmetricKey {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(salt, ikm)
        .expand(info, &mut out)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

/// `c2s` and `s2c` from the X25519 shared secret and the transcript (KS-1).
pub fn derive_session_keys(shared_secret: &[u8; 32], transcript: &[u8]) -> SessionKeys {
    let salt: [u8; 32] = Sha256::digest(transcript).into();
    SessionKeys {
        c2s: hkdf32(shared_secret, Some(&salt), b"osaurus-sc1:c2s"),
        s2c: hkdf32(shared_secret, Some(&salt), b"osaurus-sc1:s2c"),
    }
}

/// The per-call response key for request `request_seq` (KS-2).
pub fn response_key(s2c: &SymmetricKey, request_seq: u64) -> SymmetricKey {
    hkdf32(
        s2c,
        None,
        format!("{DOMAIN}:respkey:{request_seq}").as_bytes(),
    )
}

/// The 12-byte nonce: four zero bytes, then `seq` big-endian (KS-3).
pub fn nonce_for(seq: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&seq.to_be_bytes());
    n
}

/// `osaurus-sc1:req:<sid>:<seq>`.
pub fn request_aad(sid: &str, seq: u64) -> String {
    format!("{DOMAIN}:req:{sid}:{seq}")
}

/// `osaurus-sc1:resp:<sid>:<requestSeq>:<frameSeq>:<0|1>`.
pub fn response_aad(sid: &str, request_seq: u64, frame_seq: u64, fin: bool) -> String {
    format!(
        "{DOMAIN}:resp:{sid}:{request_seq}:{frame_seq}:{}",
        u8::from(fin)
    )
}

/// Seals `plaintext`; returns ciphertext || tag.
pub fn seal(key: &SymmetricKey, seq: u64, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    ChaCha20Poly1305::new(&Key::from(*key))
        .encrypt(
            &Nonce::from(nonce_for(seq)),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("ChaCha20-Poly1305 seals any plaintext below 256 GiB")
}

/// Seals and returns the base64url `ct` field.
pub fn seal_b64(key: &SymmetricKey, seq: u64, aad: &[u8], plaintext: &[u8]) -> String {
    let mut out = String::with_capacity(b64_len(plaintext.len() + TAG_LEN));
    seal_b64_into(key, seq, aad, plaintext, &mut out);
    out
}

/// The unpadded base64url length of `n` bytes.
pub fn b64_len(n: usize) -> usize {
    n / 3 * 4 + [0, 2, 3][n % 3]
}

/// Seals and appends the base64url `ct` to `out`, so a caller building a
/// JSON body writes the ciphertext straight into it.
pub fn seal_b64_into(key: &SymmetricKey, seq: u64, aad: &[u8], plaintext: &[u8], out: &mut String) {
    b64url_encode_into(&seal(key, seq, aad, plaintext), out);
}

/// Why a `ct` did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// `ct` is not base64url.
    #[error("ct is not base64url")]
    Encoding,
    /// Fewer than 16 bytes: no room for a tag.
    #[error("ct is {0} bytes, shorter than the 16-byte tag")]
    Short(usize),
    /// The tag does not verify.
    #[error("authentication tag does not verify")]
    Tag,
}

/// Opens ciphertext || tag.
pub fn open(key: &SymmetricKey, seq: u64, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    if sealed.len() < TAG_LEN {
        return Err(OpenError::Short(sealed.len()));
    }
    ChaCha20Poly1305::new(&Key::from(*key))
        .decrypt(&Nonce::from(nonce_for(seq)), Payload { msg: sealed, aad })
        .map_err(|_| OpenError::Tag)
}

/// Decodes a base64url `ct` (upstream strictness) and opens it.
pub fn open_b64(key: &SymmetricKey, seq: u64, aad: &[u8], ct: &str) -> Result<Vec<u8>, OpenError> {
    let sealed = b64url_decode(ct, B64Strictness::Upstream).map_err(|_| OpenError::Encoding)?;
    open(key, seq, aad, &sealed)
}

/// Opens ciphertext || tag held in `buf`: on success `buf` holds exactly
/// the plaintext; on failure it is left as it was (the tag is checked
/// before anything is decrypted), so the same sealed bytes can be tried
/// under another key.
pub fn open_in_place(
    key: &SymmetricKey,
    seq: u64,
    aad: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(), OpenError> {
    let len = buf.len();
    if len < TAG_LEN {
        return Err(OpenError::Short(len));
    }
    let (body, tag) = buf.split_at_mut(len - TAG_LEN);
    let tag = Tag::try_from(&*tag).map_err(|_| OpenError::Tag)?;
    ChaCha20Poly1305::new(&Key::from(*key))
        .decrypt_inout_detached(&Nonce::from(nonce_for(seq)), aad, body.into(), &tag)
        .map_err(|_| OpenError::Tag)?;
    buf.truncate(len - TAG_LEN);
    Ok(())
}

/// Canonical base64url (unpadded, URL alphabet) into
/// `buf`, replacing what it held; `false` when `ct` is anything else.
/// Validation and decoding are one pass, so a caller can read `ct` as raw
/// bytes and learn from this alone that it holds only base64url
/// characters.
pub fn decode_canonical_into(ct: &[u8], buf: &mut Vec<u8>) -> bool {
    buf.clear();
    base64_simd::URL_SAFE_NO_PAD.decode_append(ct, buf).is_ok()
}

/// base64url into a reused buffer, replacing what it held: the canonical
/// decoder straight into `buf`, the lenient one (which reads whatever the
/// canonical one accepts as the same bytes) only when that fails. The
/// same answers as [`open_b64`]'s decoding.
pub fn decode_b64_into(ct: &str, buf: &mut Vec<u8>) -> Result<(), OpenError> {
    if decode_canonical_into(ct.as_bytes(), buf) {
        return Ok(());
    }
    *buf = b64url_decode(ct, B64Strictness::Upstream).map_err(|_| OpenError::Encoding)?;
    Ok(())
}
