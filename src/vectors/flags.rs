//! The suite's flags: what each one means, and the reason the core must
//! give when a case carrying it is refused. Generation writes this table
//! into the file's `notes`; verification reads the reason from it, so a
//! case is only counted as rejected when it fails for the flagged reason.

use std::fmt;

/// Why the core refuses a case, as observed by the verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The AEAD tag does not verify (wrong key, nonce, AAD, tag or ct).
    AuthenticationFailed,
    /// `ct` is shorter than the tag.
    CiphertextTooShort,
    /// `ct` is not base64url.
    CiphertextNotBase64,
    /// Envelope `v` is not 1.
    WrongVersion,
    /// The replay window refuses the seq.
    Replay,
    /// The session is unknown or has expired.
    SessionUnknown,
    /// A response frame is not the next one.
    FrameOutOfOrder,
    /// A response frame follows `fin`.
    FrameAfterFin,
    /// The response ends without an authenticated `fin`.
    Truncated,
    /// The ServerHello's signer is not the pinned agent.
    IdentityMismatch,
    /// X25519 gives the all-zero secret.
    LowOrderKey,
    /// A handshake key or nonce is malformed.
    MalformedHandshake,
    /// Hello `v` is not 1.
    UnsupportedVersion,
    /// A signature is not 65 bytes.
    SignatureLength,
    /// A signature is not `0x` hex.
    SignatureEncoding,
    /// The `v` byte is refused.
    RecoveryByte,
    /// `r` or `s` is zero or not below the group order.
    ScalarRange,
    /// `s` is high under a low-S policy.
    HighS,
    /// No public key recovers.
    NoRecovery,
    /// A key recovers, but it is not the expected signer's.
    AddressMismatch,
    /// The pinned address is not `0x` + 40 hex digits.
    AddressFormat,
    /// A base64url string is refused.
    Base64Refused,
}

impl Reason {
    /// The name used in files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Reason::AuthenticationFailed => "AuthenticationFailed",
            Reason::CiphertextTooShort => "CiphertextTooShort",
            Reason::CiphertextNotBase64 => "CiphertextNotBase64",
            Reason::WrongVersion => "WrongVersion",
            Reason::Replay => "Replay",
            Reason::SessionUnknown => "SessionUnknown",
            Reason::FrameOutOfOrder => "FrameOutOfOrder",
            Reason::FrameAfterFin => "FrameAfterFin",
            Reason::Truncated => "Truncated",
            Reason::IdentityMismatch => "IdentityMismatch",
            Reason::LowOrderKey => "LowOrderKey",
            Reason::MalformedHandshake => "MalformedHandshake",
            Reason::UnsupportedVersion => "UnsupportedVersion",
            Reason::SignatureLength => "SignatureLength",
            Reason::SignatureEncoding => "SignatureEncoding",
            Reason::RecoveryByte => "RecoveryByte",
            Reason::ScalarRange => "ScalarRange",
            Reason::HighS => "HighS",
            Reason::NoRecovery => "NoRecovery",
            Reason::AddressMismatch => "AddressMismatch",
            Reason::AddressFormat => "AddressFormat",
            Reason::Base64Refused => "Base64Refused",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a flag says about the cases that carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    /// Describes a valid case; no refusal expected.
    Info,
    /// The case is invalid: every policy refuses it, the reference one
    /// for this reason (where the reason depends on the verifier's
    /// leniency, as for a raw `v`, the reference policy's reason is the
    /// one named).
    Invalid(Reason),
    /// The case is acceptable: the specification leaves it open (a SHOULD,
    /// or an UPSTREAM leniency), so a strict verifier refuses it for
    /// `strict` and a lenient one may accept it; `reference_accepts` says
    /// what the reference does (`None`: unknown upstream, not checked).
    Acceptable {
        /// The strict refusal.
        strict: Reason,
        /// Whether the reference policy accepts it.
        reference_accepts: Option<bool>,
        /// The level of the requirement that leaves it open.
        level: Level,
    },
}

/// The level of the requirement an acceptable case stands on
/// (docs/PROTOCOL.md, section 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// A SHOULD: refusing is recommended, accepting is not a violation.
    Should,
    /// An UPSTREAM behaviour: what the reference does, beyond the MUSTs.
    Upstream,
}

impl Level {
    /// The level's name in files (`SHOULD`, `UPSTREAM`).
    pub fn name(self) -> &'static str {
        match self {
            Level::Should => "SHOULD",
            Level::Upstream => "UPSTREAM",
        }
    }

    /// The Wycheproof-style `bugType` of a note at this level: `EDGE_CASE`
    /// for a SHOULD (as Wycheproof files low-order X25519 keys),
    /// `UPSTREAM` otherwise.
    pub fn bug_type(self) -> &'static str {
        match self {
            Level::Should => "EDGE_CASE",
            Level::Upstream => "UPSTREAM",
        }
    }
}

/// One flag.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// Its name in the file.
    pub name: &'static str,
    /// What it implies.
    pub kind: FlagKind,
    /// One sentence for the file's notes.
    pub description: &'static str,
}

use FlagKind::{Acceptable, Info, Invalid};
use Level::{Should, Upstream};
use Reason::*;

/// Every flag the suite uses.
pub const FLAGS: &[Flag] = &[
    Flag { name: "Valid", kind: Info, description: "An honest value, produced by the reference implementation." },
    Flag { name: "EdgeSeq", kind: Info, description: "A sequence number at an edge: 1, 2^32, 2^53 or 2^64-1." },
    Flag { name: "JsonUnsafeInteger", kind: Info, description: "A sequence number above 2^53: JSON parsers that use doubles lose it." },
    Flag { name: "ReplayPattern", kind: Info, description: "A list of seqs with the accept/refuse pattern the 64-wide window must give." },
    Flag { name: "AddressCase", kind: Info, description: "The pinned address in lower, upper or EIP-55 case: addresses compare ignoring case." },
    Flag { name: "SeqZero", kind: Invalid(Replay), description: "Request seq 0: never accepted, even when the AEAD opens." },
    Flag { name: "Replayed", kind: Invalid(Replay), description: "A genuine call sent again, or 64 or more below the highest seq." },
    Flag { name: "Expired", kind: Invalid(SessionUnknown), description: "A call at or after the session's expiresAt." },
    Flag { name: "WrongVersion", kind: Invalid(WrongVersion), description: "A CallRequest whose v is not 1." },
    Flag { name: "TamperedTag", kind: Invalid(AuthenticationFailed), description: "One bit of the authentication tag flipped." },
    Flag { name: "TamperedCiphertext", kind: Invalid(AuthenticationFailed), description: "One bit of the ciphertext flipped." },
    Flag { name: "WrongAadSid", kind: Invalid(AuthenticationFailed), description: "Sealed with an AAD naming another sid." },
    Flag { name: "WrongAadSeq", kind: Invalid(AuthenticationFailed), description: "Sealed with an AAD naming another (frame or request) seq than the nonce and envelope." },
    Flag { name: "WrongAadDirection", kind: Invalid(AuthenticationFailed), description: "Sealed with the AAD of the other direction (req vs resp)." },
    Flag { name: "WrongAadFin", kind: Invalid(AuthenticationFailed), description: "The fin flag on the wire differs from the one in the sealing AAD." },
    Flag { name: "WrongAadRequestSeq", kind: Invalid(AuthenticationFailed), description: "A response frame sealed with an AAD naming another request seq." },
    Flag { name: "WrongNonce", kind: Invalid(AuthenticationFailed), description: "Sealed with the nonce of another seq." },
    Flag { name: "WrongKeyDirection", kind: Invalid(AuthenticationFailed), description: "Sealed with the key of the other direction." },
    Flag { name: "TransplantedSeq", kind: Invalid(AuthenticationFailed), description: "A genuine call sealed for another seq, sent under this one." },
    Flag { name: "OtherCallFrame", kind: Invalid(AuthenticationFailed), description: "A genuine response frame of another call of the same session." },
    Flag { name: "SessionKeyInsteadOfCallKey", kind: Invalid(AuthenticationFailed), description: "A response frame sealed with s2c itself instead of the per-call key." },
    Flag { name: "ShortCiphertext", kind: Invalid(CiphertextTooShort), description: "A ct shorter than the 16-byte tag." },
    Flag { name: "CiphertextNotBase64", kind: Invalid(CiphertextNotBase64), description: "A ct that is not base64url at all." },
    Flag { name: "FrameOutOfOrder", kind: Invalid(FrameOutOfOrder), description: "Response frames out of order, or one repeated." },
    Flag { name: "FrameAfterFin", kind: Invalid(FrameAfterFin), description: "A response frame after the fin frame." },
    Flag { name: "Truncated", kind: Invalid(Truncated), description: "A response that ends without an authenticated fin frame." },
    Flag { name: "TranscriptAgentAddress", kind: Invalid(IdentityMismatch), description: "The signed transcript's aA differs from the client's." },
    Flag { name: "TranscriptClientEncPub", kind: Invalid(IdentityMismatch), description: "The signed transcript's eC differs from the client's." },
    Flag { name: "TranscriptClientNonce", kind: Invalid(IdentityMismatch), description: "The signed transcript's nC differs from the client's." },
    Flag { name: "TranscriptSid", kind: Invalid(IdentityMismatch), description: "The ServerHello's sid was changed after signing." },
    Flag { name: "TranscriptServerEncPub", kind: Invalid(IdentityMismatch), description: "The ServerHello's encPub was changed after signing." },
    Flag { name: "TranscriptExpiresAt", kind: Invalid(IdentityMismatch), description: "The ServerHello's expiresAt was changed after signing." },
    Flag { name: "SignedByOtherAgent", kind: Invalid(IdentityMismatch), description: "A ServerHello signed correctly, but by another agent's key." },
    Flag { name: "LowOrderPoint", kind: Acceptable { strict: LowOrderKey, reference_accepts: None, level: Should }, description: "A standard low-order X25519 public key: the shared secret is all zero, so anyone can compute the session keys. HS-7 is a SHOULD: a strict implementation refuses it (osc-harness's core does, as BoringSSL-backed X25519 does); the upstream reference's choice is unknown, since CryptoKit's is platform-dependent (where it refuses, upstream answers Malformed handshake)." },
    Flag { name: "UnsupportedVersion", kind: Invalid(UnsupportedVersion), description: "A hello whose v is not 1." },
    Flag { name: "MalformedKey", kind: Invalid(MalformedHandshake), description: "An encPub that is not base64url of 32 bytes." },
    Flag { name: "EmptyNonce", kind: Invalid(MalformedHandshake), description: "A ClientHello with an empty nonce." },
    Flag { name: "OtherKey", kind: Invalid(AddressMismatch), description: "A valid signature by another key." },
    Flag { name: "WrongRecoveryId", kind: Invalid(AddressMismatch), description: "v is 27 or 28 but names the other recovery id: another key recovers." },
    Flag { name: "RawWrongRecoveryId", kind: Invalid(RecoveryByte), description: "v is the other recovery id in raw form (0 or 1): the reference refuses the byte (ID-4); a verifier that takes raw ids recovers another key instead (AddressMismatch)." },
    Flag { name: "RawRecoveryId", kind: Acceptable { strict: RecoveryByte, reference_accepts: Some(false), level: Upstream }, description: "v is the raw recovery id (0 or 1) instead of 27 or 28; the TypeScript port accepts it, the Swift client does not (ID-4)." },
    Flag { name: "ReducedXRecoveryId", kind: Invalid(NoRecovery), description: "v is 29 or 30, naming recovery id 2 or 3 (x = r + n), which no key satisfies for this r." },
    Flag { name: "RawReducedXRecoveryId", kind: Invalid(RecoveryByte), description: "v is 2 or 3, recovery id 2 or 3 in raw form: the reference refuses the byte (ID-4); a verifier that takes raw ids finds no key instead (NoRecovery)." },
    Flag { name: "HighSServerHello", kind: Acceptable { strict: IdentityMismatch, reference_accepts: Some(true), level: Upstream }, description: "A ServerHello signed with the high-S twin of the honest signature (v flipped): the Swift client accepts it (ID-4), a low-S client abandons the session." },
    Flag { name: "RawRecoveryIdServerHello", kind: Acceptable { strict: IdentityMismatch, reference_accepts: Some(false), level: Upstream }, description: "A ServerHello whose signature carries the raw recovery id (0 or 1) as v: the TypeScript port accepts it, the Swift client does not (ID-4)." },
    Flag { name: "InvalidRecoveryByte", kind: Invalid(RecoveryByte), description: "A v byte no policy accepts." },
    Flag { name: "HighS", kind: Acceptable { strict: HighS, reference_accepts: Some(true), level: Upstream }, description: "The high-S twin of a valid signature with v flipped: the Swift client accepts it (ID-4), a low-S verifier refuses it." },
    Flag { name: "HighSWrongRecoveryId", kind: Invalid(AddressMismatch), description: "s negated without flipping v: another key recovers." },
    Flag { name: "ScalarOutOfRange", kind: Invalid(ScalarRange), description: "r or s is zero or at least the group order n." },
    Flag { name: "SignatureLength", kind: Invalid(SignatureLength), description: "A truncated or over-long signature." },
    Flag { name: "SignatureEncoding", kind: Invalid(SignatureEncoding), description: "A signature that is not 0x-prefixed hex (ENC-2)." },
    Flag { name: "WrongDomain", kind: Invalid(AddressMismatch), description: "A valid signature by the agent under another Osaurus (or Ethereum) signing prefix." },
    Flag { name: "Sha3InsteadOfKeccak", kind: Invalid(AddressMismatch), description: "Signed over SHA3-256 of the domain message where Keccak-256 belongs." },
    Flag { name: "NoDomainPrefix", kind: Invalid(AddressMismatch), description: "Signed over Keccak-256 of the bare transcript, without the domain prefix." },
    Flag { name: "AddressWithout0x", kind: Invalid(AddressFormat), description: "The pinned address without its 0x prefix: no match." },
    Flag { name: "AddressNibbleOff", kind: Invalid(AddressMismatch), description: "The pinned address with one nibble changed: no match." },
    Flag { name: "PaddedBase64", kind: Acceptable { strict: Base64Refused, reference_accepts: Some(true), level: Upstream }, description: "base64url with = padding: upstream decoders accept it (ENC-1), a canonical one refuses it." },
    Flag { name: "StandardAlphabet", kind: Acceptable { strict: Base64Refused, reference_accepts: Some(true), level: Upstream }, description: "base64 in the +/ alphabet: upstream decoders accept it (ENC-1), a canonical one refuses it." },
    Flag { name: "NonZeroTrailingBits", kind: Acceptable { strict: Base64Refused, reference_accepts: None, level: Upstream }, description: "base64url whose last character has non-zero unused bits: canonical decoders refuse it; upstream behaviour is unknown (Foundation)." },
    Flag { name: "Base64Length", kind: Invalid(Base64Refused), description: "A base64url length of 1 mod 4: every decoder refuses it." },
    Flag { name: "Base64Character", kind: Invalid(Base64Refused), description: "A character outside both base64 alphabets, or whitespace." },
];

/// Looks a flag up by name.
pub fn flag(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|f| f.name == name)
}
