//! The `relay` subcommand: run the relay until interrupted (or for
//! `--duration`), then print what it carried and whether the blind pipe
//! held.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use super::{spawn, Assessment, Observed, RelayAttack, RelayConfig};
use crate::mitm::cli::{serve_checking, CheckArgs};

/// What `relay` prints and how it exits, for a script that starts it.
const RELAY_HELP: &str = "\
Output: the first line on stdout is one JSON object, the ready line, printed
once the relay listens: {\"url\":\"http://127.0.0.1:PORT\",\"tunnelUrl\":
\"ws://127.0.0.1:PORT/tunnel/connect\",\"baseDomain\":…,\"attacks\":[…]}.
Agents' hosts open `tunnelUrl` (`osc-harness serve --tunnel URL`); an agent is
then `http://0x<address>.<base-domain>:PORT`. Where that name does not resolve,
reach it through the relay as a proxy: `--proxy URL --target
http://0x<address>.<base-domain>:PORT` (see docs/RELAY.md). The summary follows
when the run ends (--duration, or Ctrl-C).

Exit codes: 0 the blind pipe held (and every attack was refused, or only the
client can tell); 1 a canary was in a frame, or an attack got through; 2
usage; 3 nothing was judged (no request crossed).";

/// A relay keeping the Osaurus relay's tunnel contract, checking (and
/// optionally attacking) what it carries.
#[derive(Debug, clap::Args)]
#[command(after_help = RELAY_HELP)]
pub struct RelayArgs {
    /// Where to listen, e.g. 127.0.0.1:9090; port 0 picks a free port.
    #[arg(long, required_unless_present = "list_attacks")]
    pub listen: Option<SocketAddr>,
    /// The domain agents are subdomains of (`0x<address>.<domain>`).
    #[arg(long, default_value = "localhost")]
    pub base_domain: String,
    /// Requests per minute per agent address; 0 is off.
    #[arg(long, value_name = "N", default_value_t = super::DEFAULT_AGENT_RATE)]
    pub agent_rate: u32,
    /// Requests per minute per caller IP; 0 is off.
    #[arg(long, value_name = "N", default_value_t = super::DEFAULT_CALLER_RATE)]
    pub caller_rate: u32,
    /// Seconds to wait for an answer's first frame before 504.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub first_byte_timeout: u64,
    /// Seconds a stream may stay silent (or a caller unread) before it ends.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub idle_timeout: u64,
    /// An attack (repeatable; one at a time is the intended use).
    #[arg(long = "attack", value_name = "NAME")]
    pub attacks: Vec<RelayAttack>,
    /// Canaries (never in a frame), how long to run, listing the attacks.
    #[command(flatten)]
    pub check: CheckArgs,
}

/// Runs `relay`: see [`RELAY_HELP`] for the exit codes.
pub fn run(args: RelayArgs) -> ExitCode {
    if args.check.list_attacks {
        for a in RelayAttack::ALL {
            println!("{:<16} {}", a.name(), a.description());
        }
        return ExitCode::SUCCESS;
    }
    let Some(listen) = args.listen else {
        eprintln!("error: --listen is required");
        return ExitCode::from(2);
    };
    if args.first_byte_timeout == 0 || args.idle_timeout == 0 {
        eprintln!("error: the timeouts must be at least one second");
        return ExitCode::from(2);
    }
    let mut config = RelayConfig::new(listen, &args.base_domain);
    config.agent_rate = (args.agent_rate > 0).then_some(args.agent_rate);
    config.caller_rate = (args.caller_rate > 0).then_some(args.caller_rate);
    config.first_byte_timeout = Duration::from_secs(args.first_byte_timeout);
    config.idle_timeout = Duration::from_secs(args.idle_timeout);
    config.attacks = args.attacks.iter().copied().collect();
    config.canaries = args.check.canaries.clone();
    serve_checking(spawn(config), |relay| async move {
        let ready = serde_json::json!({
            "url": relay.url,
            "tunnelUrl": relay.tunnel_url,
            "baseDomain": relay.state.config.base_domain,
            "attacks": relay.attacks().iter().map(|a| a.name()).collect::<Vec<_>>(),
        });
        println!("{ready}");
        args.check.until_done().await;
        let observed = relay.observed();
        let assessment = relay.assessment();
        relay.shutdown().await;
        print!("{}", summary(&observed, &assessment));
        ExitCode::from(assessment.outcome.exit_code())
    })
}

/// The end-of-run summary.
pub fn summary(o: &Observed, a: &Assessment) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let names: Vec<_> = a.attacks.iter().map(|(x, _)| x.name()).collect();
    let mode = if names.is_empty() {
        "faithful".to_string()
    } else {
        names.join(", ")
    };
    let _ = writeln!(s, "relay summary ({mode})");
    let _ = writeln!(
        s,
        "  carried: {} tunnel(s), {} request(s) ({} handshakes, {} calls), {} response(s), {} stream(s) of {} chunk(s); {} frames, {} bytes",
        o.tunnels, o.requests, o.handshakes, o.calls, o.responses, o.streams, o.chunks, o.frames, o.frame_bytes
    );
    if !o.own_answers.is_empty() {
        let _ = writeln!(s, "  answered itself: {}", o.own_answers.join(", "));
    }
    if o.canary_hits.is_empty() {
        let _ = writeln!(s, "  blind pipe: no canary in any frame");
    }
    for hit in &o.canary_hits {
        let _ = writeln!(s, "  CANARY: {hit}");
    }
    for (x, c) in &a.attacks {
        let _ = writeln!(s, "  attack {x}: {}", c.describe());
    }
    let _ = writeln!(s, "  verdict: {}", a.outcome.describe());
    s
}
