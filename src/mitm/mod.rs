//! `osc-harness mitm`: a relay between a real client and a real server
//! that carries bytes as the Osaurus relay would, checks what a relay can
//! check, and optionally attacks the traffic (one [`Attack`] bends one
//! step of the faithful relay).
//!
//! The same relay, put in front of the reference server, is the network
//! side of the client-role scenarios (`crate::clientrole`).

mod attack;
mod body;
pub mod cli;
mod edits;
mod fake;
mod http_log;
mod relay;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::protocol::wire::CallRequest;
use crate::transport::{Limits, Target};

pub use attack::Attack;
pub use body::CanaryScan;
pub use relay::MAX_REQUEST_BYTES;

/// How many connections the relay serves at once; more wait in the backlog.
pub const MAX_CONNECTIONS: usize = 256;

/// What the relay is told to do.
#[derive(Debug, Clone)]
pub struct MitmConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The real server.
    pub upstream: Target,
    /// Active attacks (empty: a passive, checking relay).
    pub attacks: BTreeSet<Attack>,
    /// Strings that must never cross the relay in plaintext.
    pub canaries: Vec<String>,
    /// The agent id used by the `plaintext` attack's agent route.
    pub agent_id: String,
    /// The access key the `plaintext` attack presents, as a relay that
    /// somehow learnt it would; without it the server's access-key check
    /// (which runs before the 426 gate, GATE-6) answers first.
    pub plaintext_key: Option<String>,
    /// Limits of each upstream exchange.
    pub limits: Limits,
    /// Where to append the JSON log (one object per exchange), if anywhere.
    pub log: Option<PathBuf>,
    /// TLS for the listener (`--listen-tls-self-signed`); `None` is plain.
    pub tls: Option<crate::transport::tls::ServerTls>,
}

/// What the relay saw. Counts only; no plaintext and no ciphertext.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// `POST /secure/session` requests from the client.
    pub handshakes: u64,
    /// `POST /secure/call` requests from the client.
    pub calls: u64,
    /// Requests to any other route.
    pub plaintext_requests: u64,
    /// ServerHellos the relay changed.
    pub tampered_hellos: u64,
    /// Handshakes answered 200 with a ServerHello (tampered or not) that
    /// the relay passed on to the client.
    pub hellos_answered: u64,
    /// Calls made on a session whose hello the relay changed (a client that
    /// checked the hello makes none).
    pub calls_on_tampered_sessions: u64,
    /// Call envelopes the client sent byte for byte again.
    pub resent_envelopes: u64,
    /// Calls whose seq did not rise above an earlier call's on the same
    /// session (CALL-1), resent envelopes included.
    pub seqs_not_rising: u64,
    /// The server's status for each replayed call.
    pub replay_statuses: Vec<u16>,
    /// The server's status for each plaintext request made in place of a call.
    pub plaintext_statuses: Vec<u16>,
    /// The judge's findings on the server's answers to the attacks (a
    /// replayed call, a plaintext request in place of a call): each cites
    /// the requirement and level the suite cites for the same answer.
    pub server_findings: Vec<ServerFinding>,
    /// Responses that ended without a frame marked fin (as the server sent them).
    pub responses_without_fin: u64,
    /// Response bodies carried to the client to their end.
    pub responses_delivered: u64,
    /// Responses the client stopped reading before their end.
    pub client_hung_up: u64,
    /// Call responses that were event streams.
    pub streamed_responses: u64,
    /// Event streams of two frames or more (what `reorder` needs).
    pub multi_frame_streams: u64,
    /// Bytes from client to server (bodies).
    pub bytes_up: u64,
    /// Bytes from server to client (bodies).
    pub bytes_down: u64,
    /// Failed passive checks, each a sentence.
    pub problems: Vec<String>,
    /// Canary sightings: which canary (by index) in which direction.
    pub canary_hits: Vec<String>,
}

/// A server answer to an attack that the judge finds wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerFinding {
    /// The attack the answer was to.
    #[serde(serialize_with = "attack_name")]
    pub attack: Attack,
    /// The requirement ID(s) broken.
    pub requirement: String,
    /// Their level: only a MUST miss breaks the protocol.
    pub level: crate::report::Level,
    /// What the protocol fixes for the answer.
    pub expected: String,
    /// What the server answered.
    pub actual: String,
}

fn attack_name<S: serde::Serializer>(a: &Attack, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a.name())
}

/// Holds the server's answer to attack `a` against the refusal the
/// protocol fixes for it, with the judge's own check
/// ([`crate::judge::order`]): a replayed call must get `409 secure_replay`
/// (CALL-3); a plaintext agent run in place of a call must meet the 426
/// gate (GATE-1) when it carries the access key, and the key check's 401
/// first (GATE-6) when it does not. `None`: the answer is the one fixed,
/// or the attack is not judged by the server's answer.
pub fn judge_server_answer(
    a: Attack,
    with_key: bool,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> Option<ServerFinding> {
    use crate::judge::order;
    if a == Attack::Plaintext && with_key && status == 401 {
        // mitm cannot tell a key the server refuses from a gate that
        // answers 401 to every key: the suite, which checks the key inside
        // the channel first, judges GATE-1; here it is only noted.
        return Some(ServerFinding {
            attack: a,
            requirement: order::PLAIN_RUN_WITHOUT_KEY.requirement.to_string(),
            level: order::PLAIN_RUN_WITHOUT_KEY.level,
            expected: format!(
                "{} {} once the key is accepted ({})",
                order::PLAIN_RUN_GATED.status,
                order::PLAIN_RUN_GATED.error,
                order::PLAIN_RUN_GATED.requirement
            ),
            actual: "401: the key given with --plaintext-key was refused, so the 426 gate \
                     was not reached (check the key)"
                .to_string(),
        });
    }
    let fixed = match a {
        Attack::Replay => order::CALL_REPLAYED,
        Attack::Plaintext if with_key => order::PLAIN_RUN_GATED,
        Attack::Plaintext => order::PLAIN_RUN_WITHOUT_KEY,
        _ => return None,
    };
    order::check(&fixed, status, headers, body)
        .err()
        .map(|miss| ServerFinding {
            attack: a,
            requirement: miss.requirement,
            level: miss.level,
            expected: miss.expected,
            actual: miss.actual,
        })
}

/// One line of the JSON log: sizes and timing only.
#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    /// Milliseconds since the relay started.
    pub at_ms: u64,
    /// The request method.
    pub method: String,
    /// `/secure/session`, `/secure/call` or `(plaintext route)`.
    pub route: String,
    /// The status sent to the client.
    pub status: u16,
    /// Request body bytes.
    pub request_bytes: usize,
    /// Response body bytes received from the server (or made up).
    pub response_bytes: usize,
    /// Milliseconds until the response ended.
    pub duration_ms: u64,
    /// Whether the response was an event stream.
    pub streamed: bool,
    /// The exchange's place in the relay's HTTP log (not logged).
    #[serde(skip)]
    pub(crate) slot: Option<usize>,
}

/// Shared state of a running relay.
pub struct State {
    config: MitmConfig,
    started: Instant,
    observed: Mutex<Observed>,
    tampered_sids: Mutex<BTreeSet<String>>,
    highest_seq: Mutex<BTreeMap<String, u64>>,
    seen_envelopes: Mutex<Vec<Vec<u8>>>,
    log: Mutex<Option<std::fs::File>>,
    /// The first call's response, kept for `foreign-frames`.
    captured: Mutex<Option<crate::transport::OuterResponse>>,
    http_log: Mutex<http_log::HttpLog>,
}

/// How many recent envelopes are remembered to spot a resent one.
const REMEMBERED_ENVELOPES: usize = 256;

/// How many problems are kept (the count of the rest is still right).
const MAX_PROBLEMS: usize = 100;

impl State {
    fn has(&self, attack: Attack) -> bool {
        self.config.attacks.contains(&attack)
    }

    fn observe<T>(&self, f: impl FnOnce(&mut Observed) -> T) -> T {
        let mut o = self.observed.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut o)
    }

    fn problem(&self, text: String) {
        self.observe(|o| {
            if o.problems.len() < MAX_PROBLEMS {
                o.problems.push(text)
            }
        });
    }

    fn canary_hits(&self, found: Vec<usize>, direction: &str) {
        for i in found {
            self.observe(|o| {
                if o.canary_hits.len() < MAX_PROBLEMS {
                    o.canary_hits
                        .push(format!("canary #{} seen {direction}", i + 1))
                }
            });
        }
    }

    fn add_bytes_up(&self, n: usize) {
        self.observe(|o| o.bytes_up += n as u64);
    }

    fn add_bytes_down(&self, n: usize) {
        self.observe(|o| o.bytes_down += n as u64);
    }

    fn tampered_sids_insert(&self, sid: String) {
        let mut s = self.tampered_sids.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() < REMEMBERED_ENVELOPES {
            s.insert(sid);
        }
    }

    /// The passive checks of a call envelope: well formed, seq rising per
    /// session, not a copy of an earlier one. What it finds is noted on
    /// the exchange in `slot`.
    fn check_envelope(&self, body: &[u8], slot: Option<usize>) {
        let resent = {
            let mut seen = self
                .seen_envelopes
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let resent = seen.iter().any(|b| b == body);
            if !resent {
                if seen.len() >= REMEMBERED_ENVELOPES {
                    seen.remove(0);
                }
                seen.push(body.to_vec());
            }
            resent
        };
        if resent {
            self.observe(|o| o.resent_envelopes += 1);
            self.problem("the client sent a call envelope again, byte for byte".into());
            self.note(
                slot,
                "the client sent this envelope before, byte for byte".into(),
            );
        }
        let call = match CallRequest::parse(body) {
            Ok(c) => c,
            Err(e) => {
                self.problem(format!("a call envelope is malformed: {e}"));
                self.note(slot, format!("malformed envelope: {e}"));
                return;
            }
        };
        if self
            .tampered_sids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&call.sid)
        {
            self.observe(|o| o.calls_on_tampered_sessions += 1);
            self.note(
                slot,
                "a call on a session whose ServerHello was tampered with".into(),
            );
        }
        let mut highest = self.highest_seq.lock().unwrap_or_else(|e| e.into_inner());
        let prev = highest.get(&call.sid).copied();
        let session = http_log::short_sid(&call.sid);
        match prev {
            Some(p) if call.seq <= p => {
                drop(highest);
                self.observe(|o| o.seqs_not_rising += 1);
                self.problem(format!(
                    "call seq {} of a session does not rise above {p}",
                    call.seq
                ));
                self.note(
                    slot,
                    format!(
                        "seq {} on session {session} does not rise above {p} (CALL-1)",
                        call.seq
                    ),
                );
                return;
            }
            _ => self.note(slot, format!("seq {} on session {session}", call.seq)),
        }
        if prev.is_none() && highest.len() >= REMEMBERED_ENVELOPES {
            // Forget the oldest-named session rather than grow without bound.
            if let Some(k) = highest.keys().next().cloned() {
                highest.remove(&k);
            }
        }
        highest.insert(call.sid, call.seq);
    }

    fn log(&self, entry: LogEntry) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(file) = log.as_mut() {
            if let Ok(line) = serde_json::to_string(&entry) {
                let _ = writeln!(file, "{line}");
            }
        }
    }

    fn finish_full(
        &self,
        mut entry: LogEntry,
        started: Instant,
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> hyper::Response<crate::transport::OutBody> {
        let mut scan = CanaryScan::new(&self.config.canaries);
        self.canary_hits(scan.feed(&body), "server to client");
        self.add_bytes_down(body.len());
        entry.status = status;
        entry.response_bytes = body.len();
        entry.duration_ms = started.elapsed().as_millis() as u64;
        self.close(
            entry.slot,
            status,
            http_log::body_text(&body, &self.config.canaries),
        );
        self.log(entry);
        self.observe(|o| o.responses_delivered += 1);
        relay::build(status, &headers, crate::transport::OutBody::full(body))
    }
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum MitmError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The log file could not be opened.
    #[error("cannot open the log file {path}: {source}")]
    Log {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
}

/// A relay running in this process. Dropping it stops the relay.
pub struct RunningMitm {
    /// The relay's base URL, e.g. `http://127.0.0.1:41235`.
    pub url: String,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RunningMitm {
    /// A copy of what the relay has seen so far.
    pub fn observed(&self) -> Observed {
        self.state.observe(|o| o.clone())
    }

    /// Every exchange the client made so far, in the order it made them
    /// (bounded; bodies truncated, canaries redacted). Waits up to `grace`
    /// for responses still being relayed, so a stream that ends just as
    /// the client exits is shown with its end.
    pub async fn http_log(&self, grace: std::time::Duration) -> Vec<crate::report::Exchange> {
        let until = Instant::now() + grace;
        while self.state.open_exchanges() > 0 && Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.state.log_snapshot()
    }

    /// The attacks in force.
    pub fn attacks(&self) -> Vec<Attack> {
        self.state.config.attacks.iter().copied().collect()
    }

    /// Assesses the run so far; see [`assess`].
    pub fn assessment(&self) -> Assessment {
        assess(&self.state.config.attacks, &self.observed())
    }

    /// Stops accepting and waits for the accept loop.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningMitm {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// What the relay concludes, as far as it can tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "why", rename_all = "kebab-case")]
pub enum Conclusion {
    /// Every check held and every attack was refused.
    Held,
    /// A check failed or an attack got through.
    Broken,
    /// The attack reached the client; only the client can tell whether it
    /// noticed (it must have reported an error).
    ClientMustTell,
    /// Nothing to judge (no traffic, or nothing the attack needs): why.
    Inconclusive(String),
    /// The attack cannot apply to the traffic seen (e.g. `reorder` on
    /// buffered answers): why.
    NotApplicable(String),
}

impl Conclusion {
    /// How bad an outcome is when several attacks are combined: a break
    /// wins, then anything that judged nothing, then the client's word.
    fn rank(&self) -> u8 {
        match self {
            Conclusion::Held => 0,
            Conclusion::ClientMustTell => 1,
            Conclusion::NotApplicable(_) => 2,
            Conclusion::Inconclusive(_) => 3,
            Conclusion::Broken => 4,
        }
    }

    /// The exit code of `mitm`: 0 held (or only the client can tell), 1
    /// broken, 3 nothing judged (inconclusive or not applicable).
    pub fn exit_code(&self) -> u8 {
        match self {
            Conclusion::Held | Conclusion::ClientMustTell => 0,
            Conclusion::Broken => 1,
            Conclusion::Inconclusive(_) | Conclusion::NotApplicable(_) => 3,
        }
    }

    /// The outcome in words, as the summary prints it.
    pub fn describe(&self) -> String {
        match self {
            Conclusion::Held => "the protocol held".into(),
            Conclusion::Broken => "the protocol did NOT hold".into(),
            Conclusion::ClientMustTell => {
                "only the client can tell: it must have reported an error".into()
            }
            Conclusion::Inconclusive(why) => format!("inconclusive: {why}"),
            Conclusion::NotApplicable(why) => format!("not applicable: {why}"),
        }
    }
}

/// Whether the protocol held, as far as the relay can tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assessment {
    /// The whole run's outcome: the worst of the passive checks and of
    /// each attack (see [`Conclusion`]).
    pub outcome: Conclusion,
    /// Each attack in force with its own outcome.
    #[serde(serialize_with = "by_name")]
    pub attacks: Vec<(Attack, Conclusion)>,
    /// What the server did, in a sentence.
    pub server: String,
    /// What the client did, as far as the relay saw.
    pub client: String,
}

fn by_name<S: serde::Serializer>(v: &[(Attack, Conclusion)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|(a, o)| (a.name(), o)))
}

/// One attack judged against what the relay saw; `server` is set when the
/// attack is about the server's answers.
fn assess_attack(a: Attack, o: &Observed, server: &mut String) -> Conclusion {
    let no_call = || {
        Conclusion::Inconclusive(format!(
            "no call crossed the relay, so {a} had nothing to act on"
        ))
    };
    match a {
        Attack::Replay => {
            *server = format!("answered the replayed call(s) with {:?}", o.replay_statuses);
            judged_by_server(a, o.replay_statuses.is_empty(), o, server).unwrap_or_else(no_call)
        }
        Attack::Plaintext => {
            *server = format!(
                "answered the plaintext agent request(s) with {:?}",
                o.plaintext_statuses
            );
            judged_by_server(a, o.plaintext_statuses.is_empty(), o, server)
                .unwrap_or_else(no_call)
        }
        Attack::SwapServerKey | Attack::EditSid | Attack::EditExp | Attack::HelloV2 => {
            if o.tampered_hellos == 0 {
                Conclusion::Inconclusive(format!(
                    "no ServerHello crossed the relay, so {a} had nothing to act on"
                ))
            } else if o.calls_on_tampered_sessions == 0 {
                Conclusion::Held
            } else {
                Conclusion::Broken
            }
        }
        Attack::DropFin | Attack::CutMidFrame if o.calls == 0 => no_call(),
        Attack::DropFin | Attack::CutMidFrame => Conclusion::ClientMustTell,
        Attack::Reorder | Attack::Duplicate if o.calls == 0 => no_call(),
        Attack::Reorder if o.multi_frame_streams == 0 => Conclusion::NotApplicable(
            "reorder swaps the first two frames of a stream, and no answer was a stream of two frames or more (a buffered answer is one frame)".into(),
        ),
        Attack::Duplicate if o.streamed_responses == 0 => Conclusion::NotApplicable(
            "duplicate repeats the first frame of a stream, and every answer was buffered (one frame)".into(),
        ),
        Attack::Reorder | Attack::Duplicate => Conclusion::ClientMustTell,
        _ => Conclusion::Held,
    }
}

/// The outcome of an attack judged by the server's answers (`None` when
/// there were none): broken on a MUST finding of the judge, held
/// otherwise. Every finding is told in `server` with its requirement and
/// level.
fn judged_by_server(
    a: Attack,
    none: bool,
    o: &Observed,
    server: &mut String,
) -> Option<Conclusion> {
    if none {
        return None;
    }
    let mut outcome = Conclusion::Held;
    for f in o.server_findings.iter().filter(|f| f.attack == a) {
        server.push_str(&format!(
            "; {} {}: expected {}, got {}",
            f.requirement,
            f.level.name(),
            f.expected,
            f.actual
        ));
        if f.level == crate::report::Level::Must {
            outcome = Conclusion::Broken;
        }
    }
    Some(outcome)
}

/// Assesses the attacks in force against what the relay saw. A relay that
/// saw no traffic judged nothing: its outcome is inconclusive.
pub fn assess(attacks: &BTreeSet<Attack>, o: &Observed) -> Assessment {
    let client = format!(
        "{} handshake(s), {} call(s), {} plaintext request(s), {} response(s) read to the end, {} abandoned",
        o.handshakes, o.calls, o.plaintext_requests, o.responses_delivered, o.client_hung_up
    );
    if o.handshakes == 0 && o.calls == 0 && o.plaintext_requests == 0 {
        return Assessment {
            outcome: Conclusion::Inconclusive(
                "the relay saw no traffic (no client sent a request through it)".into(),
            ),
            attacks: attacks
                .iter()
                .map(|a| (*a, Conclusion::Inconclusive("no traffic".into())))
                .collect(),
            server: "was sent nothing".into(),
            client,
        };
    }
    // Under an attack the passive checks are expected to trip; a canary
    // in plaintext is a break whatever is in force.
    let active = attacks.iter().any(|a| a.is_mitm());
    let clean = o.canary_hits.is_empty();
    let mut outcome = if clean && (active || o.problems.is_empty()) {
        Conclusion::Held
    } else {
        Conclusion::Broken
    };
    let mut server = "answered every request it was sent".to_string();
    let mut judged = Vec::new();
    for a in attacks {
        let one = assess_attack(*a, o, &mut server);
        if one.rank() > outcome.rank() {
            outcome = one.clone();
        }
        judged.push((*a, one));
    }
    Assessment {
        outcome,
        attacks: judged,
        server,
        client,
    }
}

/// Starts the relay on `config.listen`. Must be called inside a tokio runtime.
pub async fn spawn(config: MitmConfig) -> Result<RunningMitm, MitmError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| MitmError::Bind {
            addr: config.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| MitmError::Bind {
        addr: config.listen,
        source,
    })?;
    let log = match &config.log {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| MitmError::Log {
                    path: path.clone(),
                    source,
                })?,
        ),
        None => None,
    };
    let shown = if local.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], local.port()))
    } else {
        local
    };
    let state = Arc::new(State {
        config,
        started: Instant::now(),
        observed: Mutex::new(Observed::default()),
        tampered_sids: Mutex::new(BTreeSet::new()),
        highest_seq: Mutex::new(BTreeMap::new()),
        seen_envelopes: Mutex::new(Vec::new()),
        log: Mutex::new(log),
        captured: Mutex::new(None),
        http_log: Mutex::new(http_log::HttpLog::default()),
    });
    let scheme = if state.config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, state.clone(), stop_rx));
    Ok(RunningMitm {
        url: format!("{scheme}://{shown}"),
        state,
        stop,
        task: Some(task),
    })
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, mut stop: watch::Receiver<bool>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let stream = match &state.config.tls {
                None => crate::transport::Stream::Plain(stream),
                Some(tls) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
                    let accept = acceptor.accept(stream);
                    match tokio::time::timeout(std::time::Duration::from_secs(10), accept).await {
                        Ok(Ok(s)) => crate::transport::Stream::Tls(Box::new(
                            tokio_rustls::TlsStream::Server(s),
                        )),
                        _ => return,
                    }
                }
            };
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(relay::handle(state, req).await) }
            });
            let _ = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .keep_alive(false)
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Level;

    fn json() -> Vec<(String, String)> {
        vec![("content-type".into(), "application/json".into())]
    }

    const REPLAY_409: &[u8] = br#"{"error":{"code":"secure_replay","message":"Replayed secure call rejected","type":"secure_channel_error"}}"#;

    fn replayed(status: u16, body: &[u8]) -> Observed {
        Observed {
            calls: 1,
            replay_statuses: vec![status],
            server_findings: judge_server_answer(Attack::Replay, false, status, &json(), body)
                .into_iter()
                .collect(),
            ..Observed::default()
        }
    }

    #[test]
    fn a_replay_is_judged_by_the_suites_check_and_cites_its_requirement() {
        assert_eq!(
            judge_server_answer(Attack::Replay, false, 409, &json(), REPLAY_409),
            None
        );
        let attacks = BTreeSet::from([Attack::Replay]);
        assert_eq!(
            assess(&attacks, &replayed(409, REPLAY_409)).outcome,
            Conclusion::Held
        );
        // A replay the server executed again breaks CALL-3, a MUST, as
        // `replay-same-envelope` judges it.
        let executed = replayed(200, b"{}");
        let f = &executed.server_findings[0];
        assert_eq!((f.requirement.as_str(), f.level), ("CALL-3", Level::Must));
        let verdict = assess(&attacks, &executed);
        assert_eq!(verdict.outcome, Conclusion::Broken);
        assert!(verdict.server.contains("CALL-3 MUST"), "{}", verdict.server);
        // A 409 whose body is not the documented replay error is the same
        // miss the suite reports.
        let undocumented = replayed(409, br#"{"error":"replay"}"#);
        assert_eq!(undocumented.server_findings[0].requirement, "CALL-3");
    }

    #[test]
    fn a_plaintext_run_is_held_against_the_gate_the_key_reaches() {
        let gated = crate::protocol::error::UPGRADE_REQUIRED_BODY;
        let with_key = |status, body: &[u8]| {
            judge_server_answer(Attack::Plaintext, true, status, &json(), body)
        };
        assert_eq!(with_key(426, gated.as_bytes()), None);
        let f = with_key(200, b"{}").expect("a key-holding run that runs misses the gate");
        assert_eq!((f.requirement.as_str(), f.level), ("GATE-1", Level::Must));
        // A 401 to the key given may be a wrong --plaintext-key: noted at
        // the key check's level, never a break.
        let f = with_key(401, b"").expect("a refused key is noted");
        assert_eq!(
            (f.requirement.as_str(), f.level),
            ("GATE-6", Level::Upstream)
        );
        assert!(f.actual.contains("--plaintext-key"), "{}", f.actual);
        // Without the key the key check answers first (GATE-6, upstream's
        // order): a 426 then is a difference at UPSTREAM level, not a break.
        assert_eq!(
            judge_server_answer(Attack::Plaintext, false, 401, &json(), b""),
            None
        );
        let f = judge_server_answer(Attack::Plaintext, false, 426, &json(), gated.as_bytes())
            .expect("the suite expects 401 first");
        assert_eq!(
            (f.requirement.as_str(), f.level),
            ("GATE-6", Level::Upstream)
        );
        let o = Observed {
            calls: 1,
            plaintext_statuses: vec![426],
            server_findings: vec![f],
            ..Observed::default()
        };
        let verdict = assess(&BTreeSet::from([Attack::Plaintext]), &o);
        assert_eq!(verdict.outcome, Conclusion::Held);
        assert!(
            verdict.server.contains("GATE-6 UPSTREAM"),
            "{}",
            verdict.server
        );
    }
}
