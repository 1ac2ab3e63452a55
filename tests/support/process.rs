//! The harness binary and child processes: commands run with a deadline,
//! servers that announce themselves with a JSON ready line and are killed
//! when a test lets go of them, and what a run printed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use osc_harness::server::RunningServer;
use serde_json::Value;

/// The `osc-harness` binary under test.
pub const EXE: &str = env!("CARGO_BIN_EXE_osc-harness");

/// How long a server may take to print its ready line.
pub const READY_WAIT: Duration = Duration::from_secs(30);

/// How long [`run`] lets a command take.
pub const RUN_WAIT: Duration = Duration::from_secs(120);

/// The harness binary with plain output: no colour, no backtraces.
pub fn harness() -> Command {
    let mut cmd = Command::new(EXE);
    cmd.env("NO_COLOR", "1").env("RUST_BACKTRACE", "0");
    cmd
}

/// `command --target URL --agent-address 0x… --access-key KEY` for an
/// in-process reference server.
pub fn target_args(command: &str, s: &RunningServer) -> Vec<String> {
    vec![
        command.into(),
        "--target".into(),
        s.url.clone(),
        "--agent-address".into(),
        s.agent_address.to_checksum(),
        "--access-key".into(),
        s.access_key.clone(),
    ]
}

/// Bytes as text, lossily.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Exit code and both streams, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// Exit code (-1 for a signal), stdout and stderr.
pub fn outcome(out: Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// A child process that is killed when the test lets go of it.
pub struct Running {
    /// The process.
    pub child: Child,
    /// Its ready line.
    pub ready: Value,
}

impl Running {
    /// A string field of the ready line.
    pub fn field(&self, name: &str) -> String {
        self.ready[name]
            .as_str()
            .unwrap_or_else(|| panic!("ready line lacks {name}: {}", self.ready))
            .to_string()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a server and waits (at most [`READY_WAIT`]) for its one-line JSON
/// ready message; the rest of its stdout is drained so it never blocks.
pub fn start(mut cmd: Command) -> Running {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn server");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line.trim_start().starts_with('{') => {
                    let _ = tx.send(line.clone());
                    // Keep draining so the server never blocks on a full pipe.
                    let _ = std::io::copy(&mut reader, &mut std::io::sink());
                    return;
                }
                Ok(_) => {}
            }
        }
    });
    // Owned before the wait, so a server that never gets ready is killed.
    let mut running = Running {
        child,
        ready: Value::Null,
    };
    let line = rx
        .recv_timeout(READY_WAIT)
        .expect("server printed no ready line in time");
    running.ready = serde_json::from_str(&line).expect("ready line is JSON");
    running
}

/// Runs a command to completion within [`RUN_WAIT`], killing it if it
/// overstays.
pub fn run(cmd: Command) -> Output {
    run_bounded(cmd, RUN_WAIT)
}

/// Runs a command to completion, killing it (and failing the test) if it
/// takes longer than `limit`.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    wait_bounded(&mut cmd, limit)
}

/// How long [`exec`] lets a command take: only a guard against a hang,
/// since a fuzz run or a whole suite may take minutes on a busy machine.
pub const HANG_WAIT: Duration = Duration::from_secs(600);

/// Runs `cmd` to completion (killing it past [`HANG_WAIT`]) and returns
/// its exit code (-1 for a signal), stdout and stderr.
pub fn exec(cmd: &mut Command) -> (i32, String, String) {
    outcome(wait_bounded(cmd, HANG_WAIT))
}

/// A command's stdout as JSON; panics with what it printed when it is not.
pub fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", describe(out)))
}

fn wait_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let (tx, rx) = mpsc::channel();
    let pid = child.id();
    let waiter = thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = tx.send(());
        out
    });
    if rx.recv_timeout(limit).is_err() {
        // The child moved into the waiter thread; stop it by its own pid.
        let _ = Command::new("kill").arg(pid.to_string()).status();
        panic!("command did not finish within {limit:?} ({cmd:?})");
    }
    waiter.join().expect("waiter").expect("output")
}

/// `serve` as its own process on `listen` (no handshake limit, plus
/// `extra` flags), and the `test` arguments that reach it and run only
/// `only` with a JSON report (no `--relay-origin`: each command's default).
pub fn served_for_test(listen: &str, extra: &[&str], only: &str) -> (Running, Vec<String>) {
    let mut cmd = harness();
    cmd.args(["serve", "--listen", listen, "--handshake-rate", "0"])
        .args(extra);
    let server = start(cmd);
    let args = [
        "test",
        "--target",
        &server.field("url"),
        "--agent-address",
        &server.field("agentAddress"),
        "--access-key",
        &server.field("accessKey"),
        "--agent-id",
        &server.field("agentId"),
        "--handshake-budget",
        "none",
        "--only",
        only,
        "--format",
        "json",
    ]
    .map(String::from)
    .to_vec();
    (server, args)
}
