//! The inner application: one function from an in-memory request to a
//! response, run for plaintext requests and for decrypted inner requests
//! alike, so both meet the same access-key gate, 426 gate and routes.
//! The routes are a small demo app with observable side effects.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::protocol::identity::Address;

use super::bugs::Knobs;
use super::gate::{self, Grant, Keys};

/// JSON content type of every JSON body.
pub const JSON: &str = "application/json; charset=utf-8";
/// Content type of streamed responses.
pub const EVENT_STREAM: &str = "text/event-stream";
/// Most events a dispatch may ask for.
const MAX_EVENTS: u64 = 1_000_000;
/// Largest event padding a dispatch may ask for.
const MAX_EVENT_SIZE: u64 = 4 * 1024 * 1024;
/// Most padding bytes one dispatch may ask for in total.
const MAX_STREAM_BYTES: u64 = 1 << 30;
/// Stream writes buffered between the producer and the connection.
const STREAM_BUFFER: usize = 16;

/// A request as the application sees it, whatever carried it.
#[derive(Debug, Clone)]
pub struct AppRequest {
    /// HTTP method, case-sensitive.
    pub method: String,
    /// Path as received, query included.
    pub path: String,
    /// Headers with lowercased names, in order; the first of a name wins.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
    /// Whether it arrived sealed through `/secure/call`.
    pub inside_channel: bool,
    /// Whether the caller is remote (not a trusted loopback peer).
    pub remote: bool,
}

impl AppRequest {
    /// The first value of header `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::protocol::names::header(&self.headers, name)
    }
}

/// A response body: whole, or one chunk per write.
#[derive(Debug)]
pub enum AppBody {
    /// The whole body.
    Full(Vec<u8>),
    /// Writes as they are produced; the stream ends when the sender drops.
    Stream(mpsc::Receiver<Bytes>),
}

/// A response as the application produced it.
#[derive(Debug)]
pub struct AppResponse {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: AppBody,
}

impl AppResponse {
    /// A JSON response.
    pub fn json(status: u16, body: String) -> Self {
        AppResponse {
            status,
            content_type: Some(JSON.to_owned()),
            body: AppBody::Full(body.into_bytes()),
        }
    }

    /// A `text/plain` response.
    pub fn text(status: u16, body: &str) -> Self {
        AppResponse {
            status,
            content_type: Some("text/plain; charset=utf-8".to_owned()),
            body: AppBody::Full(body.as_bytes().to_vec()),
        }
    }

    fn not_found() -> Self {
        Self::text(404, "Not Found")
    }
}

/// The demo application of one server.
pub struct App {
    agent_id: String,
    agent_address: Address,
    access_key: String,
    scoped_key: Option<String>,
    scoped_agent_id: String,
    executions: AtomicU64,
    keyed_answers: AtomicU64,
}

/// Which agent a route's `{id}` named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agent {
    Main,
    Scoped,
}

impl App {
    /// An app serving the main agent and the scoped key's agent.
    pub fn new(
        agent_id: String,
        agent_address: Address,
        access_key: String,
        scoped_key: Option<String>,
        scoped_agent_id: String,
    ) -> Self {
        App {
            agent_id,
            agent_address,
            access_key,
            scoped_key,
            scoped_agent_id,
            executions: AtomicU64::new(0),
            keyed_answers: AtomicU64::new(0),
        }
    }

    /// How many runs have executed so far.
    pub fn executions(&self) -> u64 {
        self.executions.load(Ordering::SeqCst)
    }

    /// How many requests inside the channel carried the full access key
    /// and got a 2xx answer: what a client-role baseline shows it did,
    /// seen from the server's side.
    pub fn keyed_answers(&self) -> u64 {
        self.keyed_answers.load(Ordering::SeqCst)
    }

    /// Answers one request: access-key gate, then routing.
    pub fn handle(&self, req: &AppRequest, knobs: &Knobs) -> AppResponse {
        let resp = self.answer(req, knobs);
        let keyed = req.header("authorization").is_some_and(|v| {
            v.trim().split_once(' ').is_some_and(|(scheme, token)| {
                scheme.eq_ignore_ascii_case("bearer") && token.trim() == self.access_key
            })
        });
        if req.inside_channel && keyed && (200..300).contains(&resp.status) {
            self.keyed_answers.fetch_add(1, Ordering::SeqCst);
        }
        resp
    }

    fn answer(&self, req: &AppRequest, knobs: &Knobs) -> AppResponse {
        let routed = gate::normalize(&req.path);
        let keys = Keys {
            access_key: &self.access_key,
            scoped_key: self.scoped_key.as_deref(),
        };
        let grant = match gate::access_gate(
            &routed,
            req.header("authorization"),
            req.remote,
            req.inside_channel,
            &keys,
            knobs,
        ) {
            Ok(g) => g,
            Err(refusal) => return refusal,
        };
        let segments: Vec<&str> = routed.trim_start_matches('/').split('/').collect();
        match (req.method.as_str(), segments.as_slice()) {
            ("GET", [""]) => AppResponse::text(200, "osc-harness reference server"),
            ("GET", ["health"]) => AppResponse::json(200, r#"{"status":"ok"}"#.to_owned()),
            ("GET", ["models"]) => AppResponse::json(
                200,
                r#"{"object":"list","data":[{"id":"osc-demo","object":"model","owned_by":"osc-harness"}]}"#
                    .to_owned(),
            ),
            ("GET", ["agents", id]) => match self.resolve(id, false) {
                Some(agent) => match self.scope(grant, agent) {
                    Ok(()) => self.describe(agent),
                    Err(r) => r,
                },
                None => agent_not_found(),
            },
            ("POST", ["agents", id, action @ ("run" | "dispatch")]) => {
                if let Err(r) = gate::upgrade_gate(req.inside_channel, req.remote, knobs) {
                    return r;
                }
                let Some(agent) = self.resolve(id, *action == "run") else {
                    return agent_not_found();
                };
                if let Err(r) = self.scope(grant, agent) {
                    return r;
                }
                if *action == "run" {
                    self.run(agent, req)
                } else {
                    dispatch(&req.body)
                }
            }
            _ => AppResponse::not_found(),
        }
    }

    fn resolve(&self, id: &str, allow_default: bool) -> Option<Agent> {
        if id == self.agent_id
            || (allow_default && id == "default")
            || Address::parse(id).is_ok_and(|a| a == self.agent_address)
        {
            Some(Agent::Main)
        } else if id == self.scoped_agent_id {
            Some(Agent::Scoped)
        } else {
            None
        }
    }

    fn agent_id(&self, agent: Agent) -> &str {
        match agent {
            Agent::Main => &self.agent_id,
            Agent::Scoped => &self.scoped_agent_id,
        }
    }

    fn scope(&self, grant: Grant, agent: Agent) -> Result<(), AppResponse> {
        if grant == Grant::Scoped && agent != Agent::Scoped {
            return Err(AppResponse::json(
                403,
                r#"{"error":"agent_scope_denied","message":"This access key is not scoped to the requested agent."}"#
                    .to_owned(),
            ));
        }
        Ok(())
    }

    fn describe(&self, agent: Agent) -> AppResponse {
        let address = match agent {
            Agent::Main => Some(self.agent_address.to_checksum()),
            Agent::Scoped => None,
        };
        let body = serde_json::json!({ "id": self.agent_id(agent), "address": address });
        AppResponse::json(200, body.to_string())
    }

    /// The side-effecting echo: counts an execution, then reports what it saw.
    fn run(&self, agent: Agent, req: &AppRequest) -> AppResponse {
        let executions = self.executions.fetch_add(1, Ordering::SeqCst) + 1;
        let mut headers = serde_json::Map::new();
        for (k, v) in &req.headers {
            headers
                .entry(k.clone())
                .or_insert_with(|| serde_json::Value::String(v.clone()));
        }
        let body = serde_json::json!({
            "agentId": self.agent_id(agent),
            "method": req.method,
            "path": req.path,
            "bodySha256": hex::encode(Sha256::digest(&req.body)),
            "bodyLen": req.body.len(),
            "headers": headers,
            "executions": executions,
        });
        AppResponse::json(200, body.to_string())
    }
}

fn agent_not_found() -> AppResponse {
    AppResponse::json(404, r#"{"error":"Agent not found"}"#.to_owned())
}

/// `POST /agents/{id}/dispatch`: `{"events":N,"size":S}` (defaults 3 and
/// 16) streams N events with S bytes of padding, then `data: [DONE]`.
fn dispatch(body: &[u8]) -> AppResponse {
    let (mut events, mut size) = (3u64, 16u64);
    if !body.iter().all(u8::is_ascii_whitespace) {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) else {
            return AppResponse::text(400, "Invalid request format");
        };
        for (key, slot) in [("events", &mut events), ("size", &mut size)] {
            match map.get(key) {
                None | Some(serde_json::Value::Null) => {}
                Some(v) => match v.as_u64() {
                    Some(n) => *slot = n,
                    None => return AppResponse::text(400, "Invalid request format"),
                },
            }
        }
    }
    if events > MAX_EVENTS || size > MAX_EVENT_SIZE || events * size > MAX_STREAM_BYTES {
        return AppResponse::text(400, "Invalid request format");
    }
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    tokio::spawn(async move {
        let pad = "x".repeat(size as usize);
        for n in 0..events {
            let event = format!("data: {{\"n\":{n},\"pad\":\"{pad}\"}}\n\n");
            if tx.send(Bytes::from(event)).await.is_err() {
                return; // The client went away.
            }
        }
        let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
    });
    AppResponse {
        status: 200,
        content_type: Some(EVENT_STREAM.to_owned()),
        body: AppBody::Stream(rx),
    }
}
