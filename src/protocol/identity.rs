//! Agent identity: Keccak-256, the channel signing domain, recoverable
//! secp256k1 signatures and EIP-55 addresses (ID-1..ID-4).

use std::fmt;

use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use k256::elliptic_curve::scalar::IsHigh;
use sha3::{Digest, Keccak256};

use super::encoding::hex_decode_0x;
use super::error::SignatureError;

/// The signing-domain prefix of channel signatures (ID-2).
pub const CHANNEL_PREFIX: &str = "Osaurus Secure Channel";

/// The other Osaurus signing domains; a signature under any of them must
/// not verify as a channel signature.
pub const OTHER_PREFIXES: [&str; 5] = [
    "Osaurus Signed Message",
    "Osaurus Signed Access",
    "Osaurus Signed Pairing",
    "Osaurus Signed Pairing Server",
    "Osaurus Signed Invite",
];

/// Keccak-256 (the original padding, not SHA3-256).
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// The digest signed under a domain prefix:
/// `keccak256("\x19" + prefix + ":\n" + decimal(len) + payload)`.
pub fn domain_digest(prefix: &str, payload: &[u8]) -> [u8; 32] {
    let mut h = Keccak256::new();
    h.update(b"\x19");
    h.update(prefix.as_bytes());
    h.update(b":\n");
    h.update(payload.len().to_string().as_bytes());
    h.update(payload);
    h.finalize().into()
}

/// The channel digest of a transcript (ID-2).
pub fn channel_digest(payload: &[u8]) -> [u8; 32] {
    domain_digest(CHANNEL_PREFIX, payload)
}

/// A 20-byte agent address. Compares by bytes, so case never matters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// The address of a secp256k1 public key (ID-1).
    pub fn from_verifying_key(key: &VerifyingKey) -> Self {
        let point = key.to_sec1_point(false);
        let bytes = point.as_bytes();
        let hash = keccak256(&bytes[1..]);
        let mut out = [0u8; 20];
        out.copy_from_slice(&hash[12..]);
        Address(out)
    }

    /// Parses `0x` + 40 hex digits in any case. A missing `0x` is refused,
    /// as the upstream string comparison would never match it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let digits = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .ok_or_else(|| format!("address {text:?} does not start with 0x"))?;
        if digits.len() != 40 {
            return Err(format!("address {text:?} is not 40 hex digits"));
        }
        let bytes = hex::decode(digits).map_err(|e| format!("address {text:?}: {e}"))?;
        let mut out = [0u8; 20];
        out.copy_from_slice(&bytes);
        Ok(Address(out))
    }

    /// `0x` + lowercase hex: the form sent in a ClientHello and signed.
    pub fn to_lower(&self) -> String {
        format!("0x{}", hex::encode(self.0))
    }

    /// The EIP-55 mixed-case checksum form.
    pub fn to_checksum(&self) -> String {
        let lower = hex::encode(self.0);
        let hash = keccak256(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, ch) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
            if ch.is_ascii_alphabetic() && nibble >= 8 {
                out.push(ch.to_ascii_uppercase());
            } else {
                out.push(ch);
            }
        }
        out
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.to_checksum())
    }
}

/// An agent's long-term signing key.
#[derive(Clone)]
pub struct AgentIdentity {
    key: SigningKey,
}

impl fmt::Debug for AgentIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentIdentity({})", self.address())
    }
}

impl AgentIdentity {
    /// An identity from 32 secret bytes; refuses zero and out-of-range keys.
    pub fn from_bytes(secret: &[u8; 32]) -> Result<Self, String> {
        SigningKey::from_slice(secret)
            .map(|key| AgentIdentity { key })
            .map_err(|_| "not a valid secp256k1 secret key".to_string())
    }

    /// An identity from hex (optional `0x`).
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let bytes = hex_decode_0x(text.trim()).map_err(|e| e.to_string())?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "a secp256k1 secret key is 32 bytes".to_string())?;
        Self::from_bytes(&arr)
    }

    /// The secret key bytes.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.key.to_bytes().into()
    }

    /// The agent address.
    pub fn address(&self) -> Address {
        Address::from_verifying_key(self.key.verifying_key())
    }

    /// Signs a 32-byte digest: RFC 6979 nonce, low-S, `v = recid + 27`.
    pub fn sign_digest(&self, digest: &[u8; 32]) -> [u8; 65] {
        let (sig, recid) = self.key.sign_prehash_recoverable(digest);
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&sig.to_bytes());
        out[64] = recid.to_byte() + 27;
        out
    }

    /// Signs `payload` under the channel domain (HS-1).
    pub fn sign_channel(&self, payload: &[u8]) -> [u8; 65] {
        self.sign_digest(&channel_digest(payload))
    }
}

/// Which signature encodings a verifier accepts (ID-3, ID-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignaturePolicy {
    /// Accept a raw recovery id 0..=3 as the `v` byte (the TypeScript port does).
    pub allow_raw_recovery_id: bool,
    /// Accept `v` 29/30 (recovery ids 2/3, x reduced).
    pub allow_reduced_x: bool,
    /// Accept an `s` in the upper half of the group order.
    pub allow_high_s: bool,
}

impl SignaturePolicy {
    /// What the Swift client accepts: `v` in 27..=30, high-S allowed.
    pub const UPSTREAM: SignaturePolicy = SignaturePolicy {
        allow_raw_recovery_id: false,
        allow_reduced_x: true,
        allow_high_s: true,
    };
    /// Only what a conforming signer emits: `v` 27/28 and low-S.
    pub const STRICT: SignaturePolicy = SignaturePolicy {
        allow_raw_recovery_id: false,
        allow_reduced_x: false,
        allow_high_s: false,
    };
}

impl Default for SignaturePolicy {
    /// The reference client's policy: the upstream one.
    fn default() -> Self {
        SignaturePolicy::UPSTREAM
    }
}

/// Recovers the signer's address from a 65-byte `r||s||v` signature.
pub fn recover_address(
    digest: &[u8; 32],
    signature: &[u8],
    policy: SignaturePolicy,
) -> Result<Address, SignatureError> {
    if signature.len() != 65 {
        return Err(SignatureError::Length(signature.len()));
    }
    let v = signature[64];
    let recid = match v {
        27 | 28 => v - 27,
        29 | 30 if policy.allow_reduced_x => v - 27,
        0..=3 if policy.allow_raw_recovery_id => v,
        _ => return Err(SignatureError::RecoveryByte(v)),
    };
    let sig = Signature::from_slice(&signature[..64]).map_err(|_| SignatureError::ScalarRange)?;
    if !policy.allow_high_s && bool::from(sig.s().is_high()) {
        return Err(SignatureError::HighS);
    }
    let recid = RecoveryId::from_byte(recid).ok_or(SignatureError::RecoveryByte(v))?;
    let key = VerifyingKey::recover_from_prehash(digest, &sig, recid)
        .map_err(|_| SignatureError::Recovery)?;
    Ok(Address::from_verifying_key(&key))
}

/// Recovers the signer of a `0x`-hex channel signature over `payload`.
pub fn recover_channel_signer(
    payload: &[u8],
    signature_hex: &str,
    policy: SignaturePolicy,
) -> Result<Address, SignatureError> {
    let bytes = hex_decode_0x(signature_hex)?;
    recover_address(&channel_digest(payload), &bytes, policy)
}

/// Rewrites a low-S signature as its high-S twin (negated `s`, flipped
/// recovery id), for vectors and adversaries. A signature from a peer may
/// be anything: `r` or `s` zero or not below the group order is
/// [`SignatureError::ScalarRange`], a `v` other than 27 or 28
/// [`SignatureError::RecoveryByte`].
pub fn to_high_s(signature: &[u8; 65]) -> Result<[u8; 65], SignatureError> {
    let v = signature[64];
    if !matches!(v, 27 | 28) {
        return Err(SignatureError::RecoveryByte(v));
    }
    let sig = Signature::from_slice(&signature[..64]).map_err(|_| SignatureError::ScalarRange)?;
    let (r, s) = sig.split_scalars();
    let neg = -*s;
    let high = Signature::from_scalars(r.to_bytes(), neg.to_bytes())
        .map_err(|_| SignatureError::ScalarRange)?;
    let mut out = [0u8; 65];
    out[..64].copy_from_slice(&high.to_bytes());
    out[64] = 27 + ((v - 27) ^ 1);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector_identity() -> AgentIdentity {
        AgentIdentity::from_hex("c2ddba76f071d8115d12d4a8e4d9df7c460aa6ae4f4a59b6c9d1f740a88146f9")
            .unwrap()
    }

    #[test]
    fn vector_address_is_eip55() {
        assert_eq!(
            vector_identity().address().to_checksum(),
            "0x331565e19602986634610f4B33Ff7ad182860036"
        );
    }

    #[test]
    fn sign_and_recover_under_policies() {
        let id = vector_identity();
        let sig = id.sign_channel(b"hello");
        let digest = channel_digest(b"hello");
        assert_eq!(
            recover_address(&digest, &sig, SignaturePolicy::STRICT).unwrap(),
            id.address()
        );
        let high = to_high_s(&sig).unwrap();
        assert_eq!(to_high_s(&[0u8; 65]), Err(SignatureError::RecoveryByte(0)));
        let mut zero = [0u8; 65];
        zero[64] = 27;
        assert_eq!(to_high_s(&zero), Err(SignatureError::ScalarRange));
        assert_eq!(
            recover_address(&digest, &high, SignaturePolicy::UPSTREAM).unwrap(),
            id.address()
        );
        assert_eq!(
            recover_address(&digest, &high, SignaturePolicy::STRICT),
            Err(SignatureError::HighS)
        );
        let mut raw = sig;
        raw[64] -= 27;
        assert!(matches!(
            recover_address(&digest, &raw, SignaturePolicy::UPSTREAM),
            Err(SignatureError::RecoveryByte(_))
        ));
        let other = domain_digest(OTHER_PREFIXES[0], b"hello");
        let foreign = id.sign_digest(&other);
        assert_ne!(
            recover_address(&digest, &foreign, SignaturePolicy::UPSTREAM).ok(),
            Some(id.address())
        );
    }

    #[test]
    fn address_parse_is_case_insensitive_and_needs_prefix() {
        let a = vector_identity().address();
        assert_eq!(
            Address::parse("0x331565e19602986634610f4b33ff7ad182860036").unwrap(),
            a
        );
        assert_eq!(
            Address::parse("0X331565E19602986634610F4B33FF7AD182860036").unwrap(),
            a
        );
        assert!(Address::parse("331565e19602986634610f4b33ff7ad182860036").is_err());
    }
}
