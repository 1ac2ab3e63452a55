//! The `test-client` and `adversary` subcommands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::report::ReportArgs;
use crate::report::{exchange_lines, RunReport};

use super::model::{builtin, ClientScenario};
use super::runner::{run_all, start_adversary, AdversaryTls, Front};
use super::selftest;

const SHIM_HELP: &str = "\
The shim contract (docs/CLIENT-SHIM.md): the command is run with `sh -c`
after {url} {address} {access_key} {agent_id} {path} {mode} {calls} are
filled in (shell-quoted). It performs the call ({mode} is buffered: GET
{path}, or stream: POST {path} with body {} and Accept: text/event-stream)
{calls} times over one channel to {url} pinned to {address}; on success
it prints each inner response body and exits 0; on a detected protocol
violation it exits non-zero, optionally with a last line `osc-refusal:
<class>` (identity, truncation, order, expiry, downgrade, transport) that
must match the scenario's; exit 89 means \"not implemented\" (skip).
A refusal counts only when the honest baseline of its mode passed in the
same run (it runs first, also under --only); otherwise it is inconclusive
and never passes. A completed call counts only when the server answered
2xx to inner requests that carried the access key.
{calls} is optional: without it, scenarios that need several calls are
skipped. With --tls, {url} is https://127.0.0.1:PORT and {ca_cert} (also
optional) is the path of the PEM file of the CA made for the run, which
the client must trust. A client still running at --timeout fails the
scenario and its process group is killed.";

/// Run the client-role conformance suite against a client driven by a shim.
#[derive(Debug, clap::Args)]
#[command(after_help = SHIM_HELP)]
pub struct TestClientArgs {
    /// The shim command with placeholders (see below).
    #[arg(long, required_unless_present_any = ["list", "selftest"])]
    pub client_cmd: Option<String>,
    /// Seconds a client may run per scenario.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Run only these scenario IDs (repeatable).
    #[arg(long)]
    pub only: Vec<String>,
    /// Leave out these scenario IDs (repeatable).
    #[arg(long)]
    pub skip: Vec<String>,
    /// Reporting (`--expect` holds this client's known failures).
    #[command(flatten)]
    pub output: ReportArgs,
    /// Scenarios run at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// List the client scenarios and exit.
    #[arg(long)]
    pub list: bool,
    /// Run the matrix of the reference client and its --bug knobs instead.
    #[arg(long)]
    pub selftest: bool,
    /// Serve HTTPS only: a CA is made for the run, {url} is https and
    /// {ca_cert} is the CA's PEM file.
    #[arg(long, conflicts_with = "selftest")]
    pub tls: bool,
    /// Put each scenario's adversary behind a relay: it opens a tunnel to
    /// this relay (ws://…/tunnel/connect, as `serve --tunnel` does) and
    /// {url} is the agent's public URL there (http://0x<address>.<domain>:PORT;
    /// names under `localhost` are loopback). The relay's rate limits
    /// apply to the client's calls.
    #[arg(long, value_name = "URL", conflicts_with_all = ["selftest", "tls"])]
    pub tunnel: Option<String>,
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// The run's CA when `--tls` is on, written to `ca_out` or else to a file
/// in the temporary directory named for `command` and this process (so
/// runs side by side do not share one); `Err` is the usage exit.
fn run_tls(
    on: bool,
    ca_out: Option<PathBuf>,
    command: &str,
) -> Result<Option<AdversaryTls>, ExitCode> {
    if !on {
        return Ok(None);
    }
    let path = ca_out.unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "osc-harness-{command}-ca-{}.pem",
            std::process::id()
        ))
    });
    AdversaryTls::generate(path)
        .map(Some)
        .map_err(|e| usage(format!("--tls: {e}")))
}

/// Runs `test-client`.
pub fn run(args: TestClientArgs) -> ExitCode {
    let all = match builtin() {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    if args.list {
        for s in &all {
            println!(
                "{:<32} {:<7} {:<10} {:<20} {}",
                s.id,
                s.level.name(),
                s.category,
                s.requirements.join(","),
                s.title
            );
        }
        return ExitCode::SUCCESS;
    }
    for id in args.only.iter().chain(&args.skip) {
        if !all.iter().any(|s| &s.id == id) {
            return usage(format!("no client scenario is called {id:?} (see --list)"));
        }
    }
    // The requirements a client run answers for: those the client suite
    // checks, whatever --only/--skip chose.
    let scope: Vec<String> = crate::report::registry::Registry::builtin()
        .requirements
        .into_iter()
        .filter(|r| all.iter().any(|s| s.requirements.contains(&r.id)))
        .map(|r| r.id)
        .collect();
    let chosen: Vec<ClientScenario> = all
        .into_iter()
        .filter(|s| args.only.is_empty() || args.only.contains(&s.id))
        .filter(|s| !args.skip.contains(&s.id))
        .collect();
    let rt = match crate::runtime::runtime() {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    let timeout = Duration::from_secs(args.timeout.max(1));
    if args.selftest {
        let exe = match std::env::current_exe() {
            Ok(p) => p,
            Err(e) => return usage(format!("cannot find this program: {e}")),
        };
        let rows = rt.block_on(selftest::run_matrix(&exe, &chosen, timeout));
        print!("{}", selftest::render(&rows, &chosen));
        let nulls = rt.block_on(selftest::run_null_clients(&exe, &chosen, timeout));
        print!("{}", selftest::render_null(&nulls));
        // The kill matrix goes to each HTML report file; other formats
        // have no model for it.
        for path in &args.output.report {
            let ext = path.extension().and_then(|e| e.to_str());
            if matches!(ext, Some("html" | "htm")) {
                let page = crate::report::html::render_selftest_html(&[selftest::kill_matrix(
                    &rows, &chosen,
                )]);
                if let Err(e) = std::fs::write(path, page) {
                    return usage(format!("cannot write {}: {e}", path.display()));
                }
            }
        }
        // A subset of the scenarios cannot show every MUST killed.
        let whole = args.only.is_empty() && args.skip.is_empty();
        let unkilled = selftest::unkilled_musts(&rows, &chosen);
        if whole {
            print!("{}", selftest::render_unkilled(&unkilled));
        }
        let ok = rows.iter().all(crate::report::kill::KillRow::ok)
            && nulls.iter().all(selftest::NullRow::ok)
            && (!whole || unkilled.is_empty());
        return ExitCode::from(u8::from(!ok));
    }
    let Some(command) = args.client_cmd.clone() else {
        return usage("--client-cmd is required");
    };
    if command.contains("{ca_cert}") && !args.tls {
        return usage("the --client-cmd uses {ca_cert}, which only --tls fills in");
    }
    // One CA for the run, removed with the run.
    let tls = match run_tls(args.tls, None, "test-client") {
        Ok(t) => t,
        Err(code) => return code,
    };
    let started = Instant::now();
    let front = Front {
        tls,
        tunnel: args.tunnel.clone(),
    };
    let scenarios = rt.block_on(run_all(
        &chosen,
        &command,
        timeout,
        args.concurrency,
        &front,
    ));
    if let Some(t) = &front.tls {
        let _ = std::fs::remove_file(&t.ca_cert);
    }
    let mut report = RunReport {
        target: format!("client: {command}"),
        insecure: false,
        duration_ms: started.elapsed().as_millis() as u64,
        not_exercised: crate::report::not_exercised(&scenarios, scope.iter().map(String::as_str)),
        scenarios,
        run_problems: Vec::new(),
    };
    match args.output.finish(&mut report) {
        Ok(code) => ExitCode::from(code),
        Err(e) => usage(e),
    }
}

/// Serve one client scenario's adversary for a client that cannot be
/// spawned by a command (a mobile app, a browser extension).
#[derive(Debug, clap::Args)]
pub struct AdversaryArgs {
    /// The client scenario ID (see `test-client --list`).
    #[arg(long)]
    pub scenario: String,
    /// Where the relay listens (the URL the client uses; port 0 picks a
    /// free one, and the ready line carries the URL).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Seconds of quiet after the client's last request that mean it is done.
    #[arg(long, default_value_t = 5)]
    pub idle: u64,
    /// Serve HTTPS only, with a certificate signed by a CA made for this
    /// run; the ready line carries the https url and the CA's PEM file
    /// (`ca_cert`, and `caCert` as in `serve`'s ready line).
    #[arg(long)]
    pub tls: bool,
    /// Where --tls writes its CA certificate [default: a file in the
    /// temporary directory].
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub tls_ca_out: Option<PathBuf>,
}

/// Runs `adversary`: prints the connection details as one JSON line, waits
/// for the client to be done (quiet for `--idle` seconds after its first
/// request, or Ctrl-C), then prints what it did.
pub fn run_adversary(args: AdversaryArgs) -> ExitCode {
    let all = match builtin() {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let Some(scenario) = all.into_iter().find(|s| s.id == args.scenario) else {
        return usage(format!(
            "no client scenario is called {:?} (see test-client --list)",
            args.scenario
        ));
    };
    let rt = match crate::runtime::runtime() {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    let tls = match run_tls(args.tls, args.tls_ca_out.clone(), "adversary") {
        Ok(t) => t,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let front = Front { tls, tunnel: None };
        let adversary = match start_adversary(&scenario, args.listen, &front).await {
            Ok(a) => a,
            Err(e) => return usage(e),
        };
        let mut fields: serde_json::Map<String, serde_json::Value> = adversary
            .placeholders(scenario.mode, scenario.calls)
            .into_iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
            .collect();
        if let Some(ca) = &adversary.ca_cert {
            fields.insert(
                "caCert".into(),
                serde_json::Value::String(ca.display().to_string()),
            );
        }
        println!("{}", serde_json::Value::Object(fields));
        println!("scenario {}: {}", scenario.id, scenario.title);
        if scenario.calls > 1 {
            println!(
                "make the call {} times over one channel (one handshake)",
                scenario.calls
            );
        }
        let idle = Duration::from_secs(args.idle.max(1));
        let mut last = (0u64, Instant::now());
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                _ = &mut ctrl_c => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            let o = adversary.relay.observed();
            let activity = o.handshakes
                + o.calls
                + o.plaintext_requests
                + o.responses_delivered
                + o.client_hung_up;
            if activity != last.0 {
                last = (activity, Instant::now());
            } else if activity > 0 && last.1.elapsed() >= idle {
                break;
            }
        }
        let o = adversary.relay.observed();
        println!(
            "the client made {} handshake(s) and {} call(s)",
            o.handshakes, o.calls
        );
        // The calls the scenario asks for are not retries; only the rest are.
        if o.calls > scenario.calls {
            println!(
                "it retried: {} call(s) beyond the {} asked for",
                o.calls - scenario.calls,
                scenario.calls
            );
        }
        if o.seqs_not_rising > 0 {
            println!(
                "it reused a seq on a session {} time(s) (CALL-1)",
                o.seqs_not_rising
            );
        }
        if o.plaintext_requests > 0 {
            println!("it sent {} plaintext request(s)", o.plaintext_requests);
        }
        if o.calls_on_tampered_sessions > 0 {
            println!("it called on a session whose ServerHello was tampered with");
        }
        println!(
            "it read {} response(s) to the end and abandoned {}",
            o.responses_delivered, o.client_hung_up
        );
        println!(
            "expected: {}",
            match scenario.expect.outcome {
                super::model::Behaviour::Complete if scenario.calls > 1 =>
                    "every call completes, on one session, each seq above the last",
                super::model::Behaviour::Complete => "the call completes",
                super::model::Behaviour::Refuse => "the client reports an error and stops",
            }
        );
        println!("transcript:");
        for line in exchange_lines(&adversary.relay.http_log(Duration::from_millis(500)).await) {
            println!("  {line}");
        }
        ExitCode::SUCCESS
    })
}
