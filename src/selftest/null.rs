//! Null servers: degenerate targets the harness starts itself, so the
//! self-test can show that no MUST scenario passes against a server that
//! does nothing real. A pass against one of them is a vacuous check.
//!
//! Each is plain HTTP on `127.0.0.1:0`. The canned answers come from a
//! recorded honest session with the reference server, so they are
//! well-formed and really signed, only not for the request at hand.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::peer::{
    self, Answer, Conversation, HandshakePacer, HelloCheck, Offer, RateLimitPolicy, SealSpec,
    SentCall,
};
use crate::protocol::wire::InnerRequest;
use crate::report::Verdict;
use crate::rng::SystemRandom;
use crate::scenarios::model::{Scenario, Step};
use crate::scenarios::registry::Registry;
use crate::scenarios::runner::run_suite;
use crate::scenarios::selftest::{self_config, self_server_config, spawn_self};
use crate::server::{self, RunningServer};
use crate::transport::{self, Limits, OuterRequest, OuterResponse, Target};

/// The session a recording is made on.
const RECORDED: &str = "recorded";

/// The largest request body a null server reads.
const MAX_REQUEST: usize = 1 << 20;

/// A degenerate server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NullKind {
    /// Every request: `200` with an empty body.
    Always200,
    /// Every request: `400` with an empty body.
    Always400,
    /// One recorded, really signed ServerHello for every handshake, and an
    /// empty `200 text/event-stream` for every call.
    CannedHello,
    /// The recorded honest session's answers, byte for byte, in turn.
    Parrot,
    /// Honest (a reference server behind it) except that every call is
    /// answered with an earlier call's sealed response.
    StaleReplier,
}

impl NullKind {
    /// Every null server, in table order.
    pub const ALL: [NullKind; 5] = [
        NullKind::Always200,
        NullKind::Always400,
        NullKind::CannedHello,
        NullKind::Parrot,
        NullKind::StaleReplier,
    ];

    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            NullKind::Always200 => "always-200",
            NullKind::Always400 => "always-400",
            NullKind::CannedHello => "canned-hello",
            NullKind::Parrot => "parrot",
            NullKind::StaleReplier => "stale-replier",
        }
    }

    /// What it does, in a sentence.
    pub fn description(self) -> &'static str {
        match self {
            NullKind::Always200 => "answers every request with 200 and an empty body",
            NullKind::Always400 => "answers every request with 400 and an empty body",
            NullKind::CannedHello => "answers every handshake with one recorded, really signed ServerHello and every call with an empty 200 text/event-stream",
            NullKind::Parrot => "replays the answers of a recorded honest session byte for byte: its ServerHello for every handshake, its call answers in turn, 404 elsewhere",
            NullKind::StaleReplier => "an honest server behind a proxy that answers every call with an earlier call's sealed response",
        }
    }

    /// Whether `scenario` is held to fail against this null: the stale
    /// replier is honest except for call answers, so only scenarios that
    /// judge a call answer are.
    pub fn applies_to(self, scenario: &Scenario) -> bool {
        if self != NullKind::StaleReplier {
            return true;
        }
        scenario
            .steps
            .iter()
            .any(|s| matches!(s, Step::Call(_) | Step::Resend(_)))
    }
}

/// One recorded answer.
#[derive(Debug, Clone)]
struct Recorded {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Recorded {
    fn from_response(r: &OuterResponse) -> Self {
        Recorded {
            status: r.status,
            content_type: r.header("content-type").map(str::to_owned),
            body: r.body.clone(),
        }
    }

    fn from_answer(a: &Answer) -> Self {
        Recorded {
            status: a.status,
            content_type: a.header("content-type").map(str::to_owned),
            body: a.body.clone(),
        }
    }
}

/// The answers of one honest session with the reference server: its
/// ServerHello, a buffered call's answer and a streamed call's answer.
#[derive(Debug, Clone)]
pub struct Recording {
    hello: Recorded,
    calls: Vec<Recorded>,
}

/// Records an honest session with `server`, through the engine.
pub async fn record(server: &RunningServer) -> Result<Recording, String> {
    let endpoint = Target::parse(&server.url).map_err(|e| e.to_string())?;
    let mut target = peer::Target::new(endpoint, server.agent_address);
    target.access_key = server.access_key.clone();
    target.agent_id = Some(server.agent_id.clone());
    let unpaced = HandshakePacer::new(None);
    let mut conversation = Conversation::new(&target, &unpaced, RateLimitPolicy::NONE);
    let offer = Offer::random(server.agent_address, &mut SystemRandom);
    let hello = conversation
        .handshake(RECORDED, &offer)
        .await
        .map_err(|e| format!("recording the handshake: {e}"))?;
    match &hello.hello {
        Some(HelloCheck::Accepted) => {}
        Some(HelloCheck::Refused(e)) => return Err(format!("recorded hello does not verify: {e}")),
        Some(HelloCheck::Unusable(e)) => return Err(format!("recorded hello: {e}")),
        None => return Err(format!("the recorded handshake got {}", hello.status)),
    }
    let key = Some(format!("Bearer {}", server.access_key));
    let buffered = InnerRequest {
        method: "GET".into(),
        path: format!("/agents/{}", server.agent_id),
        authorization: key.clone(),
        ..Default::default()
    };
    let streamed = InnerRequest {
        method: "POST".into(),
        path: format!("/agents/{}/dispatch", server.agent_id),
        authorization: key,
        accept: Some("text/event-stream".into()),
        content_type: Some("application/json".into()),
        body: Some(crate::protocol::encoding::b64url_encode(
            br#"{"events":2,"size":8}"#,
        )),
        ..Default::default()
    };
    let mut calls = Vec::new();
    for inner in [buffered, streamed] {
        let spec = SealSpec {
            session: RECORDED.into(),
            ..SealSpec::default()
        };
        let (body, seq) = conversation
            .seal(&spec, inner.to_json().as_bytes())
            .map_err(|e| format!("sealing a recorded call: {e}"))?;
        let answer = conversation
            .call(SentCall {
                body,
                relay: true,
                accept: inner.accept.clone(),
                session: RECORDED.into(),
                seq,
            })
            .await
            .map_err(|e| format!("recording a call: {e}"))?;
        if answer.status != 200 {
            return Err(format!("a recorded call got {}", answer.status));
        }
        calls.push(Recorded::from_answer(&answer));
    }
    Ok(Recording {
        hello: Recorded::from_answer(&hello),
        calls,
    })
}

struct State {
    kind: NullKind,
    recording: Recording,
    upstream: Option<Target>,
    next_call: AtomicUsize,
    last_sealed: Mutex<Option<Recorded>>,
}

/// A running null server.
pub struct NullServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl NullServer {
    /// Stops accepting and waits for the accept loop to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts a null server of `kind`; the stale replier forwards to `upstream`.
pub async fn spawn(
    kind: NullKind,
    recording: Recording,
    upstream: Option<Target>,
) -> std::io::Result<NullServer> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let state = Arc::new(State {
        kind,
        recording,
        upstream,
        next_call: AtomicUsize::new(0),
        last_sealed: Mutex::new(None),
    });
    let (stop, mut stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop_rx.changed() => break,
            };
            let Ok((tcp, _)) = accepted else { continue };
            let state = state.clone();
            conns.spawn(async move {
                let svc = service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(answer(&state, req).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
        conns.shutdown().await;
    });
    Ok(NullServer { url, stop, task })
}

fn respond(status: u16, content_type: Option<&str>, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut b = Response::builder().status(status);
    if let Some(c) = content_type {
        b = b.header("content-type", c);
    }
    b.body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn replay(r: &Recorded) -> Response<Full<Bytes>> {
    respond(r.status, r.content_type.as_deref(), r.body.clone())
}

async fn answer(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let rec = &state.recording;
    match state.kind {
        NullKind::Always200 => respond(200, None, Vec::new()),
        NullKind::Always400 => respond(400, None, Vec::new()),
        NullKind::CannedHello => match path.as_str() {
            "/secure/session" => replay(&rec.hello),
            "/secure/call" => respond(200, Some("text/event-stream"), Vec::new()),
            _ => respond(200, None, Vec::new()),
        },
        NullKind::Parrot => match path.as_str() {
            "/secure/session" => replay(&rec.hello),
            "/secure/call" => {
                let n = state.next_call.fetch_add(1, Ordering::Relaxed);
                replay(&rec.calls[n % rec.calls.len()])
            }
            _ => respond(404, None, Vec::new()),
        },
        NullKind::StaleReplier => stale(state, req, &path).await,
    }
}

/// Forwards to the honest upstream; a call's answer is swapped for the
/// previous sealed answer (the recorded one the first time).
async fn stale(state: &State, req: Request<Incoming>, path: &str) -> Response<Full<Bytes>> {
    let Some(upstream) = &state.upstream else {
        return respond(502, None, Vec::new());
    };
    let method = req.method().to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| path.to_owned());
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "host" | "content-length" | "connection" | "transfer-encoding"
            )
        })
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let body = match Limited::new(req.into_body(), MAX_REQUEST).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => return respond(413, None, Vec::new()),
    };
    let out = OuterRequest {
        method,
        path: path_and_query,
        headers,
        body,
    };
    let resp = match transport::send(upstream, &out, &Limits::default()).await {
        Ok(r) => r,
        Err(_) => return respond(502, None, Vec::new()),
    };
    if path != "/secure/call" {
        return replay(&Recorded::from_response(&resp));
    }
    let fresh = Recorded::from_response(&resp);
    let earlier = {
        let Ok(mut last) = state.last_sealed.lock() else {
            return respond(500, None, Vec::new());
        };
        let earlier = last.clone();
        if fresh.status == 200 {
            *last = Some(fresh);
        }
        earlier
    };
    replay(&earlier.unwrap_or_else(|| state.recording.calls[0].clone()))
}

/// The suite against one null server.
#[derive(Debug, Clone)]
pub struct NullRow {
    /// The null server.
    pub kind: NullKind,
    /// MUST scenarios held to fail that passed: vacuous checks.
    pub passed: BTreeSet<String>,
    /// MUST scenarios held to fail that failed.
    pub failed: BTreeSet<String>,
    /// MUST scenarios held to fail that skipped, with the reason.
    pub skipped: Vec<(String, String)>,
    /// MUST scenarios not held to fail against this null (see
    /// [`NullKind::applies_to`]).
    pub exempt: BTreeSet<String>,
    /// The run could not happen.
    pub error: Option<String>,
}

impl NullRow {
    fn new(kind: NullKind) -> Self {
        NullRow {
            kind,
            passed: BTreeSet::new(),
            failed: BTreeSet::new(),
            skipped: Vec::new(),
            exempt: BTreeSet::new(),
            error: None,
        }
    }

    /// No MUST scenario passed, and the run happened.
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.passed.is_empty()
    }
}

/// Runs the suite's MUST scenarios against every null server.
pub async fn run_nulls(scenarios: &[Scenario], registry: &Registry) -> Vec<NullRow> {
    let musts: Vec<Scenario> = scenarios
        .iter()
        .filter(|s| s.level == crate::report::Level::Must)
        .cloned()
        .collect();
    let mut recorder_config = self_server_config(&[]);
    // A hello that stays unexpired for the whole run: the canned answers
    // must not fail on their age alone.
    recorder_config.session_ttl_secs = 3600;
    let recorder = match server::spawn(recorder_config).await {
        Ok(s) => s,
        Err(e) => return errors(format!("reference server: {e}")),
    };
    let recording = match record(&recorder).await {
        Ok(r) => r,
        Err(e) => {
            recorder.shutdown().await;
            return errors(e);
        }
    };
    let mut rows = Vec::new();
    for kind in NullKind::ALL {
        rows.push(run_one(kind, &recorder, &recording, &musts, registry).await);
    }
    recorder.shutdown().await;
    rows
}

fn errors(e: String) -> Vec<NullRow> {
    NullKind::ALL
        .iter()
        .map(|k| NullRow {
            error: Some(e.clone()),
            ..NullRow::new(*k)
        })
        .collect()
}

async fn run_one(
    kind: NullKind,
    recorder: &RunningServer,
    recording: &Recording,
    musts: &[Scenario],
    registry: &Registry,
) -> NullRow {
    let mut row = NullRow::new(kind);
    let upstream = if kind == NullKind::StaleReplier {
        match spawn_self(&[]).await {
            Ok(s) => Some(s),
            Err(e) => {
                row.error = Some(format!("reference server: {e}"));
                return row;
            }
        }
    } else {
        None
    };
    let behind = upstream.as_ref().unwrap_or(recorder);
    let upstream_target = match upstream.as_ref().map(|s| Target::parse(&s.url)).transpose() {
        Ok(t) => t,
        Err(e) => {
            row.error = Some(e.to_string());
            return row;
        }
    };
    let null = match spawn(kind, recording.clone(), upstream_target).await {
        Ok(n) => n,
        Err(e) => {
            row.error = Some(format!("null server: {e}"));
            return row;
        }
    };
    let cfg = match null_config(behind, &null, kind) {
        Ok(c) => c,
        Err(e) => {
            row.error = Some(e);
            return row;
        }
    };
    let report = run_suite(Arc::new(cfg), musts, registry, &|_| {}).await;
    null.shutdown().await;
    if let Some(u) = upstream {
        u.shutdown().await;
    }
    for s in musts {
        if !kind.applies_to(s) {
            row.exempt.insert(s.id.clone());
        }
    }
    for r in &report.scenarios {
        if row.exempt.contains(&r.id) {
            continue;
        }
        match r.verdict {
            Verdict::Pass => {
                row.passed.insert(r.id.clone());
            }
            Verdict::Skip => row
                .skipped
                .push((r.id.clone(), r.reason.clone().unwrap_or_default())),
            _ => {
                row.failed.insert(r.id.clone());
            }
        }
    }
    row
}

/// The run configuration against a null server: the identity and keys of
/// the server behind it (or recorded from), the null's address; a null
/// that is not the reference server is not known to trust loopback
/// callers or to bound its store.
fn null_config(
    behind: &RunningServer,
    null: &NullServer,
    kind: NullKind,
) -> Result<crate::scenarios::runner::RunConfig, String> {
    let mut cfg = self_config(behind, true)?;
    cfg.target.endpoint = Target::parse(&null.url).map_err(|e| e.to_string())?;
    cfg.target.label = kind.name().into();
    if kind != NullKind::StaleReplier {
        cfg.loopback_trusted = false;
        cfg.max_sessions = None;
        cfg.session_ttl = None;
        cfg.max_wait = 5;
    }
    Ok(cfg)
}

/// The null-server table of `docs/SELFTEST.md` (what each does; the rule).
pub fn doc_section() -> String {
    let mut out = String::from(
        "\n## Null servers\n\n\
         `osc-harness selftest` also runs every MUST scenario against degenerate\n\
         servers it starts itself on `127.0.0.1:0`. Each must end `FAIL`, `error`\n\
         or `skip` (with its reason) against every one of them; a pass is a\n\
         vacuous check and fails the self-test, naming the scenario. The canned\n\
         answers come from a recorded honest session with the reference server.\n\n\
         | null server | what it does |\n|---|---|\n",
    );
    for k in NullKind::ALL {
        out.push_str(&format!("| `{}` | {} |\n", k.name(), k.description()));
    }
    out.push_str(
        "\nThe stale replier is honest except for call answers, so only the\n\
         scenarios that make a call are held to fail against it.\n",
    );
    out
}

/// The null-server rows as text.
pub fn render(rows: &[NullRow]) -> String {
    let mut out = String::from("\nnull server     result  failed  skipped  exempt\n");
    for r in rows {
        out.push_str(&format!(
            "{:<15} {:<7} {:<7} {:<8} {}\n",
            r.kind.name(),
            if r.ok() { "ok" } else { "WRONG" },
            r.failed.len(),
            r.skipped.len(),
            r.exempt.len()
        ));
        if let Some(e) = &r.error {
            out.push_str(&format!("    error: {e}\n"));
        }
        if !r.passed.is_empty() {
            out.push_str(&format!(
                "    MUST scenarios that passed (vacuous): {}\n",
                r.passed.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        for (id, why) in &r.skipped {
            out.push_str(&format!("    skipped {id}: {why}\n"));
        }
    }
    out
}
