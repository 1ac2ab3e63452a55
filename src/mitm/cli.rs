//! The `mitm` subcommand: run the relay until interrupted (or for
//! `--duration`), then print what it saw and whether the protocol held.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::transport::{tls, Limits, Target};

use super::{spawn, Assessment, Attack, MitmConfig, Observed};

/// What `mitm` prints and how it exits, for a script that starts it.
const MITM_HELP: &str = "\
Output: the first line on stdout is one JSON object, the ready line, printed
once the relay listens: {\"url\":\"http://127.0.0.1:PORT\",\"attacks\":[…]}, plus
\"caCert\" with --listen-tls-self-signed. Point the client at `url`. The
summary follows when the run ends (--duration, or Ctrl-C).

Exit codes: 0 the protocol held, or only the client can tell (the attack
reached it); 1 a check failed, a canary crossed or an attack got through;
2 usage; 3 nothing was judged: inconclusive (no traffic crossed the relay, or
nothing the attack needs) or not applicable (reorder/duplicate on buffered
answers, which are one frame).";

/// Relay between a real client and a real server, checking (and optionally
/// attacking) the traffic.
#[derive(Debug, clap::Args)]
#[command(after_help = MITM_HELP)]
pub struct MitmArgs {
    /// Where to listen (required), e.g. 127.0.0.1:9090; port 0
    /// (127.0.0.1:0) picks a free port, which the ready line's `url` names.
    #[arg(long, required_unless_present = "list_attacks")]
    pub listen: Option<SocketAddr>,
    /// The real server's base URL (http:// or https://; trust as for
    /// every command: platform roots, --ca-cert, --insecure).
    #[arg(long, required_unless_present = "list_attacks")]
    pub upstream: Option<String>,
    /// Serve HTTPS to the client with a fresh CA and a certificate for
    /// localhost/127.0.0.1/::1; the CA's path is `caCert` in the ready line.
    #[arg(long)]
    pub listen_tls_self_signed: bool,
    /// Where --listen-tls-self-signed writes its CA certificate [default: a
    /// file named after the process id in the temporary directory].
    #[arg(long, value_name = "FILE", requires = "listen_tls_self_signed")]
    pub tls_ca_out: Option<PathBuf>,
    /// How the upstream is reached: TLS trust, HTTP version, proxy.
    #[command(flatten)]
    pub net: crate::flags::target::NetArgs,
    /// An active attack (repeatable; one at a time is the intended use).
    #[arg(long = "attack", value_name = "NAME")]
    pub attacks: Vec<Attack>,
    /// Canaries, how long to run, listing the attacks.
    #[command(flatten)]
    pub check: CheckArgs,
    /// Append one JSON object per exchange (sizes and timing only) to FILE.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// The agent id the `plaintext` attack puts in its agent route.
    #[arg(long, default_value = "default")]
    pub agent_id: String,
    /// The access key the `plaintext` attack presents (so the server's
    /// answer is its 426 gate rather than its access-key check).
    #[arg(long, value_name = "KEY")]
    pub plaintext_key: Option<String>,
}

/// The flags every checking relay shares (`mitm`, `relay`): what must
/// never be seen in what it carries, how long it runs, and the listing of
/// its attacks.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// A string that must never be seen in what the relay carries
    /// (repeatable): the access key, a prompt.
    #[arg(long = "canary", value_name = "TEXT")]
    pub canaries: Vec<String>,
    /// Stop after this many seconds instead of waiting for Ctrl-C.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// List the attacks and exit.
    #[arg(long)]
    pub list_attacks: bool,
}

/// Starts a checking relay (`start`) on the one runtime and hands it to
/// `serve`, which prints its ready line, waits and sums up; a runtime or a
/// relay that cannot start is an error, exit 2.
pub fn serve_checking<R, E, F>(
    start: impl std::future::Future<Output = Result<R, E>>,
    serve: impl FnOnce(R) -> F,
) -> ExitCode
where
    E: std::fmt::Display,
    F: std::future::Future<Output = ExitCode>,
{
    let runtime = match crate::runtime::runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        match start.await {
            Ok(relay) => serve(relay).await,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    })
}

impl CheckArgs {
    /// Waits until the run ends: `--duration` seconds, else Ctrl-C.
    pub async fn until_done(&self) {
        match self.duration {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

/// Runs the command: 0 when the protocol held (or only the client can
/// tell), 1 when a check failed or an attack got through, 2 on a bad
/// command line, 3 when nothing was judged (no traffic: inconclusive; an
/// attack that cannot apply to what was relayed: not applicable).
pub fn run(args: MitmArgs) -> ExitCode {
    if args.check.list_attacks {
        for a in Attack::ALL {
            let scope = if a.is_mitm() {
                "mitm"
            } else {
                "client scenarios"
            };
            println!("{:<16} {:<17} {}", a.name(), scope, a.description());
        }
        return ExitCode::SUCCESS;
    }
    let (Some(listen), Some(upstream)) = (args.listen, args.upstream.as_deref()) else {
        eprintln!("error: --listen and --upstream are required");
        return ExitCode::from(2);
    };
    let upstream = match Target::parse(upstream) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: --upstream: {e}");
            return ExitCode::from(2);
        }
    };
    let upstream = match args.net.net() {
        Ok(net) => upstream.with_net(net),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let (tls, ca_cert) = if args.listen_tls_self_signed {
        let path = args.tls_ca_out.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("osc-harness-mitm-ca-{}.pem", std::process::id()))
        });
        let made = tls::SelfSigned::generate(&[]).and_then(|pair| {
            std::fs::write(&path, &pair.ca_pem).map_err(|e| tls::TlsConfigError::Pem {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            pair.server_tls(&[tls::ALPN_HTTP1])
        });
        match made {
            Ok(t) => (Some(t), Some(path)),
            Err(e) => {
                eprintln!("error: --listen-tls-self-signed: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        (None, None)
    };
    let config = MitmConfig {
        listen,
        upstream,
        attacks: args.attacks.iter().copied().collect::<BTreeSet<_>>(),
        canaries: args.check.canaries.clone(),
        agent_id: args.agent_id.clone(),
        plaintext_key: args.plaintext_key.clone(),
        limits: Limits::default(),
        log: args.log.clone(),
        tls,
    };
    serve_checking(spawn(config), |relay| async move {
        let mut ready = serde_json::json!({"url": relay.url, "attacks": relay.attacks().iter().map(|a| a.name()).collect::<Vec<_>>()});
        if let Some(ca) = &ca_cert {
            ready["caCert"] = ca.display().to_string().into();
        }
        println!("{ready}");
        args.check.until_done().await;
        let observed = relay.observed();
        let outcome = relay.assessment();
        let attacks = relay.attacks();
        relay.shutdown().await;
        print!("{}", summary(&attacks, &observed, &outcome));
        ExitCode::from(outcome.outcome.exit_code())
    })
}

/// The end-of-run summary.
pub fn summary(attacks: &[Attack], o: &Observed, outcome: &Assessment) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let names: Vec<_> = attacks.iter().map(|a| a.name()).collect();
    let mode = if names.is_empty() {
        "passive".to_string()
    } else {
        names.join(", ")
    };
    let _ = writeln!(s, "mitm summary ({mode})");
    let _ = writeln!(s, "  client: {}", outcome.client);
    let _ = writeln!(s, "  server: {}", outcome.server);
    let _ = writeln!(s, "  bytes: {} up, {} down", o.bytes_up, o.bytes_down);
    if o.tampered_hellos > 0 {
        let _ = writeln!(
            s,
            "  tampered hellos: {}, calls made on them: {}",
            o.tampered_hellos, o.calls_on_tampered_sessions
        );
    }
    if o.canary_hits.is_empty() {
        let _ = writeln!(s, "  canaries: none crossed in plaintext");
    }
    for hit in &o.canary_hits {
        let _ = writeln!(s, "  CANARY: {hit}");
    }
    for p in &o.problems {
        let _ = writeln!(s, "  check: {p}");
    }
    if outcome.attacks.len() > 1 {
        for (a, one) in &outcome.attacks {
            let _ = writeln!(s, "  attack {a}: {}", one.describe());
        }
    }
    let _ = writeln!(s, "  verdict: {}", outcome.outcome.describe());
    s
}
