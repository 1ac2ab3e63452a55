//! The SIGMA-style handshake (HS-1..HS-7, KS-1).
//!
//! A [`ClientHandshake`] becomes a [`ClientSession`] only through
//! [`ClientHandshake::finish`], which checks the ServerHello's signature
//! against the pinned address: a client cannot seal without verifying.
//! The server side is [`respond`]. Every random input (ephemeral keys,
//! nonce, sid) and the expiry are parameters, and the few steps an
//! adversary bends go through [`ServerHandshakeHooks`], whose defaults are
//! the honest protocol.

use x25519_dalek::{PublicKey, StaticSecret};

use super::encoding::{b64url_decode, b64url_encode, B64Strictness};
use super::error::HandshakeError;
use super::identity::{recover_channel_signer, Address, AgentIdentity, SignaturePolicy};
use super::keys::{derive_session_keys, SessionKeys};
use super::session::{ClientSession, ServerSession};
use super::wire::{ClientHello, ServerHello};
use super::{DOMAIN, VERSION};

/// The six values the transcript binds, exactly as they appear on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// `agentAddress` from the ClientHello (lowercased when rendered).
    pub agent_address: String,
    /// The client's `encPub`, as sent.
    pub client_enc_pub: String,
    /// The client's `nonce`, as sent.
    pub client_nonce: String,
    /// The `sid`.
    pub sid: String,
    /// The server's `encPub`.
    pub server_enc_pub: String,
    /// `expiresAt`.
    pub expires_at: i64,
}

/// The transcript fields by name, for adversaries that drop or edit one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TranscriptField {
    /// `aA`
    AgentAddress,
    /// `eC`
    ClientEncPub,
    /// `nC`
    ClientNonce,
    /// `sid`
    Sid,
    /// `eS`
    ServerEncPub,
    /// `exp`
    ExpiresAt,
}

impl Transcript {
    /// The transcript of a hello pair.
    pub fn new(hello: &ClientHello, sid: &str, server_enc_pub: &str, expires_at: i64) -> Self {
        Transcript {
            agent_address: hello.agent_address.clone(),
            client_enc_pub: hello.enc_pub.clone(),
            client_nonce: hello.nonce.clone(),
            sid: sid.to_owned(),
            server_enc_pub: server_enc_pub.to_owned(),
            expires_at,
        }
    }

    /// The transcript as the client sees it.
    pub fn from_hellos(client: &ClientHello, server: &ServerHello) -> Self {
        Self::new(client, &server.sid, &server.enc_pub, server.expires_at)
    }

    /// `osaurus-sc1|v=1|aA=…|eC=…|nC=…|sid=…|eS=…|exp=…`. `v` is always 1.
    pub fn render(&self) -> String {
        self.render_without(None)
    }

    /// The transcript with one field left out (an adversary knob).
    pub fn render_without(&self, omit: Option<TranscriptField>) -> String {
        let mut out = format!("{DOMAIN}|v={VERSION}");
        let parts: [(TranscriptField, &str, String); 6] = [
            (
                TranscriptField::AgentAddress,
                "aA",
                self.agent_address.to_lowercase(),
            ),
            (
                TranscriptField::ClientEncPub,
                "eC",
                self.client_enc_pub.clone(),
            ),
            (
                TranscriptField::ClientNonce,
                "nC",
                self.client_nonce.clone(),
            ),
            (TranscriptField::Sid, "sid", self.sid.clone()),
            (
                TranscriptField::ServerEncPub,
                "eS",
                self.server_enc_pub.clone(),
            ),
            (
                TranscriptField::ExpiresAt,
                "exp",
                self.expires_at.to_string(),
            ),
        ];
        for (field, label, value) in parts {
            if Some(field) != omit {
                out.push('|');
                out.push_str(label);
                out.push('=');
                out.push_str(&value);
            }
        }
        out
    }
}

/// Parses a base64url X25519 public key (32 bytes).
pub fn parse_x25519_public(text: &str) -> Result<PublicKey, HandshakeError> {
    let bytes = b64url_decode(text, B64Strictness::Upstream)
        .map_err(|e| HandshakeError::Malformed(format!("encPub: {e}")))?;
    let arr: [u8; 32] = bytes.try_into().map_err(|v: Vec<u8>| {
        HandshakeError::Malformed(format!("encPub is {} bytes, not 32", v.len()))
    })?;
    Ok(PublicKey::from(arr))
}

/// X25519 with the low-order refusal of HS-7 (when `refuse_low_order`).
pub fn agree(
    own: &StaticSecret,
    peer: &PublicKey,
    refuse_low_order: bool,
) -> Result<[u8; 32], HandshakeError> {
    let shared = own.diffie_hellman(peer);
    if refuse_low_order && !shared.was_contributory() {
        return Err(HandshakeError::LowOrderKey);
    }
    Ok(shared.to_bytes())
}

/// The base64url public key of a secret.
pub fn public_b64(secret: &StaticSecret) -> String {
    b64url_encode(PublicKey::from(secret).as_bytes())
}

/// A client that has sent its hello and waits for the server's.
pub struct ClientHandshake {
    hello: ClientHello,
    secret: StaticSecret,
    pinned: Address,
    policy: SignaturePolicy,
    refuse_low_order: bool,
    verify_identity: bool,
}

impl ClientHandshake {
    /// Starts a handshake with a fresh ephemeral secret and nonce, supplied
    /// by the caller.
    pub fn new(pinned: Address, ephemeral_secret: [u8; 32], nonce: [u8; 16]) -> Self {
        let secret = StaticSecret::from(ephemeral_secret);
        let hello = ClientHello {
            v: VERSION,
            agent_address: pinned.to_lower(),
            enc_pub: public_b64(&secret),
            nonce: b64url_encode(&nonce),
        };
        Self::with_hello(pinned, ephemeral_secret, hello)
    }

    /// Starts a handshake from a hello the caller built (an adversary may
    /// replace any of its fields).
    pub fn with_hello(pinned: Address, ephemeral_secret: [u8; 32], hello: ClientHello) -> Self {
        ClientHandshake {
            hello,
            secret: StaticSecret::from(ephemeral_secret),
            pinned,
            policy: SignaturePolicy::default(),
            refuse_low_order: true,
            verify_identity: true,
        }
    }

    /// Sets the signature policy.
    pub fn with_policy(mut self, policy: SignaturePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// DANGEROUS: skips the identity check (a client knob for self-tests).
    pub fn dangerous_skip_identity_check(mut self) -> Self {
        self.verify_identity = false;
        self
    }

    /// DANGEROUS: accepts a low-order server key (HS-7 off).
    pub fn dangerous_accept_low_order(mut self) -> Self {
        self.refuse_low_order = false;
        self
    }

    /// The hello to send.
    pub fn hello(&self) -> &ClientHello {
        &self.hello
    }

    /// The pinned address.
    pub fn pinned(&self) -> Address {
        self.pinned
    }

    /// Verifies the ServerHello and derives the session (HS-2, HS-4, KS-1).
    /// Check order follows upstream: version, key and sid, signature,
    /// key agreement.
    pub fn finish(self, server: &ServerHello) -> Result<ClientSession, HandshakeError> {
        self.finish_with(server, &super::client_hooks::HonestClient)
    }

    /// [`ClientHandshake::finish`] with the checks `hooks` keeps (a client
    /// knob switches one off).
    pub fn finish_with(
        mut self,
        server: &ServerHello,
        hooks: &dyn super::client_hooks::HelloCheckHooks,
    ) -> Result<ClientSession, HandshakeError> {
        self.verify_identity &= hooks.verify_identity();
        self.refuse_low_order &= hooks.refuse_low_order();
        if server.v != VERSION && hooks.check_version() {
            return Err(HandshakeError::UnsupportedVersion(server.v));
        }
        let server_pub = parse_x25519_public(&server.enc_pub)?;
        if server.sid.is_empty() {
            return Err(HandshakeError::Malformed("sid is empty".into()));
        }
        let transcript = Transcript::from_hellos(&self.hello, server).render();
        if self.verify_identity {
            let signer =
                recover_channel_signer(transcript.as_bytes(), &server.signature, self.policy)
                    .map_err(|e| HandshakeError::IdentityMismatch(e.to_string()))?;
            if signer != self.pinned {
                return Err(HandshakeError::IdentityMismatch(format!(
                    "the ServerHello is signed by {signer}, not by the pinned agent {}",
                    self.pinned
                )));
            }
        }
        let shared = agree(&self.secret, &server_pub, self.refuse_low_order)?;
        let keys = derive_session_keys(&shared, transcript.as_bytes());
        Ok(ClientSession::new(
            server.sid.clone(),
            keys,
            server.expires_at,
        ))
    }
}

/// The server's random and time inputs for one handshake.
#[derive(Clone)]
pub struct ServerHandshakeInputs {
    /// The server's fresh ephemeral X25519 secret.
    pub ephemeral_secret: [u8; 32],
    /// 16 random sid bytes.
    pub sid: [u8; 16],
    /// Unix seconds: now + TTL.
    pub expires_at: i64,
}

/// An `eS` a server announces in place of its own ephemeral public key,
/// with the shared secret it keys the session from (an adversary's choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnouncedKey {
    /// The 32 bytes sent as `encPub` and signed in the transcript.
    pub public: [u8; 32],
    /// The X25519 output a client that accepts `public` computes.
    pub shared: [u8; 32],
}

impl AnnouncedKey {
    /// A small-order point: every client secret multiplied by it gives the
    /// all-zero output, so the session keys are the same for a client that
    /// does not refuse it (HS-7) and for anyone who reads the transcript.
    pub fn low_order(point: [u8; 32]) -> Self {
        AnnouncedKey {
            public: point,
            shared: [0u8; 32],
        }
    }
}

/// The steps of the server handshake an adversary may bend. Each default
/// is the honest protocol; the reference server's `--bug` knobs override
/// one method each.
pub trait ServerHandshakeHooks {
    /// The signature as written on the wire (honest: `0x` + lowercase hex, ENC-2).
    fn signature_hex(&self, signature: &[u8; 65]) -> String {
        super::encoding::hex_encode_0x(signature)
    }
    /// The bytes signed (honest: the full transcript).
    fn signed_payload(&self, transcript: &Transcript) -> String {
        transcript.render()
    }
    /// The signature over `payload` (honest: the agent key, channel domain).
    fn sign(&self, identity: &AgentIdentity, payload: &[u8]) -> [u8; 65] {
        identity.sign_channel(payload)
    }
    /// Whether a low-order client key is refused (honest: yes, HS-7).
    fn refuse_low_order(&self) -> bool {
        true
    }
    /// The key announced as `eS` instead of the server's own ephemeral
    /// public key (honest: none, the real key).
    fn announced_key(&self) -> Option<AnnouncedKey> {
        None
    }
    /// The session keys (honest: KS-1).
    fn session_keys(&self, shared: &[u8; 32], transcript: &[u8]) -> SessionKeys {
        derive_session_keys(shared, transcript)
    }
}

/// The honest server handshake.
pub struct HonestServer;
impl ServerHandshakeHooks for HonestServer {}

/// What a successful server handshake produces.
pub struct ServerHandshake {
    /// The hello to send back.
    pub hello: ServerHello,
    /// The session to store under `hello.sid`.
    pub session: ServerSession,
    /// The transcript both sides bound.
    pub transcript: String,
}

/// Answers a ClientHello (HS-1, HS-4, HS-5, HS-7). The caller has already
/// resolved `agentAddress` to `identity` (HS-6).
pub fn respond(
    hello: &ClientHello,
    identity: &AgentIdentity,
    inputs: &ServerHandshakeInputs,
    hooks: &dyn ServerHandshakeHooks,
) -> Result<ServerHandshake, HandshakeError> {
    if hello.v != VERSION {
        return Err(HandshakeError::UnsupportedVersion(hello.v));
    }
    let client_pub = parse_x25519_public(&hello.enc_pub)?;
    if hello.nonce.is_empty() {
        return Err(HandshakeError::Malformed("nonce is empty".into()));
    }
    let secret = StaticSecret::from(inputs.ephemeral_secret);
    let sid = b64url_encode(&inputs.sid);
    let announced = hooks.announced_key();
    let server_pub = match announced {
        Some(key) => b64url_encode(&key.public),
        None => public_b64(&secret),
    };
    let transcript = Transcript::new(hello, &sid, &server_pub, inputs.expires_at);
    let rendered = transcript.render();
    let signature = hooks.sign(identity, hooks.signed_payload(&transcript).as_bytes());
    // The agreement with the real secret still runs under an announced key,
    // so the server's own refusal of a low-order client key is unchanged.
    let real = agree(&secret, &client_pub, hooks.refuse_low_order())?;
    let shared = announced.map_or(real, |key| key.shared);
    let keys = hooks.session_keys(&shared, rendered.as_bytes());
    Ok(ServerHandshake {
        hello: ServerHello {
            v: VERSION,
            sid: sid.clone(),
            enc_pub: server_pub,
            expires_at: inputs.expires_at,
            signature: hooks.signature_hex(&signature),
        },
        session: ServerSession::new(sid, keys, inputs.expires_at),
        transcript: rendered,
    })
}

/// The eight standard low-order X25519 points (and their non-canonical
/// twins), as 32-byte little-endian u-coordinates. Each yields an all-zero
/// shared secret (HS-7).
pub fn low_order_points() -> Vec<(&'static str, [u8; 32])> {
    fn hex32(s: &str) -> [u8; 32] {
        let v = hex::decode(s).expect("static hex");
        v.try_into().expect("32 bytes")
    }
    vec![
        ("zero", [0u8; 32]),
        ("one", {
            let mut a = [0u8; 32];
            a[0] = 1;
            a
        }),
        (
            "order-8 point a",
            hex32("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
        ),
        (
            "order-8 point b",
            hex32("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
        ),
        (
            "p-1",
            hex32("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        ),
        (
            "p",
            hex32("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        ),
        (
            "p+1",
            hex32("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::session::HonestCalls;

    struct LowOrderServer([u8; 32]);
    impl ServerHandshakeHooks for LowOrderServer {
        fn announced_key(&self) -> Option<AnnouncedKey> {
            Some(AnnouncedKey::low_order(self.0))
        }
    }

    fn identity() -> AgentIdentity {
        AgentIdentity::from_bytes(&[7u8; 32]).expect("a valid secp256k1 secret")
    }

    fn inputs() -> ServerHandshakeInputs {
        ServerHandshakeInputs {
            ephemeral_secret: [9u8; 32],
            sid: [3u8; 16],
            expires_at: i64::MAX,
        }
    }

    #[test]
    fn announced_low_order_key_is_signed_and_refused_by_an_honest_client() {
        let id = identity();
        for (name, point) in low_order_points() {
            let client = ClientHandshake::new(id.address(), [5u8; 32], [1u8; 16]);
            let server = respond(client.hello(), &id, &inputs(), &LowOrderServer(point))
                .expect("the adversary answers");
            assert_eq!(server.hello.enc_pub, b64url_encode(&point), "{name}");
            let err = match client.finish(&server.hello) {
                Ok(_) => panic!("{name}: an honest client took a low-order eS"),
                Err(e) => e,
            };
            assert!(matches!(err, HandshakeError::LowOrderKey), "{name}: {err}");
        }
    }

    #[test]
    fn a_client_that_accepts_a_low_order_key_shares_the_adversarys_keys() {
        let id = identity();
        let (_, point) = low_order_points()[2];
        let client =
            ClientHandshake::new(id.address(), [5u8; 32], [1u8; 16]).dangerous_accept_low_order();
        let mut server = respond(client.hello(), &id, &inputs(), &LowOrderServer(point))
            .expect("the adversary answers");
        let mut session = client
            .finish(&server.hello)
            .expect("the signature covers the announced key");
        assert!(session.keys() == server.session.keys(), "the same keys");
        assert!(
            session.keys() == &derive_session_keys(&[0u8; 32], server.transcript.as_bytes()),
            "keys anyone can derive from the transcript"
        );
        let call = session.seal_call_bytes(b"{}", 0).expect("seals");
        let opened = server.session.open_call(&call, 0, &HonestCalls);
        assert!(opened.is_ok(), "the server opens the client's call");
    }

    #[test]
    fn announcing_a_key_keeps_the_refusal_of_a_low_order_client_key() {
        let id = identity();
        let mut hello = ClientHandshake::new(id.address(), [5u8; 32], [1u8; 16])
            .hello()
            .clone();
        hello.enc_pub = b64url_encode(&[0u8; 32]);
        let point = low_order_points()[2].1;
        let err = respond(&hello, &id, &inputs(), &LowOrderServer(point)).err();
        assert!(matches!(err, Some(HandshakeError::LowOrderKey)), "{err:?}");
    }
}
