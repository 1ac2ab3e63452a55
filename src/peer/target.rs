//! [`Target`]: one server as a client sees it.

use std::sync::Arc;

use super::HandshakePacer;
use crate::protocol::identity::Address;
use crate::transport::{self, Limits, OuterRequest, OuterResponse, StreamingResponse};
use crate::transport::{Target as Endpoint, TransportError};

/// The header that marks a request as relayed (GATE-3, CALL-10).
pub use crate::protocol::names::RELAY_ORIGIN_HEADER as RELAY_HEADER;

/// Where a server is and what the client holds for it: the one target
/// every command that reaches a server uses (`call`, `bench`, `test`,
/// `fuzz`, `replay`, `diff`). What only one command needs wraps it and
/// never repeats its fields. Every request a command sends as a client goes
/// through [`Target::send`] or [`Target::send_streaming`], so the relay
/// marker and the limits are applied in one place.
#[derive(Debug, Clone)]
pub struct Target {
    /// Where to connect (URL and base path) and how: TLS trust, HTTP
    /// version and proxy.
    pub endpoint: Endpoint,
    /// How reports name it: `self` or the URL as given.
    pub label: String,
    /// The pinned agent address: a handshake succeeds only if the server
    /// proves it holds this identity.
    pub address: Address,
    /// The access key sent inside the channel (empty when none is known).
    pub access_key: String,
    /// The agent id for routes, if one was given.
    pub agent_id: Option<String>,
    /// Whether outer requests carry [`RELAY_HEADER`].
    pub relay_origin: bool,
    /// The target is an agent reached through a relay that stamps the
    /// marker itself (`--via-relay`): no caller of it can be loopback.
    pub via_relay: bool,
    /// Connection, answer and size limits (the timeouts) for every request.
    pub limits: Limits,
    /// The handshakes it allows, N per SECS (HS-8); `None` is unlimited.
    /// Each run paces itself with a [`HandshakePacer`] built from it.
    ///
    /// [`HandshakePacer`]: super::HandshakePacer
    pub handshake_budget: Option<(u32, u64)>,
    /// Paces every request sent to the target, handshakes and calls alike
    /// (shared by every clone): the relay's per-agent budget under
    /// `--via-relay`, so the harness is not the cause of the relay's 429s.
    pub request_pacer: Option<Arc<HandshakePacer>>,
}

impl Target {
    /// A target at `endpoint` pinned to `address`, with default limits,
    /// no key, no agent id, no relay marker and no handshake budget.
    pub fn new(endpoint: Endpoint, address: Address) -> Self {
        Target {
            label: endpoint.url(),
            endpoint,
            address,
            access_key: String::new(),
            agent_id: None,
            relay_origin: false,
            via_relay: false,
            limits: Limits::default(),
            handshake_budget: None,
            request_pacer: None,
        }
    }

    /// This target with every request paced by `budget` (N per SECS),
    /// shared by every clone; `None` leaves it unpaced. `--via-relay` gives
    /// the relay's per-agent budget ([`super::relay::RELAY_AGENT_BUDGET`])
    /// unless `--relay-budget` says otherwise.
    pub fn paced_for_relay(mut self, budget: Option<(u32, u64)>) -> Self {
        self.request_pacer = budget.map(|b| Arc::new(HandshakePacer::new(Some(b))));
        self
    }

    /// Waits until one more request fits the request budget, if any.
    pub async fn pace(&self) {
        if let Some(p) = &self.request_pacer {
            p.acquire().await;
        }
    }

    /// The agent id for routes: the explicit one, else the checksummed
    /// address (what the protocol's servers accept).
    pub fn agent(&self) -> String {
        self.agent_id
            .clone()
            .unwrap_or_else(|| self.address.to_checksum())
    }

    /// `path` with `{agent}` replaced by [`Target::agent`] and `{address}`
    /// by the pinned address.
    pub fn expand(&self, path: &str) -> String {
        path.replace("{agent}", &self.agent())
            .replace("{address}", &self.address.to_string())
    }

    /// `request` with the relay marker added when this target wants it.
    pub fn outer(&self, request: OuterRequest) -> OuterRequest {
        self.outer_with(request, self.relay_origin)
    }

    /// `request` with the relay marker added when `relay`.
    pub fn outer_with(&self, mut request: OuterRequest, relay: bool) -> OuterRequest {
        if relay {
            request.headers.push((RELAY_HEADER.into(), "1".into()));
        }
        request
    }

    /// Sends `request` as given (no marker added) and buffers the answer.
    pub async fn send(&self, request: &OuterRequest) -> Result<OuterResponse, TransportError> {
        self.pace().await;
        transport::send(&self.endpoint, request, &self.limits).await
    }

    /// Sends `request` as given and returns the answer's head, the body to
    /// be read in chunks.
    pub async fn send_streaming(
        &self,
        request: &OuterRequest,
    ) -> Result<StreamingResponse, TransportError> {
        self.pace().await;
        transport::send_streaming(&self.endpoint, request, &self.limits).await
    }

    /// Writes `bytes` as they are and returns whatever came back, with
    /// `limits` instead of the target's own.
    pub async fn send_raw(&self, bytes: &[u8], limits: &Limits) -> Result<Vec<u8>, TransportError> {
        self.pace().await;
        transport::send_raw(&self.endpoint, bytes, limits).await
    }
}
