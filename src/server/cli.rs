//! The `serve` subcommand: the reference server behind a command line.
//! Prints one JSON ready line on stdout, logs on stderr, stops on
//! SIGINT/SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::protocol::identity::AgentIdentity;
use crate::transport::tls;

use super::{parse_duration_secs, parse_rate, spawn, Bug, ServerConfig};

/// What the server answers inside the channel, and how to ask `/dispatch`
/// for a stream of a chosen shape (the numbers are `app.rs`'s limits).
const ROUTES_HELP: &str = "\
Inner routes (inside the channel, with the access key):
  GET  /health, /models, /agents/{id}
  POST /agents/{id}/run       echoes what it received and counts one execution
  POST /agents/{id}/dispatch  streams N events of S padding bytes each:
       the inner body {\"events\":N,\"size\":S} (either may be left out:
       N 3, S 16) gives N events `data: {\"n\":I,\"pad\":\"x…\"}` (I = 0..N-1,
       S x's), then `data: [DONE]`. N at most 1000000, S at most 4194304,
       N*S at most 2^30; anything else is 400 `Invalid request format`.

For example, 100 events of 1 KiB (agentId, agentAddress and accessKey are
in the ready line):
  osc-harness call --target URL --agent-address ADDR --access-key KEY \\
    --path /agents/ID/dispatch --data '{\"events\":100,\"size\":1024}' --stream";

/// Arguments of `osc-harness serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = ROUTES_HELP)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The agent's secp256k1 secret key in hex (else a fresh identity).
    #[arg(long, value_name = "HEX", conflicts_with = "identity")]
    pub agent_key_hex: Option<String>,
    /// A file holding the agent's secret key in hex.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// The agent id used in `/agents/{id}` routes (else a random UUID).
    #[arg(long, value_name = "ID")]
    pub agent_id: Option<String>,
    /// The access key inner requests must present (else a generated osk-v1 key).
    #[arg(long, value_name = "KEY")]
    pub access_key: Option<String>,
    /// The agent-scoped key (else a generated one).
    #[arg(long, value_name = "KEY")]
    pub scoped_key: Option<String>,
    /// The other agent the scoped key may reach (else a random UUID).
    #[arg(long, value_name = "ID")]
    pub scoped_agent_id: Option<String>,
    /// Session lifetime: seconds, or 90s, 5m, 1h.
    #[arg(long, value_name = "DURATION", default_value = "3600", value_parser = parse_duration_secs)]
    pub session_ttl: i64,
    /// Whether loopback callers without the relay marker are trusted.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub trust_loopback: bool,
    /// Session store bound.
    #[arg(long, value_name = "N", default_value_t = super::DEFAULT_MAX_SESSIONS)]
    pub max_sessions: usize,
    /// Handshake attempts allowed per source: N/SECS, or 0 for off.
    #[arg(long, value_name = "N/SECS", default_value = "5/60")]
    pub handshake_rate: String,
    /// Break one requirement on purpose (repeatable; see --list-bugs).
    #[arg(long = "bug", value_name = "NAME")]
    pub bugs: Vec<Bug>,
    /// How long a request body may take to arrive: seconds, or 90s, 5m.
    #[arg(long, value_name = "DURATION", default_value = "10", value_parser = parse_duration_secs)]
    pub body_timeout: i64,
    /// Serve HTTPS with this certificate chain (PEM, leaf first).
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a fresh CA and a certificate it signed for
    /// localhost, 127.0.0.1 and ::1; the CA goes to --tls-ca-out and its
    /// path into the ready line as `caCert`.
    #[arg(long)]
    pub tls_self_signed: bool,
    /// Where --tls-self-signed writes the CA certificate [default: a file
    /// named after the process id in the temporary directory].
    #[arg(long, value_name = "FILE", requires = "tls_self_signed")]
    pub tls_ca_out: Option<PathBuf>,
    /// Speak HTTP/2 only: ALPN h2 alone over TLS, prior knowledge (h2c)
    /// over plain TCP. Otherwise TLS offers h2 and http/1.1.
    #[arg(long)]
    pub http2_only: bool,
    /// Also open the relay tunnel at this URL (ws[s]://RELAY/tunnel/connect)
    /// as the Osaurus app does, and serve every relayed request through
    /// this server; the ready line waits for sign-in and gains `publicUrl`.
    /// See docs/RELAY.md.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with_all = ["tls_cert", "tls_self_signed", "http2_only"]
    )]
    pub tunnel: Option<String>,
    /// A CA (or exact certificate) to trust for a wss:// --tunnel, besides
    /// the platform's roots (repeatable).
    #[arg(long, value_name = "FILE", requires = "tunnel")]
    pub tunnel_ca_cert: Vec<PathBuf>,
    /// Print every --bug name with the requirement it breaks, then exit.
    #[arg(long)]
    pub list_bugs: bool,
}

/// Runs `serve`.
pub fn run(args: ServeArgs) -> ExitCode {
    if args.list_bugs {
        for bug in Bug::ALL {
            println!(
                "{:<28} {:<8} {}",
                bug.name(),
                bug.requirement(),
                bug.description()
            );
        }
        return ExitCode::SUCCESS;
    }
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let tunnel = match tunnel_from(&args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match config_from(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match crate::runtime::runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let identity = config.identity.clone();
    runtime.block_on(async move {
        let server = match spawn(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        let mut stopped = Box::pin(stop_signal());
        let mut ready = server.ready_line();
        let mut _host = None;
        if let Some((relay, tls)) = tunnel {
            let mut host = crate::tunnel::host::spawn(crate::tunnel::HostConfig {
                relay,
                tls,
                identity: identity.clone(),
                agent_id: server.agent_id.clone(),
                local: loopback(server.local_addr),
                max_in_flight: crate::tunnel::MAX_IN_FLIGHT,
            });
            // The app keeps retrying a relay it cannot reach; so does the
            // host, and the ready line waits for the first sign-in.
            let forever = std::time::Duration::from_secs(365 * 24 * 3600);
            let url = tokio::select! {
                _ = &mut stopped => {
                    server.shutdown().await;
                    return ExitCode::SUCCESS;
                }
                url = host.online(forever) => url,
            };
            match url {
                Ok(url) => {
                    let mut line: serde_json::Value =
                        serde_json::from_str(&ready).unwrap_or_default();
                    line["publicUrl"] = url.into();
                    ready = line.to_string();
                }
                Err(why) => {
                    eprintln!("error: --tunnel: {why}");
                    return ExitCode::from(1);
                }
            }
            _host = Some(host);
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{ready}");
        let _ = out.flush();
        drop(out);
        stopped.await;
        tracing::info!("stopping");
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// The relay URL of `--tunnel` and the TLS a `wss://` one needs.
type Tunnel = (
    String,
    Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
);

/// `--tunnel` and its trust, checked before anything starts.
fn tunnel_from(args: &ServeArgs) -> Result<Option<Tunnel>, String> {
    let Some(url) = &args.tunnel else {
        return Ok(None);
    };
    if !(url.starts_with("ws://") || url.starts_with("wss://")) {
        return Err(format!("--tunnel {url:?}: give a ws:// or wss:// URL"));
    }
    let trust = tls::TrustSettings {
        ca_certs: args.tunnel_ca_cert.clone(),
        insecure: false,
    };
    let config = tls::client_config(&trust, &[tls::ALPN_HTTP1])
        .map_err(|e| format!("--tunnel-ca-cert: {e}"))?;
    Ok(Some((url.clone(), Some(config))))
}

/// Where the tunnel reaches the server: its own address, or loopback when
/// it listens on every interface.
fn loopback(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

fn config_from(args: ServeArgs) -> Result<ServerConfig, String> {
    let mut config = ServerConfig::generated();
    config.listen = args.listen;
    config.http2_only = args.http2_only;
    let alpn: &[&[u8]] = if args.http2_only {
        &[tls::ALPN_H2]
    } else {
        &[tls::ALPN_H2, tls::ALPN_HTTP1]
    };
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls = Some(
            tls::ServerTls::from_pem_files(cert, key, alpn)
                .map_err(|e| format!("--tls-cert: {e}"))?,
        );
    }
    if args.tls_self_signed {
        let pair = tls::SelfSigned::generate(&[]).map_err(|e| format!("--tls-self-signed: {e}"))?;
        let path = args.tls_ca_out.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("osc-harness-ca-{}.pem", std::process::id()))
        });
        std::fs::write(&path, &pair.ca_pem)
            .map_err(|e| format!("--tls-ca-out {}: {e}", path.display()))?;
        config.tls = Some(
            pair.server_tls(alpn)
                .map_err(|e| format!("--tls-self-signed: {e}"))?,
        );
        config.tls_ca_file = Some(path);
    }
    if let Some(hex) = &args.agent_key_hex {
        config.identity =
            AgentIdentity::from_hex(hex).map_err(|e| format!("--agent-key-hex: {e}"))?;
    }
    if let Some(path) = &args.identity {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--identity {}: {e}", path.display()))?;
        config.identity = AgentIdentity::from_hex(text.trim())
            .map_err(|e| format!("--identity {}: {e}", path.display()))?;
    }
    if let Some(id) = args.agent_id {
        config.agent_id = id;
    }
    if let Some(k) = args.access_key {
        config.access_key = k;
    }
    if let Some(k) = args.scoped_key {
        config.scoped_key = Some(k);
    }
    if let Some(id) = args.scoped_agent_id {
        config.scoped_agent_id = id;
    }
    if config.scoped_agent_id == config.agent_id {
        return Err("--scoped-agent-id must differ from --agent-id".into());
    }
    if args.max_sessions == 0 {
        return Err("--max-sessions must be at least 1".into());
    }
    if args.body_timeout <= 0 {
        return Err("--body-timeout must be at least one second".into());
    }
    config.session_ttl_secs = args.session_ttl;
    config.trust_loopback = args.trust_loopback;
    config.max_sessions = args.max_sessions;
    config.handshake_rate =
        parse_rate(&args.handshake_rate).map_err(|e| format!("--handshake-rate: {e}"))?;
    config.bugs = args.bugs.into_iter().collect();
    config.body_read_timeout = std::time::Duration::from_secs(args.body_timeout as u64);
    Ok(config)
}

/// Installs the stop signals now and returns a future that ends on the
/// first of them. They must be in place before the ready line goes out: a
/// supervisor may signal the moment it reads that line.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate()).ok();
        let interrupt = signal(SignalKind::interrupt()).ok();
        async move {
            async fn next(stream: Option<tokio::signal::unix::Signal>) {
                match stream {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = next(term) => {}
                _ = next(interrupt) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
