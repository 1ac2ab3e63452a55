//! The upstream fixture's shape: build one vector set from fixed inputs,
//! and verify a file by recomputing every field from the inputs it holds.
//!
//! A file's fixed inputs are the agent key, both ephemeral secrets, the
//! nonce, sid and expiry, the inner request, the response plaintexts and
//! the request seqs; everything else is derived from them. Each input is
//! checked against a value derived from it (so a changed input is named),
//! each derived field is recomputed, and every ciphertext is opened.

use serde_json::{json, Map, Value};
use x25519_dalek::{PublicKey, StaticSecret};

use super::fields::{self, join};
use super::{CheckLine, VectorsError};
use crate::protocol::encoding::{b64url_decode, b64url_encode, B64Strictness};
use crate::protocol::framing::ResponseSealer;
use crate::protocol::handshake::{
    agree, respond, ClientHandshake, HonestServer, ServerHandshakeInputs,
};
use crate::protocol::identity::{channel_digest, AgentIdentity, CHANNEL_PREFIX};
use crate::protocol::keys::{
    derive_session_keys, nonce_for, open_b64, request_aad, response_aad, response_key,
};
use crate::protocol::{DOMAIN, VERSION};
use crate::rng::{RandomSource, SeededRandom};

/// The fixed inputs of one vector set; every other field follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamInputs {
    /// The agent's secp256k1 secret key.
    pub agent_secret: [u8; 32],
    /// The client's ephemeral X25519 secret.
    pub client_ephemeral: [u8; 32],
    /// The server's ephemeral X25519 secret.
    pub server_ephemeral: [u8; 32],
    /// The ClientHello nonce.
    pub nonce: [u8; 16],
    /// The sid bytes.
    pub sid: [u8; 16],
    /// `expiresAt`.
    pub expires_at: i64,
    /// The InnerRequest JSON both calls carry.
    pub inner_request: String,
    /// The buffered call's request seq.
    pub buffered_seq: u64,
    /// The plaintext of the buffered response's single `fin` frame.
    pub buffered_plaintext: String,
    /// The streamed call's request seq.
    pub stream_seq: u64,
    /// The plaintexts of the streamed frames; the last is the `fin` frame.
    pub stream_plaintexts: Vec<String>,
}

/// The inner request of the upstream fixture (a channel ping).
pub const FIXTURE_INNER_REQUEST: &str = r#"{"method":"GET","path":"/channels/n8n/n8n-local/ping","accept":"application/json","headers":{"X-Osaurus-Channel-Signature":"sha256=b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"}}"#;
/// The buffered response plaintext of the upstream fixture.
pub const FIXTURE_BUFFERED: &str = r#"{"status":200,"contentType":"application/json; charset=utf-8","body":"eyJzdGF0dXMiOiJvayJ9"}"#;

/// A secp256k1 secret drawn from `rng`, redrawn in the negligible case
/// that it is zero or not below the group order.
pub fn seeded_agent_secret(rng: &mut SeededRandom) -> [u8; 32] {
    loop {
        let candidate: [u8; 32] = rng.bytes();
        if AgentIdentity::from_bytes(&candidate).is_ok() {
            return candidate;
        }
    }
}

impl UpstreamInputs {
    /// The inputs for `seed`: every key, the nonce, sid and expiry from
    /// its own labelled stream; the plaintexts those of the fixture.
    pub fn from_seed(seed: u64) -> Self {
        let stream = |label: &str| SeededRandom::new(seed, &format!("upstream/{label}"));
        UpstreamInputs {
            agent_secret: seeded_agent_secret(&mut stream("agent-key")),
            client_ephemeral: stream("client-ephemeral").bytes(),
            server_ephemeral: stream("server-ephemeral").bytes(),
            nonce: stream("client-nonce").bytes(),
            sid: stream("sid").bytes(),
            expires_at: 1_700_000_000 + stream("expires-at").below(300_000_000) as i64,
            inner_request: FIXTURE_INNER_REQUEST.to_owned(),
            buffered_seq: 1,
            buffered_plaintext: FIXTURE_BUFFERED.to_owned(),
            stream_seq: 2,
            stream_plaintexts: vec![
                "data: {\"n\":1}\n\n".to_owned(),
                "data: {\"n\":2}\n\n".to_owned(),
                String::new(),
            ],
        }
    }
}

/// Builds the full vector set from its inputs, with the core alone.
pub fn build(inputs: &UpstreamInputs) -> Value {
    try_build(inputs).unwrap_or_else(|e| json!({ "error": e }))
}

fn try_build(inputs: &UpstreamInputs) -> Result<Value, String> {
    let identity = AgentIdentity::from_bytes(&inputs.agent_secret)?;
    let address = identity.address();
    let client = ClientHandshake::new(address, inputs.client_ephemeral, inputs.nonce);
    let client_hello = client.hello().clone();
    let server = respond(
        &client_hello,
        &identity,
        &ServerHandshakeInputs {
            ephemeral_secret: inputs.server_ephemeral,
            sid: inputs.sid,
            expires_at: inputs.expires_at,
        },
        &HonestServer,
    )
    .map_err(|e| e.to_string())?;
    let hello = server.hello.clone();
    let session = client.finish(&hello).map_err(|e| e.to_string())?;
    let server_pub = PublicKey::from(&StaticSecret::from(inputs.server_ephemeral));
    let shared = agree(
        &StaticSecret::from(inputs.client_ephemeral),
        &server_pub,
        false,
    )
    .map_err(|e| e.to_string())?;
    let keys = derive_session_keys(&shared, server.transcript.as_bytes());
    if &keys != session.keys() {
        return Err("client and server derived different keys".into());
    }
    let sid = session.sid().to_owned();

    let call = session.seal_at(inputs.buffered_seq, inputs.inner_request.as_bytes());
    let buffered_key = response_key(&keys.s2c, inputs.buffered_seq);
    let buffered_frame = ResponseSealer::new(buffered_key, sid.clone(), inputs.buffered_seq)
        .seal_at(0, inputs.buffered_plaintext.as_bytes(), true);

    let stream_call = session.seal_at(inputs.stream_seq, inputs.inner_request.as_bytes());
    let stream_key = response_key(&keys.s2c, inputs.stream_seq);
    let sealer = ResponseSealer::new(stream_key, sid.clone(), inputs.stream_seq);
    let last = inputs.stream_plaintexts.len().saturating_sub(1);
    let frames: Vec<Value> = inputs
        .stream_plaintexts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let seq = i as u64;
            let fin = i == last;
            let frame = sealer.seal_at(seq, text.as_bytes(), fin);
            json!({
                "aad": response_aad(&sid, inputs.stream_seq, seq, fin),
                "ct": frame.ct,
                "fin": fin,
                "plaintext": text,
                "seq": seq,
            })
        })
        .collect();

    Ok(json!({
        "agent": {
            "address": address.to_checksum(),
            "privateKeyHex": hex::encode(inputs.agent_secret),
        },
        "bufferedResponse": {
            "frame": {
                "aad": response_aad(&sid, inputs.buffered_seq, 0, true),
                "ct": buffered_frame.ct,
                "fin": true,
                "plaintext": inputs.buffered_plaintext,
                "seq": 0,
            },
            "requestSeq": inputs.buffered_seq,
            "responseKeyHex": hex::encode(buffered_key),
        },
        "call": {
            "aad": request_aad(&sid, inputs.buffered_seq),
            "body": {
                "ct": call.ct,
                "seq": call.seq,
                "sid": call.sid,
                "v": call.v,
            },
            "ct": call.ct,
            "innerRequest": inputs.inner_request,
            "nonceHex": hex::encode(nonce_for(inputs.buffered_seq)),
            "requestSeq": inputs.buffered_seq,
        },
        "domain": DOMAIN,
        "handshake": {
            "clientEphemeralPrivateHex": hex::encode(inputs.client_ephemeral),
            "clientHello": {
                "agentAddress": client_hello.agent_address,
                "encPub": client_hello.enc_pub,
                "nonce": client_hello.nonce,
                "v": client_hello.v,
            },
            "clientToServerKeyHex": hex::encode(keys.c2s),
            "domainHashHex": hex::encode(channel_digest(server.transcript.as_bytes())),
            "serverEphemeralPrivateHex": hex::encode(inputs.server_ephemeral),
            "serverHello": {
                "encPub": hello.enc_pub,
                "expiresAt": hello.expires_at,
                "sid": hello.sid,
                "signature": hello.signature,
                "v": hello.v,
            },
            "serverToClientKeyHex": hex::encode(keys.s2c),
            "sharedSecretHex": hex::encode(shared),
            "transcript": server.transcript,
        },
        "signingDomainPrefix": CHANNEL_PREFIX,
        "streamResponse": {
            "callCt": stream_call.ct,
            "frames": frames,
            "requestSeq": inputs.stream_seq,
            "responseKeyHex": hex::encode(stream_key),
        },
        "version": VERSION,
    }))
}

fn b64_array_at<const N: usize>(v: &Value, path: &str, key: &str) -> Result<[u8; N], VectorsError> {
    let text = fields::str_at(v, path, key)?;
    b64url_decode(text, B64Strictness::Upstream)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| VectorsError::Field {
            path: join(path, key),
            expected: "base64url of the right length",
        })
}

/// Reads the fixed inputs of an upstream-shaped file.
pub fn read_inputs(file: &Value) -> Result<UpstreamInputs, VectorsError> {
    let agent = fields::get(file, "", "agent")?;
    let hs = fields::get(file, "", "handshake")?;
    let ch = fields::get(hs, "handshake", "clientHello")?;
    let sh = fields::get(hs, "handshake", "serverHello")?;
    let call = fields::get(file, "", "call")?;
    let buffered = fields::get(file, "", "bufferedResponse")?;
    let bframe = fields::get(buffered, "bufferedResponse", "frame")?;
    let stream = fields::get(file, "", "streamResponse")?;
    let frames = fields::array_at(stream, "streamResponse", "frames")?;
    let mut stream_plaintexts = Vec::with_capacity(frames.len());
    for (i, frame) in frames.iter().enumerate() {
        let path = format!("streamResponse.frames[{i}]");
        stream_plaintexts.push(fields::str_at(frame, &path, "plaintext")?.to_owned());
    }
    Ok(UpstreamInputs {
        agent_secret: fields::hex_array_at(agent, "agent", "privateKeyHex")?,
        client_ephemeral: fields::hex_array_at(hs, "handshake", "clientEphemeralPrivateHex")?,
        server_ephemeral: fields::hex_array_at(hs, "handshake", "serverEphemeralPrivateHex")?,
        nonce: b64_array_at(ch, "handshake.clientHello", "nonce")?,
        sid: b64_array_at(sh, "handshake.serverHello", "sid")?,
        expires_at: fields::i64_at(sh, "handshake.serverHello", "expiresAt")?,
        inner_request: fields::str_at(call, "call", "innerRequest")?.to_owned(),
        buffered_seq: fields::u64_at(buffered, "bufferedResponse", "requestSeq")?,
        buffered_plaintext: fields::str_at(bframe, "bufferedResponse.frame", "plaintext")?
            .to_owned(),
        stream_seq: fields::u64_at(stream, "streamResponse", "requestSeq")?,
        stream_plaintexts,
    })
}

/// The inputs a derived field is computed from, for failure messages.
fn derived_from(path: &str) -> &'static str {
    let p = path;
    if p.starts_with("agent.") || p.ends_with("agentAddress") {
        "agent.privateKeyHex"
    } else if p.ends_with("clientHello.encPub") {
        "handshake.clientEphemeralPrivateHex"
    } else if p.ends_with("serverHello.encPub") {
        "handshake.serverEphemeralPrivateHex"
    } else if p.ends_with("signature") || p.ends_with("domainHashHex") {
        "agent.privateKeyHex and the transcript"
    } else if p.ends_with("transcript") {
        "the address, both public keys, nonce, sid and expiresAt"
    } else if p.ends_with("sharedSecretHex") {
        "both ephemeral secrets"
    } else if p.ends_with("KeyHex") {
        "the shared secret, the transcript and the request seq"
    } else if p.ends_with("aad") || p.ends_with("sid") || p.ends_with("seq") {
        "the sid and the seqs"
    } else if p.ends_with("ct") || p.ends_with("callCt") || p.ends_with("Ct") {
        "its key, seq, AAD and plaintext"
    } else {
        "the fixed inputs"
    }
}

/// Paths that hold the fixed inputs themselves; they get consistency
/// checks instead of a comparison with themselves.
fn is_input(path: &str) -> bool {
    matches!(
        path,
        "agent.privateKeyHex"
            | "handshake.clientEphemeralPrivateHex"
            | "handshake.serverEphemeralPrivateHex"
            | "handshake.clientHello.nonce"
            | "handshake.serverHello.sid"
            | "handshake.serverHello.expiresAt"
            | "call.innerRequest"
            | "bufferedResponse.frame.plaintext"
    ) || (path.starts_with("streamResponse.frames[") && path.ends_with("].plaintext"))
}

/// A value for a failure message, shortened to about 120 characters.
fn show(v: &Value) -> String {
    let text = v.to_string();
    if text.len() <= 120 {
        return text;
    }
    format!("{}…", crate::text::char_prefix(&text, 117))
}

fn compare_leaves(path: &str, expected: &Value, file: Option<&Value>, out: &mut Vec<CheckLine>) {
    match expected {
        Value::Object(map) => {
            let empty = Map::new();
            let file_map = file.and_then(Value::as_object);
            if file.is_some() && file_map.is_none() {
                out.push(CheckLine::fail(path, "must be an object"));
                return;
            }
            let file_map = file_map.unwrap_or(&empty);
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for key in keys {
                compare_leaves(
                    &join(path, key),
                    &map[key.as_str()],
                    file_map.get(key.as_str()),
                    out,
                );
            }
        }
        Value::Array(items) => {
            let file_items = file.and_then(Value::as_array);
            match file_items {
                Some(f) if f.len() == items.len() => {
                    for (i, item) in items.iter().enumerate() {
                        compare_leaves(&format!("{path}[{i}]"), item, f.get(i), out);
                    }
                }
                Some(f) => out.push(CheckLine::fail(
                    path,
                    format!("has {} items, expected {}", f.len(), items.len()),
                )),
                None => out.push(CheckLine::fail(path, "must be an array")),
            }
        }
        leaf => {
            if is_input(path) {
                return;
            }
            match file {
                None => out.push(CheckLine::fail(path, "missing")),
                Some(f) if f == leaf => out.push(CheckLine::ok(path)),
                Some(f) => out.push(CheckLine::fail(
                    path,
                    format!(
                        "file has {}, recomputed from {} gives {}",
                        show(f),
                        derived_from(path),
                        show(leaf)
                    ),
                )),
            }
        }
    }
}

fn str_or_empty<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for key in path {
        match cur.get(key) {
            Some(next) => cur = next,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

fn key_at(v: &Value, path: &[&str]) -> Option<[u8; 32]> {
    hex::decode(str_or_empty(v, path))
        .ok()
        .and_then(|b| b.try_into().ok())
}

/// Checks that `ct` opens under the file's own key, seq and AAD to the
/// file's plaintext.
fn opens(
    file: &Value,
    key: &[&str],
    seq: u64,
    aad: &str,
    ct: &str,
    plaintext: &str,
) -> Result<(), String> {
    let key =
        key_at(file, key).ok_or_else(|| format!("{} is not 32 bytes of hex", key.join(".")))?;
    let opened =
        open_b64(&key, seq, aad.as_bytes(), ct).map_err(|e| format!("does not open: {e}"))?;
    if opened == plaintext.as_bytes() {
        Ok(())
    } else {
        Err(format!(
            "the ciphertext opens to {:?}, not to this plaintext",
            String::from_utf8_lossy(&opened)
        ))
    }
}

/// Verifies an upstream-shaped file: one line per field.
pub fn verify(file: &Value) -> Result<Vec<CheckLine>, VectorsError> {
    let inputs = read_inputs(file)?;
    let mut lines = Vec::new();
    let transcript = str_or_empty(file, &["handshake", "transcript"]);

    // Inputs, each checked against something the file derives from it.
    lines.push(CheckLine::from_result(
        "agent.privateKeyHex",
        match AgentIdentity::from_bytes(&inputs.agent_secret) {
            Err(e) => Err(e),
            Ok(id) => {
                let derived = id.address().to_checksum();
                let stated = str_or_empty(file, &["agent", "address"]);
                if derived == stated {
                    Ok(())
                } else {
                    Err(format!(
                        "derives address {derived}, but agent.address is {stated:?}"
                    ))
                }
            }
        },
    ));
    for (path, secret, public_path) in [
        (
            "handshake.clientEphemeralPrivateHex",
            inputs.client_ephemeral,
            ["handshake", "clientHello", "encPub"],
        ),
        (
            "handshake.serverEphemeralPrivateHex",
            inputs.server_ephemeral,
            ["handshake", "serverHello", "encPub"],
        ),
    ] {
        let derived = b64url_encode(PublicKey::from(&StaticSecret::from(secret)).as_bytes());
        let stated = str_or_empty(file, &public_path);
        lines.push(CheckLine::from_result(
            path,
            if derived == stated {
                Ok(())
            } else {
                Err(format!(
                    "derives public key {derived}, but {} is {stated:?}",
                    public_path.join(".")
                ))
            },
        ));
    }
    let nonce = str_or_empty(file, &["handshake", "clientHello", "nonce"]);
    let sid = str_or_empty(file, &["handshake", "serverHello", "sid"]);
    let in_transcript = |path: &str, label: &str, value: &str| {
        let needle = format!("|{label}={value}");
        let found = transcript
            .split('|')
            .any(|part| format!("|{part}") == needle);
        CheckLine::from_result(
            path,
            if found {
                Ok(())
            } else {
                Err(format!("{label}={value} is not in handshake.transcript"))
            },
        )
    };
    lines.push(in_transcript("handshake.clientHello.nonce", "nC", nonce));
    lines.push(in_transcript("handshake.serverHello.sid", "sid", sid));
    lines.push(in_transcript(
        "handshake.serverHello.expiresAt",
        "exp",
        &inputs.expires_at.to_string(),
    ));
    if b64url_encode(&inputs.nonce) != nonce {
        lines.push(CheckLine::fail(
            "handshake.clientHello.nonce",
            "is not canonical base64url",
        ));
    }
    if b64url_encode(&inputs.sid) != sid {
        lines.push(CheckLine::fail(
            "handshake.serverHello.sid",
            "is not canonical base64url",
        ));
    }

    // Every ciphertext opens under the file's own keys to its plaintext.
    lines.push(CheckLine::from_result(
        "call.innerRequest",
        opens(
            file,
            &["handshake", "clientToServerKeyHex"],
            inputs.buffered_seq,
            str_or_empty(file, &["call", "aad"]),
            str_or_empty(file, &["call", "ct"]),
            &inputs.inner_request,
        ),
    ));
    lines.push(CheckLine::from_result(
        "streamResponse.callCt (opens to call.innerRequest)",
        opens(
            file,
            &["handshake", "clientToServerKeyHex"],
            inputs.stream_seq,
            &request_aad(sid, inputs.stream_seq),
            str_or_empty(file, &["streamResponse", "callCt"]),
            &inputs.inner_request,
        ),
    ));
    lines.push(CheckLine::from_result(
        "bufferedResponse.frame.plaintext",
        opens(
            file,
            &["bufferedResponse", "responseKeyHex"],
            0,
            str_or_empty(file, &["bufferedResponse", "frame", "aad"]),
            str_or_empty(file, &["bufferedResponse", "frame", "ct"]),
            &inputs.buffered_plaintext,
        ),
    ));
    let frames = file["streamResponse"]["frames"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for (i, frame) in frames.iter().enumerate() {
        lines.push(CheckLine::from_result(
            format!("streamResponse.frames[{i}].plaintext"),
            opens(
                file,
                &["streamResponse", "responseKeyHex"],
                frame["seq"].as_u64().unwrap_or(i as u64),
                frame["aad"].as_str().unwrap_or(""),
                frame["ct"].as_str().unwrap_or(""),
                &inputs.stream_plaintexts[i],
            ),
        ));
    }

    // Every derived field, recomputed from the inputs alone.
    match try_build(&inputs) {
        Ok(expected) => compare_leaves("", &expected, Some(file), &mut lines),
        Err(e) => lines.push(CheckLine::fail(
            "(recompute)",
            format!("cannot rebuild the vector set: {e}"),
        )),
    }
    Ok(lines)
}
