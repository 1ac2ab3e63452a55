//! What the reference server answers in the honest server's place under
//! the knobs that play a hostile server toward a client (class
//! `ClientSuite`): a refusal a client must handle (401, 409, 426, 429), a
//! plaintext inner response where a sealed frame belongs, or an event
//! stream that is endless, drips, or holds one huge event. Each answer
//! stands for a whole server response, so nothing here edits traffic;
//! the relay's edits in the middle are in `crate::mitm`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Response;
use tokio::sync::mpsc;

use crate::protocol::encoding::b64url_encode;
use crate::protocol::error::{
    channel_error_body, ChannelErrorCode, HandshakeRefusal, UPGRADE_REQUIRED_BODY,
};
use crate::protocol::names::SECURE_CHANNEL_HEADER;
use crate::transport::OutBody;

use super::bugs::{Bug, Knobs};

/// The longest a made-up stream runs, so a client that never hangs up
/// cannot keep the server busy forever.
const STREAM_BOUND: Duration = Duration::from_secs(120);

/// The answer to a handshake in the server's place, if a knob makes one.
pub fn handshake(knobs: &Knobs) -> Option<Response<OutBody>> {
    knobs.on(Bug::RateLimitEveryHandshake).then(|| {
        let r = HandshakeRefusal::RateLimited;
        json(r.status(), r.body().to_string(), false)
    })
}

/// The answer to the `n`th call (from 1) in the server's place, if a
/// knob makes one.
pub fn call(knobs: &Knobs, n: u64) -> Option<Response<OutBody>> {
    let unknown = || {
        channel_error_body(
            ChannelErrorCode::SessionUnknown,
            "Unknown or expired secure session",
        )
    };
    if knobs.on(Bug::UnknownSessionAlways) || (knobs.on(Bug::UnknownSessionOnce) && n == 1) {
        return Some(json(401, unknown(), false));
    }
    if knobs.on(Bug::ReplayRefusedOnce) && n == 1 {
        let body = channel_error_body(ChannelErrorCode::Replay, "Replayed secure call rejected");
        return Some(json(409, body, false));
    }
    if knobs.on(Bug::UpgradeRequiredOnCall) {
        return Some(json(426, UPGRADE_REQUIRED_BODY.to_string(), false));
    }
    if knobs.on(Bug::PlaintextInnerResponse) {
        let body = format!(
            r#"{{"status":200,"headers":{{"content-type":"application/json"}},"body":"{}"}}"#,
            b64url_encode(br#"{"status":"ok"}"#)
        );
        return Some(json(200, body, true));
    }
    let kind = [Bug::EndlessStream, Bug::SlowDrip, Bug::HugeEvent]
        .into_iter()
        .find(|b| knobs.on(*b))?;
    Some(hostile_stream(kind))
}

fn json(status: u16, body: String, sealed_header: bool) -> Response<OutBody> {
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if sealed_header {
        builder = builder.header(SECURE_CHANNEL_HEADER, "1");
    }
    builder
        .body(OutBody::full(body))
        .unwrap_or_else(|_| Response::new(OutBody::Full(None)))
}

/// An event stream made up in place of the sealed one: keep-alive
/// comments without end, one short line every 200 ms, or one 64 MiB event.
fn hostile_stream(kind: Bug) -> Response<OutBody> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let started = Instant::now();
        match kind {
            Bug::EndlessStream => {
                let block = Bytes::from(": keep-alive\n\n".repeat(4096));
                while started.elapsed() < STREAM_BOUND && tx.send(block.clone()).await.is_ok() {}
            }
            Bug::SlowDrip => {
                while started.elapsed() < STREAM_BOUND
                    && tx.send(Bytes::from_static(b": .\n")).await.is_ok()
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            _ => {
                let block = Bytes::from(vec![b'A'; 64 * 1024]);
                let _ = tx.send(Bytes::from_static(b"data: ")).await;
                for _ in 0..1024 {
                    if tx.send(block.clone()).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header(SECURE_CHANNEL_HEADER, "1")
        .body(OutBody::Stream(rx))
        .unwrap_or_else(|_| Response::new(OutBody::Full(None)))
}
