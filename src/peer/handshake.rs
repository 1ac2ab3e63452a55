//! Handshakes: an [`Offer`] (the ClientHello, honest or edited, and the
//! state that finishes it) and [`post_hello`] (the paced, rate-limit-aware
//! `POST /secure/session`).

use serde_json::{Map, Value};

use crate::protocol::error::HandshakeError;
use crate::protocol::handshake::{respond, ClientHandshake, HonestServer, ServerHandshakeInputs};
use crate::protocol::identity::{Address, AgentIdentity};
use crate::protocol::session::ClientSession;
use crate::protocol::wire::{ClientHello, ServerHello};
use crate::rng::RandomSource;
use crate::transport::{OuterRequest, OuterResponse, TransportError};

use super::{HandshakePacer, RateLimitPolicy, Target};

/// One ClientHello on its way out: the body that goes on the wire and the
/// client state that turns the ServerHello into a session. The honest
/// path verifies the ServerHello against the pinned address; the
/// `dangerous_*` switches are the only ways to bend that.
pub struct Offer {
    pinned: Address,
    secret: [u8; 32],
    handshake: ClientHandshake,
    body: Vec<u8>,
}

impl std::fmt::Debug for Offer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offer")
            .field("pinned", &self.pinned)
            .field("hello", self.handshake.hello())
            .finish_non_exhaustive()
    }
}

impl Offer {
    /// An honest hello from an explicit ephemeral secret and nonce.
    pub fn honest(pinned: Address, secret: [u8; 32], nonce: [u8; 16]) -> Self {
        let handshake = ClientHandshake::new(pinned, secret, nonce);
        let body = handshake.hello().to_json().into_bytes();
        Offer {
            pinned,
            secret,
            handshake,
            body,
        }
    }

    /// An honest hello with keys drawn from `rng`.
    pub fn random(pinned: Address, rng: &mut (impl RandomSource + ?Sized)) -> Self {
        let mut secret = [0u8; 32];
        let mut nonce = [0u8; 16];
        rng.fill(&mut secret);
        rng.fill(&mut nonce);
        Self::honest(pinned, secret, nonce)
    }

    /// The honest hello's fields as a JSON object, bent by `edit`, as the
    /// body. The session (if the server answers) is derived from the hello
    /// as sent, parsed back from that body.
    pub fn edited(
        pinned: Address,
        secret: [u8; 32],
        nonce: [u8; 16],
        edit: impl FnOnce(&mut Map<String, Value>),
    ) -> Self {
        let mut offer = Self::honest(pinned, secret, nonce);
        let hello = offer.handshake.hello();
        let mut fields = Map::new();
        fields.insert("v".into(), Value::from(hello.v));
        fields.insert(
            "agentAddress".into(),
            Value::from(hello.agent_address.clone()),
        );
        fields.insert("encPub".into(), Value::from(hello.enc_pub.clone()));
        fields.insert("nonce".into(), Value::from(hello.nonce.clone()));
        edit(&mut fields);
        offer.body = Value::Object(fields).to_string().into_bytes();
        offer
    }

    /// An offer whose body is `body` as given, whatever it holds.
    pub fn raw(pinned: Address, secret: [u8; 32], nonce: [u8; 16], body: Vec<u8>) -> Self {
        let mut offer = Self::honest(pinned, secret, nonce);
        offer.body = body;
        offer
    }

    /// Accepts a ServerHello whatever it proves (a client bug, CLIENT-side
    /// knob `identity-unchecked`).
    pub fn dangerous_skip_identity_check(mut self) -> Self {
        self.handshake = self.handshake.dangerous_skip_identity_check();
        self
    }

    /// Accepts a low-order server key (client knob `low-order-accepted`).
    pub fn dangerous_accept_low_order(mut self) -> Self {
        self.handshake = self.handshake.dangerous_accept_low_order();
        self
    }

    /// The honest hello this offer was built from.
    pub fn hello(&self) -> &ClientHello {
        self.handshake.hello()
    }

    /// The body that goes on the wire.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Finishes the honest hello: verifies the ServerHello against the
    /// pinned address (unless switched off) and derives the session.
    pub fn finish(self, server: &ServerHello) -> Result<ClientSession, HandshakeError> {
        self.handshake.finish(server)
    }

    /// [`Offer::finish`] with the checks `hooks` keeps.
    pub fn finish_with(
        self,
        server: &ServerHello,
        hooks: &dyn crate::protocol::client_hooks::HelloCheckHooks,
    ) -> Result<ClientSession, HandshakeError> {
        self.handshake.finish_with(server, hooks)
    }

    /// The session derived from the hello as actually sent (`sent`, parsed
    /// back from the body), the identity not checked: for a caller that
    /// judges the signature on its own and needs the keys either way. The
    /// error says why the keys cannot be had (version, `encPub`, `sid`,
    /// key agreement).
    pub fn finish_as_sent(
        &self,
        sent: &ClientHello,
        server: &ServerHello,
    ) -> Result<ClientSession, HandshakeError> {
        ClientHandshake::with_hello(self.pinned, self.secret, sent.clone())
            .dangerous_skip_identity_check()
            .finish(server)
    }
}

/// The answer to a hello, after any 429s were waited out.
#[derive(Debug, Clone)]
pub struct HelloReply {
    /// The last answer (a 429 only when the policy's retries ran out).
    pub response: OuterResponse,
    /// How many 429s were waited out on the way.
    pub rate_limited: u32,
}

/// Posts `body` to `/secure/session`: each try waits on `pacer` first, and
/// a 429 is retried as `policy` says. The relay marker follows `target`.
pub async fn post_hello(
    target: &Target,
    body: &[u8],
    pacer: &HandshakePacer,
    policy: RateLimitPolicy,
) -> Result<HelloReply, TransportError> {
    let request = target.outer(OuterRequest::post_json("/secure/session", body.to_vec()));
    let mut attempt = 0;
    loop {
        pacer.acquire().await;
        let response = target.send(&request).await?;
        if response.status == 429 {
            pacer.note_rate_limited();
        }
        match policy.wait(&response, attempt, pacer) {
            Some(wait) => {
                attempt += 1;
                tokio::time::sleep(wait).await;
            }
            None => {
                return Ok(HelloReply {
                    response,
                    rate_limited: attempt,
                })
            }
        }
    }
}

/// One full handshake in this process against the honest core server, no
/// network: what the protocol core alone costs (for `bench`). True when the
/// client verified the server.
pub fn in_process_handshake(
    identity: &AgentIdentity,
    rng: &mut (impl RandomSource + ?Sized),
) -> bool {
    let mut secret = [0u8; 32];
    let mut nonce = [0u8; 16];
    rng.fill(&mut secret);
    rng.fill(&mut nonce);
    let client = ClientHandshake::new(identity.address(), secret, nonce);
    let mut ephemeral_secret = [0u8; 32];
    let mut sid = [0u8; 16];
    rng.fill(&mut ephemeral_secret);
    rng.fill(&mut sid);
    let inputs = ServerHandshakeInputs {
        ephemeral_secret,
        sid,
        expires_at: i64::MAX / 2,
    };
    match respond(client.hello(), identity, &inputs, &HonestServer) {
        Ok(server) => client.finish(&server.hello).is_ok(),
        Err(_) => false,
    }
}
