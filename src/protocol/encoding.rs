//! base64url and `0x` hex, with the decoder strictness made explicit.

use thiserror::Error;

/// How strict a base64url decoder is.
///
/// [`B64Strictness::Canonical`] accepts exactly what the protocol writes
/// (URL-safe alphabet, no padding, zero trailing bits).
/// [`B64Strictness::Upstream`] accepts what the Osaurus app's decoder
/// accepts: either alphabet (mixed too), optional `=` padding, any length
/// but `1 (mod 4)`; the empty string decodes to nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum B64Strictness {
    /// Only the canonical unpadded URL-safe form.
    Canonical,
    /// The lenient form the upstream decoders accept (ENC-1).
    Upstream,
}

/// A string that is not base64url under the chosen strictness.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EncodingError {
    /// Not valid base64url.
    #[error("not valid base64url ({strictness:?}): {reason}")]
    Base64 {
        /// The strictness that refused it.
        strictness: B64Strictness,
        /// Why.
        reason: String,
    },
    /// Not valid hex.
    #[error("not valid hex: {0}")]
    Hex(String),
}

/// Encodes bytes as unpadded base64url (ENC-1).
pub fn b64url_encode(bytes: &[u8]) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(bytes)
}

/// Appends the unpadded base64url of `bytes` to `out`.
pub fn b64url_encode_into(bytes: &[u8], out: &mut String) {
    base64_simd::URL_SAFE_NO_PAD.encode_append(bytes, out);
}

/// Decodes base64url under the given strictness.
pub fn b64url_decode(text: &str, strictness: B64Strictness) -> Result<Vec<u8>, EncodingError> {
    let fail = |reason: &str| EncodingError::Base64 {
        strictness,
        reason: reason.to_string(),
    };
    match strictness {
        B64Strictness::Canonical => base64_simd::URL_SAFE_NO_PAD
            .decode_to_vec(text.as_bytes())
            .map_err(|_| fail("expected unpadded URL-safe base64 with zero trailing bits")),
        B64Strictness::Upstream => {
            // Whatever the canonical decoder accepts, the lenient one reads
            // as the same bytes; try it first and skip the rewrite pass.
            if let Ok(bytes) = base64_simd::URL_SAFE_NO_PAD.decode_to_vec(text.as_bytes()) {
                return Ok(bytes);
            }
            let mut standard: Vec<u8> = text
                .bytes()
                .map(|b| match b {
                    b'-' => b'+',
                    b'_' => b'/',
                    other => other,
                })
                .collect();
            while !standard.len().is_multiple_of(4) {
                standard.push(b'=');
            }
            base64_simd::STANDARD
                .decode_to_vec(&standard)
                .map_err(|_| fail("not base64 in either alphabet"))
        }
    }
}

/// Encodes bytes as `0x` + lowercase hex (ENC-2).
pub fn hex_encode_0x(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("0x");
    s.push_str(&hex::encode(bytes));
    s
}

/// Decodes hex, stripping an optional lowercase `0x` prefix (ENC-2).
///
/// Like the upstream client, `0X` is not a prefix and makes decoding fail.
pub fn hex_decode_0x(text: &str) -> Result<Vec<u8>, EncodingError> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    hex::decode(digits).map_err(|e| EncodingError::Hex(e.to_string()))
}

/// The one bit-flip fault of every side (vectors, scenarios, fuzz edits):
/// base64url `text` decoded as upstream reads it, the lowest bit of byte
/// `at` flipped (counted from the end when `from_end`), written back
/// canonically. `None` when the text does not decode or has no such byte.
pub fn flip_b64url_bit(text: &str, at: usize, from_end: bool) -> Option<String> {
    let mut raw = b64url_decode(text, B64Strictness::Upstream).ok()?;
    let i = if from_end {
        raw.len().checked_sub(1 + at)?
    } else {
        at
    };
    *raw.get_mut(i)? ^= 0x01;
    Some(b64url_encode(&raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_refuses_padding_and_standard_alphabet() {
        assert_eq!(
            b64url_decode("AA", B64Strictness::Canonical).unwrap(),
            vec![0]
        );
        assert!(b64url_decode("AA==", B64Strictness::Canonical).is_err());
        assert!(b64url_decode("+/8", B64Strictness::Canonical).is_err());
        assert!(
            b64url_decode("AB", B64Strictness::Canonical).is_err(),
            "non-zero trailing bits"
        );
    }

    #[test]
    fn upstream_accepts_padding_and_both_alphabets() {
        assert_eq!(
            b64url_decode("AA==", B64Strictness::Upstream).unwrap(),
            vec![0]
        );
        assert_eq!(
            b64url_decode("-_8", B64Strictness::Upstream).unwrap(),
            b64url_decode("+/8", B64Strictness::Upstream).unwrap()
        );
        assert!(b64url_decode("A", B64Strictness::Upstream).is_err());
        assert!(b64url_decode("AA A", B64Strictness::Upstream).is_err());
        assert_eq!(
            b64url_decode("", B64Strictness::Upstream).unwrap(),
            Vec::<u8>::new()
        );
    }

    #[test]
    fn hex_prefix_rules() {
        assert_eq!(hex_decode_0x("0x0aff").unwrap(), vec![0x0a, 0xff]);
        assert_eq!(hex_decode_0x("0AFF").unwrap(), vec![0x0a, 0xff]);
        assert!(hex_decode_0x("0X0aff").is_err());
        assert_eq!(hex_encode_0x(&[0xab]), "0xab");
    }
}
