//! Tunnel sign-in: each agent signs
//! `osaurus-tunnel:<address>:<nonce>:<timestamp>` with EIP-191
//! `personal_sign` (keccak256 of `"\x19Ethereum Signed Message:\n"`, the
//! message's decimal byte length and the message; `r‖s‖v` with
//! `v = 27 + recovery id`, as `0x` hex).

use crate::protocol::encoding::{hex_decode_0x, hex_encode_0x};
use crate::protocol::identity::{
    domain_digest, recover_address, Address, AgentIdentity, SignaturePolicy,
};

use super::frame::AgentAuth;

/// The EIP-191 domain, as `domain_digest` writes its prefix.
const PERSONAL_PREFIX: &str = "Ethereum Signed Message";

/// The message an agent signs to sign in: the address exactly as the
/// frame carries it.
pub fn sign_in_message(address: &str, nonce: &str, timestamp: i64) -> String {
    format!("osaurus-tunnel:{address}:{nonce}:{timestamp}")
}

/// The EIP-191 `personal_sign` digest of `message`.
pub fn personal_digest(message: &[u8]) -> [u8; 32] {
    domain_digest(PERSONAL_PREFIX, message)
}

/// The sign-in answer of one agent for `nonce` at `timestamp`, its address
/// in lower case.
pub fn sign_in(identity: &AgentIdentity, nonce: &str, timestamp: i64) -> AgentAuth {
    let address = identity.address().to_lower();
    let message = sign_in_message(&address, nonce, timestamp);
    let signature = identity.sign_digest(&personal_digest(message.as_bytes()));
    AgentAuth {
        address,
        signature: hex_encode_0x(&signature),
    }
}

/// Why a sign-in answer is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    /// The address does not parse.
    #[error("not an agent address: {0}")]
    Address(String),
    /// The signature is not hex, or not a recoverable signature.
    #[error("unreadable signature: {0}")]
    Signature(String),
    /// The signature is someone else's.
    #[error("signed by {signer}, not by {claimed}")]
    WrongSigner {
        /// Who signed.
        signer: String,
        /// Who the frame says signed.
        claimed: String,
    },
}

/// Checks one agent's sign-in answer for `nonce` at `timestamp`: the
/// signer recovered from the signature over the message (with the address
/// exactly as sent) must be that address. Upper or lower case hex both
/// name the same address.
pub fn verify_sign_in(
    auth: &AgentAuth,
    nonce: &str,
    timestamp: i64,
) -> Result<Address, SignInError> {
    let claimed = Address::parse(&auth.address).map_err(SignInError::Address)?;
    let bytes =
        hex_decode_0x(&auth.signature).map_err(|e| SignInError::Signature(e.to_string()))?;
    let message = sign_in_message(&auth.address, nonce, timestamp);
    let signer = recover_address(
        &personal_digest(message.as_bytes()),
        &bytes,
        SignaturePolicy::UPSTREAM,
    )
    .map_err(|e| SignInError::Signature(e.to_string()))?;
    if signer != claimed {
        return Err(SignInError::WrongSigner {
            signer: signer.to_lower(),
            claimed: claimed.to_lower(),
        });
    }
    Ok(claimed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_in_verifies_and_any_change_is_refused() {
        let id = AgentIdentity::from_bytes(&[7u8; 32]).unwrap();
        let auth = sign_in(&id, "ab".repeat(32).as_str(), 1_700_000_000);
        assert_eq!(
            verify_sign_in(&auth, &"ab".repeat(32), 1_700_000_000),
            Ok(id.address())
        );
        assert!(verify_sign_in(&auth, &"ab".repeat(32), 1_700_000_001).is_err());
        assert!(verify_sign_in(&auth, &"cd".repeat(32), 1_700_000_000).is_err());
        // The message names the address as sent: a checksummed address
        // is a different message, so the lower-case signature fails for it.
        let mut other_case = auth.clone();
        other_case.address = id.address().to_checksum();
        assert!(verify_sign_in(&other_case, &"ab".repeat(32), 1_700_000_000).is_err());
        let mut garbage = auth;
        garbage.signature = "0x1234".into();
        assert!(matches!(
            verify_sign_in(&garbage, &"ab".repeat(32), 1_700_000_000),
            Err(SignInError::Signature(_))
        ));
    }

    #[test]
    fn the_digest_is_eip191_personal_sign() {
        // keccak256("\x19Ethereum Signed Message:\n5hello"), a well-known value.
        assert_eq!(
            hex::encode(personal_digest(b"hello")),
            "50b2c43fd39106bafbba0da34fc430e1f91e3c96ea2acee2bc34119f92b37750"
        );
    }
}
