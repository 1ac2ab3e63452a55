//! The `call` subcommand: one call through the channel, printed as it
//! arrives.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use crate::flags::target::{RelayDefault, TargetArgs, TargetPolicy};
use crate::protocol::encoding::b64url_encode;
use crate::protocol::wire::InnerRequest;
use crate::server::ServerConfig;

use super::{exit, Channel, ClientBug};

const EXIT_CODES: &str = "\
Exit codes:
  0  the call completed and the inner status is 2xx
  2  bad command line
  3  the call completed but the inner status is not 2xx
  4  identity mismatch: the server is not the pinned agent
  5  truncation: the response ended without its authenticated final frame
  6  another protocol violation by the server (bad or reordered frame, undecryptable data, malformed message)
  7  transport error: unreachable, too slow, or too much data
  8  the server refused the handshake or the call (rate limit, unknown agent, replay, …)";

/// Make one call through the secure channel with the reference client.
#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct CallArgs {
    /// The server (a URL and --agent-address, unless --list-bugs).
    #[command(flatten)]
    pub target: TargetArgs,
    /// The inner HTTP method [default: GET, or POST with --data].
    #[arg(long)]
    pub method: Option<String>,
    /// The inner path.
    #[arg(long, default_value = "/health")]
    pub path: String,
    /// The inner body: TEXT, or @FILE to read it from a file.
    #[arg(long)]
    pub data: Option<String>,
    /// An inner header as `Name: value` (repeatable).
    #[arg(long = "header", value_name = "K:V")]
    pub headers: Vec<String>,
    /// Ask for an event stream (inner `Accept: text/event-stream`) and print
    /// each frame as it arrives. Event-stream responses stream regardless.
    #[arg(long)]
    pub stream: bool,
    /// Misbehave on purpose (repeatable): identity-unchecked,
    /// missing-fin-ignored, reordered-frames-accepted, retry-on-409,
    /// expired-session-used, replay-same-seq, low-order-key-accepted.
    #[arg(long = "bug", value_name = "NAME")]
    pub bugs: Vec<ClientBug>,
    /// Seconds a streamed response may run in total.
    #[arg(long, default_value_t = 600)]
    pub max_stream_secs: u64,
    /// The most response bytes accepted.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub max_body: usize,
    /// Make the call this many times over the same channel (one handshake
    /// while the session lasts), printing each inner body on its own line;
    /// stops at the first call that fails.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub repeat: u64,
    /// Print the inner status and content type to stderr.
    #[arg(long, short = 'i')]
    pub include: bool,
    /// List the client --bug knobs with the requirement each breaks, and exit.
    #[arg(long)]
    pub list_bugs: bool,
    /// Play a degenerate client instead of making the call: the self-test
    /// shows no client scenario passes against it.
    #[arg(long, value_enum, hide = true)]
    pub null: Option<NullClient>,
}

/// A client that does not do its job, for the self-test's null clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NullClient {
    /// Handshakes (checking the hello as the reference does), then
    /// exits 0 without a call.
    HandshakeOnly,
    /// Handshakes, then aborts (killed by a signal) without a call.
    CrashAfterHandshake,
}

/// Runs the command.
pub fn run(args: CallArgs) -> ExitCode {
    if args.list_bugs {
        for bug in ClientBug::ALL {
            println!(
                "{:<26} {:<7} {}",
                bug.name(),
                bug.requirement(),
                bug.description()
            );
        }
        return ExitCode::SUCCESS;
    }
    let runtime = match crate::runtime::runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::TRANSPORT);
        }
    };
    runtime.block_on(async {
        match prepare(&args).await {
            Ok((channel, _)) if args.null.is_some() => {
                ExitCode::from(play_null(channel, args.null).await)
            }
            Ok((channel, inner)) => {
                ExitCode::from(execute(channel, inner, args.repeat, args.include).await)
            }
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::from(exit::USAGE)
            }
        }
    })
}

/// What `call` assumes: a URL must be named (it starts no server), the key
/// is optional (public paths need none), no relay marker unless asked.
const POLICY: TargetPolicy = TargetPolicy {
    default_target: None,
    allows_self: false,
    key_required: false,
    relay: RelayDefault::Off,
    self_timeout_secs: 30,
    url_timeout_secs: 30,
};

async fn prepare(args: &CallArgs) -> Result<(Channel, InnerRequest), String> {
    let resolved = args
        .target
        .resolve(POLICY, |_| ServerConfig::generated())
        .await
        .map_err(|e| e.to_string())?;
    let timeout = resolved.timeout();
    let mut target = resolved.target;
    target.limits.connect_timeout = timeout.min(Duration::from_secs(30));
    target.limits.max_body_bytes = args.max_body;
    let inner = inner_request(args)?;
    let channel = Channel::to(target)
        .with_bugs(args.bugs.iter().copied())
        .with_stream_time_limit(Duration::from_secs(args.max_stream_secs.max(1)));
    Ok((channel, inner))
}

/// Builds the inner request from the flags; `Authorization`, `Accept` and
/// `Content-Type` go in their own fields, as the wire format wants.
pub fn inner_request(args: &CallArgs) -> Result<InnerRequest, String> {
    let body = match &args.data {
        None => None,
        Some(d) => Some(match d.strip_prefix('@') {
            Some(path) => {
                std::fs::read(path).map_err(|e| format!("cannot read --data file {path:?}: {e}"))?
            }
            None => d.clone().into_bytes(),
        }),
    };
    let mut inner = InnerRequest {
        method: args
            .method
            .clone()
            .unwrap_or_else(|| if body.is_some() { "POST" } else { "GET" }.into())
            .to_ascii_uppercase(),
        path: args.path.clone(),
        authorization: args
            .target
            .access_key
            .as_ref()
            .map(|k| format!("Bearer {k}")),
        body: body.as_deref().map(b64url_encode),
        ..Default::default()
    };
    let mut extra = Vec::new();
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("--header {h:?} is not of the form Name: value"))?;
        let (name, value) = (name.trim(), value.trim().to_string());
        match name.to_ascii_lowercase().as_str() {
            "authorization" => inner.authorization = Some(value),
            "accept" => inner.accept = Some(value),
            "content-type" => inner.content_type = Some(value),
            _ => extra.push((name.to_string(), value)),
        }
    }
    if args.stream && inner.accept.is_none() {
        inner.accept = Some("text/event-stream".into());
    }
    if inner.body.is_some() && inner.content_type.is_none() {
        inner.content_type = Some("application/json".into());
    }
    if !extra.is_empty() {
        inner.headers = Some(extra);
    }
    Ok(inner)
}

/// Makes the call `repeat` times on one channel; the exit code is the first
/// failure's, or success when every call succeeded.
/// The handshake of a null client, then what it does instead of a call.
async fn play_null(mut channel: Channel, null: Option<NullClient>) -> u8 {
    if let Err(e) = channel.handshake().await {
        eprintln!("error: {e}");
        return e.exit_code();
    }
    match null {
        Some(NullClient::CrashAfterHandshake) => std::process::abort(),
        _ => exit::OK,
    }
}

async fn execute(mut channel: Channel, inner: InnerRequest, repeat: u64, include: bool) -> u8 {
    let stdout = std::io::stdout();
    // Whether the last byte printed ended a line (an atomic only because
    // the printer must be `Send`).
    let at_line_start = std::sync::atomic::AtomicBool::new(true);
    let mut print = |bytes: &[u8]| {
        let mut out = stdout.lock();
        // A closed stdout (e.g. piped into `head`) must not turn into a
        // protocol verdict; the call's outcome still decides the exit code.
        let _ = out.write_all(bytes);
        let _ = out.flush();
        if let Some(b) = bytes.last() {
            at_line_start.store(*b == b'\n', std::sync::atomic::Ordering::Relaxed);
        }
    };
    for _ in 0..repeat {
        let code = call_once(&mut channel, inner.clone(), include, &mut print).await;
        if code != exit::OK {
            return code;
        }
        // Repeated bodies each get their own line, so a reader can count them.
        if repeat > 1 && !at_line_start.load(std::sync::atomic::Ordering::Relaxed) {
            print(b"\n");
        }
    }
    exit::OK
}

async fn call_once(
    channel: &mut Channel,
    inner: InnerRequest,
    include: bool,
    print: &mut (dyn FnMut(&[u8]) + Send),
) -> u8 {
    match channel.call_with(inner, print).await {
        Ok(outcome) => {
            if include {
                eprintln!(
                    "inner status {} ({}), {} frame(s){}",
                    outcome.inner_status,
                    outcome.content_type.as_deref().unwrap_or("no content type"),
                    outcome.frames,
                    if outcome.streamed { ", streamed" } else { "" }
                );
            }
            if outcome.is_success() {
                exit::OK
            } else {
                eprintln!(
                    "error: the agent answered with HTTP {} inside the channel",
                    outcome.inner_status
                );
                exit::INNER_STATUS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
