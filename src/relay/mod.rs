//! `osc-harness relay`: a relay that keeps the Osaurus relay's documented
//! contract on both sides of its tunnel, and checks, as `mitm` does, what
//! it carries. Agents' hosts sign in over the tunnel ([`tunnel`]); callers
//! reach an agent by the `Host` subdomain `0x<address>.<domain>`
//! ([`route`]). Every frame it carries is scanned for canaries (the access
//! key, the prompt): a blind pipe never sees one. `--attack` bends one
//! step of the faithful relay ([`RelayAttack`]); [`matrix`] shows each
//! caught on real traffic.

mod attack;
pub mod cli;
pub mod matrix;
mod route;
mod tunnel;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::mitm::{CanaryScan, Conclusion};
use crate::tunnel::Frame;

pub use attack::{Catch, RelayAttack};

/// The public relay's rate limit per agent address, per minute.
pub const DEFAULT_AGENT_RATE: u32 = 100;
/// The public relay's rate limit per caller IP, per minute.
pub const DEFAULT_CALLER_RATE: u32 = 300;
/// Most agents one tunnel may sign in.
pub const MAX_AGENTS_PER_TUNNEL: usize = 50;
/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 512;

/// What the relay is told to do.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The domain agents are subdomains of (`0x<address>.<domain>`).
    pub base_domain: String,
    /// Requests per minute per agent address; `None` is off.
    pub agent_rate: Option<u32>,
    /// Requests per minute per caller IP; `None` is off.
    pub caller_rate: Option<u32>,
    /// No first answer frame within this: 504 `gateway_timeout`.
    pub first_byte_timeout: Duration,
    /// A stream without a chunk for this long ends cleanly.
    pub idle_timeout: Duration,
    /// How often the relay pings each tunnel.
    pub ping_interval: Duration,
    /// The region and machine names in the `x-relay-*` headers.
    pub region: String,
    /// See `region`.
    pub machine: String,
    /// Active attacks (empty: a faithful, checking relay).
    pub attacks: BTreeSet<RelayAttack>,
    /// Strings that must never appear in a frame: the access key, a prompt.
    pub canaries: Vec<String>,
}

impl RelayConfig {
    /// A faithful relay on `listen` for `base_domain` with the public
    /// relay's limits and timeouts.
    pub fn new(listen: SocketAddr, base_domain: &str) -> Self {
        RelayConfig {
            listen,
            base_domain: base_domain.trim_matches('.').to_ascii_lowercase(),
            agent_rate: Some(DEFAULT_AGENT_RATE),
            caller_rate: Some(DEFAULT_CALLER_RATE),
            first_byte_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(30),
            region: "loopback".into(),
            machine: "osc-harness".into(),
            attacks: BTreeSet::new(),
            canaries: Vec::new(),
        }
    }
}

/// What the relay carried: counts, and what the checks found. No bodies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// Tunnels that signed in.
    pub tunnels: u64,
    /// Sign-ins refused (bad signature, nonce or clock).
    pub sign_ins_refused: u64,
    /// Requests carried to a host.
    pub requests: u64,
    /// Of them, `/secure/session`.
    pub handshakes: u64,
    /// Of them, `/secure/call`.
    pub calls: u64,
    /// Whole answers from hosts.
    pub responses: u64,
    /// Event streams from hosts.
    pub streams: u64,
    /// Stream chunks from hosts.
    pub chunks: u64,
    /// Frames carried either way (requests and answers).
    pub frames: u64,
    /// Bytes of frame text carried either way.
    pub frame_bytes: u64,
    /// Answers the relay made itself, by code (`rate_limited`, …).
    pub own_answers: Vec<String>,
    /// The host's status for each replayed request frame.
    pub replay_statuses: Vec<u16>,
    /// Streams an attack edited (duplicate, reorder, cut, …).
    pub streams_edited: u64,
    /// Answers the relay forged in the agent's place.
    pub forged_answers: u64,
    /// Requests carried to another agent's tunnel.
    pub crossed: u64,
    /// Canary sightings: which canary in which frame type.
    pub canary_hits: Vec<String>,
}

/// How many entries a list in [`Observed`] keeps.
const MAX_LISTED: usize = 100;

fn push_bounded<T>(list: &mut Vec<T>, item: T) {
    if list.len() < MAX_LISTED {
        list.push(item);
    }
}

/// One signed-in tunnel as the caller side uses it.
pub(crate) struct Tunnel {
    /// Frames to the host (the tunnel's one writer reads them).
    pub(crate) to_host: mpsc::Sender<Frame>,
    /// Requests waiting for the host's answer, by id.
    pub(crate) pending: Mutex<HashMap<String, mpsc::Sender<Frame>>>,
    /// Told to close with `relay_restarting` when the relay stops.
    pub(crate) restart: watch::Receiver<bool>,
}

/// A per-minute window of request times for one key.
#[derive(Default)]
struct Window(VecDeque<Instant>);

impl Window {
    fn allow(&mut self, now: Instant, per_minute: u32) -> bool {
        while self
            .0
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.0.pop_front();
        }
        if self.0.len() >= per_minute as usize {
            return false;
        }
        self.0.push_back(now);
        true
    }
}

/// Shared state of a running relay.
pub(crate) struct State {
    pub(crate) config: RelayConfig,
    pub(crate) port: u16,
    /// Signed-in agents (lower-case address) and their tunnels.
    agents: Mutex<HashMap<String, Arc<Tunnel>>>,
    /// Nonces sent and not yet used.
    nonces: Mutex<HashMap<String, Instant>>,
    observed: Mutex<Observed>,
    windows: Mutex<HashMap<String, Window>>,
    next_id: std::sync::atomic::AtomicU64,
    pub(crate) restart: watch::Sender<bool>,
}

impl State {
    pub(crate) fn has(&self, attack: RelayAttack) -> bool {
        self.config.attacks.contains(&attack)
    }

    pub(crate) fn observe<T>(&self, f: impl FnOnce(&mut Observed) -> T) -> T {
        f(&mut lock(&self.observed))
    }

    /// Counts one frame carried and scans its text for canaries.
    pub(crate) fn carried(&self, frame: &Frame, text: &str) {
        let hits = CanaryScan::new(&self.config.canaries).feed(text.as_bytes());
        self.observe(|o| {
            o.frames += 1;
            o.frame_bytes += text.len() as u64;
            for i in hits {
                push_bounded(
                    &mut o.canary_hits,
                    format!("canary #{} in a {} frame", i + 1, frame.kind()),
                );
            }
        });
    }

    pub(crate) fn own_answer(&self, code: &str) {
        self.observe(|o| push_bounded(&mut o.own_answers, code.to_string()));
    }

    /// The next request id.
    pub(crate) fn next_id(&self) -> String {
        let n = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("r{n}")
    }

    /// Whether a request from `caller` to `agent` is within the limits.
    pub(crate) fn allow(&self, agent: &str, caller: &str) -> bool {
        let now = Instant::now();
        let mut w = lock(&self.windows);
        if w.len() > 100_000 {
            w.clear();
        }
        if let Some(rate) = self.config.agent_rate {
            if !w
                .entry(format!("agent:{agent}"))
                .or_default()
                .allow(now, rate)
            {
                return false;
            }
        }
        if let Some(rate) = self.config.caller_rate {
            if !w
                .entry(format!("caller:{caller}"))
                .or_default()
                .allow(now, rate)
            {
                return false;
            }
        }
        true
    }

    pub(crate) fn tunnel_for(&self, address: &str) -> Option<Arc<Tunnel>> {
        lock(&self.agents).get(address).cloned()
    }

    /// Another agent's tunnel than `address`'s, for `cross-agents`.
    pub(crate) fn other_tunnel(&self, address: &str) -> Option<Arc<Tunnel>> {
        let agents = lock(&self.agents);
        let own = agents.get(address)?;
        agents
            .iter()
            .filter(|(a, t)| a.as_str() != address && !Arc::ptr_eq(t, own))
            .min_by(|a, b| a.0.cmp(b.0))
            .map(|(_, t)| t.clone())
    }

    /// How many agents are signed in.
    pub(crate) fn agents_count(&self) -> usize {
        lock(&self.agents).len()
    }

    /// The public URL of an agent.
    pub(crate) fn agent_url(&self, address: &str) -> String {
        format!("http://{address}.{}:{}", self.config.base_domain, self.port)
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
}

/// A relay running in this process. Dropping it stops the relay.
pub struct RunningRelay {
    /// The relay's base URL, e.g. `http://127.0.0.1:41235`.
    pub url: String,
    /// The tunnel URL hosts connect to (`ws://…/tunnel/connect`).
    pub tunnel_url: String,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RunningRelay {
    /// A copy of what the relay has carried so far.
    pub fn observed(&self) -> Observed {
        self.state.observe(|o| o.clone())
    }

    /// The agent's public URL at this relay.
    pub fn agent_url(&self, address: &crate::protocol::identity::Address) -> String {
        self.state.agent_url(&address.to_lower())
    }

    /// The attacks in force.
    pub fn attacks(&self) -> Vec<RelayAttack> {
        self.state.config.attacks.iter().copied().collect()
    }

    /// How many agents are signed in now.
    pub fn agents_online(&self) -> usize {
        lock(&self.state.agents).len()
    }

    /// Assesses the run so far; see [`assess`].
    pub fn assessment(&self) -> Assessment {
        assess(&self.state.config.attacks, &self.observed())
    }

    /// Tells every tunnel the relay is restarting (error frame, close code
    /// 1012), stops accepting and waits for the accept loop.
    pub async fn shutdown(mut self) {
        let _ = self.state.restart.send(true);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningRelay {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Whether the blind pipe held and what each attack came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assessment {
    /// The worst of the blind-pipe check and every attack.
    pub outcome: Conclusion,
    /// The blind-pipe check alone: broken when a canary was in a frame.
    pub blind_pipe: Conclusion,
    /// Each attack in force with its own outcome.
    #[serde(serialize_with = "by_name")]
    pub attacks: Vec<(RelayAttack, Conclusion)>,
}

fn by_name<S: serde::Serializer>(v: &[(RelayAttack, Conclusion)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|(a, o)| (a.name(), o)))
}

fn rank(c: &Conclusion) -> u8 {
    match c {
        Conclusion::Held => 0,
        Conclusion::ClientMustTell => 1,
        Conclusion::NotApplicable(_) => 2,
        Conclusion::Inconclusive(_) => 3,
        Conclusion::Broken => 4,
    }
}

fn assess_attack(a: RelayAttack, o: &Observed) -> Conclusion {
    let nothing =
        |what: &str| Conclusion::Inconclusive(format!("{a} had nothing to act on: {what}"));
    match a {
        RelayAttack::ReplayRequest if o.replay_statuses.is_empty() => nothing("no call crossed"),
        RelayAttack::ReplayRequest if o.replay_statuses.iter().all(|s| *s == 409) => {
            Conclusion::Held
        }
        RelayAttack::ReplayRequest => Conclusion::Broken,
        RelayAttack::DuplicateChunk | RelayAttack::ReorderChunks | RelayAttack::CutMidStream
            if o.streams_edited == 0 =>
        {
            Conclusion::NotApplicable(format!(
                "{a} edits event streams, and no stream long enough crossed"
            ))
        }
        RelayAttack::DuplicateChunk | RelayAttack::ReorderChunks | RelayAttack::CutMidStream => {
            Conclusion::ClientMustTell
        }
        RelayAttack::Answer401 | RelayAttack::Answer409 | RelayAttack::Answer429
            if o.forged_answers == 0 =>
        {
            nothing("no request it answers crossed")
        }
        RelayAttack::Answer401 | RelayAttack::Answer409 | RelayAttack::Answer429 => {
            Conclusion::ClientMustTell
        }
        RelayAttack::CrossAgents if o.crossed == 0 => {
            nothing("no request found a second agent to cross to")
        }
        RelayAttack::CrossAgents => Conclusion::ClientMustTell,
        RelayAttack::SplitChunks | RelayAttack::CoalesceChunks | RelayAttack::DropStreamEnd
            if o.streams == 0 =>
        {
            Conclusion::NotApplicable(format!("{a} edits event streams, and none crossed"))
        }
        RelayAttack::SplitChunks | RelayAttack::CoalesceChunks | RelayAttack::DropStreamEnd => {
            Conclusion::Held
        }
    }
}

/// Assesses what the relay carried: the blind-pipe check (no canary in
/// any frame) and each attack in force. A relay that carried nothing
/// judged nothing.
pub fn assess(attacks: &BTreeSet<RelayAttack>, o: &Observed) -> Assessment {
    let blind_pipe = if !o.canary_hits.is_empty() {
        Conclusion::Broken
    } else if o.requests == 0 {
        Conclusion::Inconclusive("the relay carried no request".into())
    } else {
        Conclusion::Held
    };
    let mut outcome = blind_pipe.clone();
    let mut judged = Vec::new();
    for a in attacks {
        let one = assess_attack(*a, o);
        if rank(&one) > rank(&outcome) {
            outcome = one.clone();
        }
        judged.push((*a, one));
    }
    Assessment {
        outcome,
        blind_pipe,
        attacks: judged,
    }
}

/// Starts the relay on `config.listen`. Must be called inside a runtime.
pub async fn spawn(config: RelayConfig) -> Result<RunningRelay, RelayError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| RelayError::Bind {
            addr: config.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| RelayError::Bind {
        addr: config.listen,
        source,
    })?;
    let shown = if local.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], local.port()))
    } else {
        local
    };
    let (restart, _) = watch::channel(false);
    let state = Arc::new(State {
        config,
        port: local.port(),
        agents: Mutex::default(),
        nonces: Mutex::default(),
        observed: Mutex::default(),
        windows: Mutex::default(),
        next_id: std::sync::atomic::AtomicU64::new(1),
        restart,
    });
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(route::accept_loop(listener, state.clone(), stop_rx));
    Ok(RunningRelay {
        url: format!("http://{shown}"),
        tunnel_url: format!("ws://{shown}{}", crate::tunnel::TUNNEL_PATH),
        state,
        stop,
        task: Some(task),
    })
}
