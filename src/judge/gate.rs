//! What crosses the outer connection in clear: only ciphertext and routing
//! metadata, never the access key or inner plaintext (the blind relay).

use super::{Checked, Claim};

/// Secrets shorter than this are not searched for in the outer bytes: at
/// this length a chance match inside base64 becomes unlikely.
pub const MIN_SEARCHABLE_SECRET: usize = 12;

/// No access key (long enough to search for) and no canary appears in the
/// outer bytes `hay`.
pub fn check_blind(claim: &Claim, hay: &[u8], access_key: &str, canaries: &[String]) -> Checked {
    let contains =
        |needle: &[u8]| !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle);
    // A very short key turns up by chance inside base64 ciphertext and
    // sids, so it proves nothing either way; the random canaries still
    // carry the check.
    let key = access_key.as_bytes();
    if key.len() >= MIN_SEARCHABLE_SECRET && contains(key) {
        return Err(claim.miss(
            "the access key appeared in clear on the outer connection",
            "only ciphertext and routing metadata on the outer connection",
        ));
    }
    if canaries.iter().any(|c| contains(c.as_bytes())) {
        return Err(claim.miss(
            "inner plaintext (a canary header/body) appeared in clear on the outer connection",
            "only ciphertext and routing metadata on the outer connection",
        ));
    }
    Ok(())
}
