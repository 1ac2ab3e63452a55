//! The client's fault knobs: each names the one honest step it bends.

use std::fmt;

/// A deliberate client defect, selected with `--bug NAME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClientBug {
    /// The ServerHello signature is not checked against the pinned address (HS-2).
    IdentityUnchecked,
    /// A response that ends without an authenticated `fin` is accepted (RESP-5).
    MissingFinIgnored,
    /// Frames are opened in whatever order they arrive (RESP-4).
    ReorderedFramesAccepted,
    /// A call refused with `409 secure_replay` is sent again (SES-2).
    RetryOn409,
    /// A session is sealed with even after its `expiresAt` (SES-3).
    ExpiredSessionUsed,
    /// Every call of a session is sealed with seq 1 (CALL-1).
    ReplaySameSeq,
    /// A low-order server key in the ServerHello is accepted (HS-7).
    LowOrderKeyAccepted,
}

impl ClientBug {
    /// Every knob.
    pub const ALL: [ClientBug; 7] = [
        ClientBug::IdentityUnchecked,
        ClientBug::MissingFinIgnored,
        ClientBug::ReorderedFramesAccepted,
        ClientBug::RetryOn409,
        ClientBug::ExpiredSessionUsed,
        ClientBug::ReplaySameSeq,
        ClientBug::LowOrderKeyAccepted,
    ];

    /// The kebab-case name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ClientBug::IdentityUnchecked => "identity-unchecked",
            ClientBug::MissingFinIgnored => "missing-fin-ignored",
            ClientBug::ReorderedFramesAccepted => "reordered-frames-accepted",
            ClientBug::RetryOn409 => "retry-on-409",
            ClientBug::ExpiredSessionUsed => "expired-session-used",
            ClientBug::ReplaySameSeq => "replay-same-seq",
            ClientBug::LowOrderKeyAccepted => "low-order-key-accepted",
        }
    }

    /// The SPEC requirement the knob breaks.
    pub fn requirement(self) -> &'static str {
        match self {
            ClientBug::IdentityUnchecked => "HS-2",
            ClientBug::MissingFinIgnored => "RESP-5",
            ClientBug::ReorderedFramesAccepted => "RESP-4",
            ClientBug::RetryOn409 => "SES-2",
            ClientBug::ExpiredSessionUsed => "SES-3",
            ClientBug::ReplaySameSeq => "CALL-1",
            ClientBug::LowOrderKeyAccepted => "HS-7",
        }
    }

    /// What the broken client does, in a sentence.
    pub fn description(self) -> &'static str {
        match self {
            ClientBug::IdentityUnchecked => "accepts a ServerHello without checking who signed it",
            ClientBug::MissingFinIgnored => "treats a response without a fin frame as complete",
            ClientBug::ReorderedFramesAccepted => "opens response frames in any order",
            ClientBug::RetryOn409 => "sends a call again after 409 secure_replay",
            ClientBug::ExpiredSessionUsed => "keeps sealing with a session past its expiry",
            ClientBug::ReplaySameSeq => "seals every call of a session with seq 1",
            ClientBug::LowOrderKeyAccepted => {
                "keys a session from a low-order server key (an all-zero shared secret)"
            }
        }
    }

    /// The knob called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }
}

impl fmt::Display for ClientBug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ClientBug {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|b| b.name()).collect();
            format!("unknown client bug {s:?}; known: {}", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in ClientBug::ALL {
            assert_eq!(ClientBug::from_name(b.name()), Some(b));
            assert_eq!(b.name().parse::<ClientBug>(), Ok(b));
        }
        assert!("nope".parse::<ClientBug>().is_err());
    }
}
