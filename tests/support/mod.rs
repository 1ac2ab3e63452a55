//! Helpers the command-line tests share: the harness binary, child
//! processes that announce themselves with a JSON ready line and are killed
//! when a test lets go of them, commands run with a deadline, and the
//! Python environment the interop tests run their Python peers from.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, OnceLock};
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

/// A path inside the repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A JSON file of the repository.
pub fn load(path: &str) -> Value {
    serde_json::from_slice(&std::fs::read(repo(path)).expect("file reads")).expect("file is JSON")
}

/// Changes one character in the middle of `text` to another of its kind
/// (an empty string gains one).
pub fn mutate(text: &str) -> String {
    if text.is_empty() {
        return "A".into();
    }
    let mut chars: Vec<char> = text.chars().collect();
    let i = chars.len() / 2;
    chars[i] = match chars[i] {
        '0' => '1',
        c if c.is_ascii_hexdigit() => '0',
        'A' => 'B',
        _ => 'A',
    };
    chars.into_iter().collect()
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

/// The environment variable that opts out of the tests needing Python.
pub const SKIP_INTEROP: &str = "OSC_SKIP_INTEROP";

/// The interpreter the interop environment is built from, looked up on
/// `PATH`.
pub const BASE_PYTHON: &str = "python3";

/// The interpreter of the interop environment, with the pinned packages of
/// `interop/python/requirements.txt` installed: every Python peer a test
/// starts runs from it.
///
/// Built under the target directory on first use (behind a file lock, so
/// parallel test binaries build it once), reused while the requirements
/// and the base interpreter stay the same, rebuilt when either changes.
/// `None` only when `OSC_SKIP_INTEROP=1`, after one line on stderr naming
/// the skipped test; any other failure panics with its cause and a command
/// that reproduces it, so no test passes without its Python peer.
pub fn interop_python() -> Option<&'static Path> {
    static ENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    if skip_interop() {
        return None;
    }
    let env = ENV.get_or_init(|| {
        let built = PythonEnv::ensure(
            BASE_PYTHON.as_ref(),
            &interop_env_dir(),
            &repo("interop/python/requirements.txt"),
        );
        match built {
            Ok(env) => {
                say(&format!(
                    "interop: Python environment {} {}",
                    env.dir.display(),
                    if env.reused { "reused" } else { "built" }
                ));
                Ok(env.python)
            }
            Err(e) => Err(e.to_string()),
        }
    });
    match env {
        Ok(python) => Some(python),
        Err(e) => panic!("{e}\n(set {SKIP_INTEROP}=1 to skip the tests that need Python)"),
    }
}

/// True when `OSC_SKIP_INTEROP=1` opts out of the tests needing Python;
/// then it prints one line naming the calling test as skipped.
pub fn skip_interop() -> bool {
    let skip = std::env::var(SKIP_INTEROP).as_deref() == Ok("1");
    if skip {
        say(&format!(
            "skipped {}: {SKIP_INTEROP}=1, so it checked nothing",
            current_test()
        ));
    }
    skip
}

/// One line on stderr past the test harness's output capture (which
/// takes only the print macros), written at once so lines do not mix.
fn say(line: &str) {
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

/// Where the interop environment lives: `interop-venv` in the target
/// directory.
pub fn interop_env_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("interop-venv")
}

/// `binary::test` for the test running on this thread (the test harness
/// names each test's thread after it).
fn current_test() -> String {
    let binary = module_path!().split("::").next().unwrap_or("");
    let test = thread::current().name().unwrap_or("?").to_string();
    format!("{binary}::{test}")
}

/// Single-quotes `path` for `sh`, as a `--client-cmd` word.
pub fn sh_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// A Python virtual environment with a requirements file installed.
#[derive(Debug)]
pub struct PythonEnv {
    /// The environment's directory.
    pub dir: PathBuf,
    /// Its interpreter.
    pub python: PathBuf,
    /// True when an earlier build was up to date and used as it was.
    pub reused: bool,
}

/// Why a Python environment could not be built; each names the command
/// that reproduces the failure.
#[derive(Debug, thiserror::Error)]
pub enum PythonEnvError {
    /// The base interpreter is not on `PATH` (or cannot run).
    #[error(
        "the Python interop environment needs `{python}`, which was not found on PATH \
         ({source}); install Python 3 (with its venv module) and check with `{python} --version`"
    )]
    NoInterpreter {
        /// The interpreter looked for.
        python: String,
        /// What starting it said.
        source: std::io::Error,
    },
    /// A step of the build ran and failed.
    #[error("the Python interop environment could not be built: {step} failed ({status})\n{output}\nreproduce with: {command}{hint}")]
    StepFailed {
        /// What the step does.
        step: &'static str,
        /// Its exit status.
        status: String,
        /// The end of its stdout and stderr.
        output: String,
        /// The shell command that runs it again.
        command: String,
        /// Advice for a known cause, or empty.
        hint: &'static str,
    },
    /// A file of the environment could not be read or written.
    #[error("the Python interop environment could not be built: {what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The stamp file inside an environment: what it was built from.
const STAMP: &str = "osc-harness-stamp";

impl PythonEnv {
    /// Builds the environment in `dir` from the interpreter `python` (found
    /// on `PATH`) and installs `requirements` with pip, unless the stamp a
    /// previous build left says it was built from the same interpreter and
    /// the same requirements. A file lock next to `dir` serialises builders
    /// across processes; the stamp is written last, so an interrupted
    /// build is redone.
    pub fn ensure(
        python: &OsStr,
        dir: &Path,
        requirements: &Path,
    ) -> Result<PythonEnv, PythonEnvError> {
        let shown = python.to_string_lossy().into_owned();
        // The interpreter's identity is part of the stamp, and probing it
        // first means a missing interpreter is reported as such even when
        // an old environment is still on disk.
        let probe = Command::new(python)
            .args([
                "-c",
                "import sys; print(sys.executable); print(sys.version)",
            ])
            .output()
            .map_err(|source| PythonEnvError::NoInterpreter {
                python: shown.clone(),
                source,
            })?;
        if !probe.status.success() {
            return Err(step_failed(
                "probing the interpreter",
                &probe,
                format!("{shown} -c 'import sys; print(sys.version)'"),
                "",
            ));
        }
        let wanted =
            std::fs::read_to_string(requirements).map_err(|source| PythonEnvError::Io {
                what: "reading",
                path: requirements.to_path_buf(),
                source,
            })?;
        let stamp = format!(
            "interpreter:\n{}requirements:\n{wanted}",
            text(&probe.stdout)
        );

        let lock_path = dir.with_extension("lock");
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| PythonEnvError::Io { what, path, source }
        };
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("opening", &lock_path))?;
        lock.lock().map_err(io("locking", &lock_path))?;

        let venv_python = dir.join("bin").join("python");
        let stamp_path = dir.join(STAMP);
        let env = |reused| PythonEnv {
            dir: dir.to_path_buf(),
            python: venv_python.clone(),
            reused,
        };
        if venv_python.exists() && std::fs::read_to_string(&stamp_path).ok() == Some(stamp.clone())
        {
            return Ok(env(true));
        }

        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(io("removing", dir))?;
        }
        let out = Command::new(python)
            .args(["-m", "venv"])
            .arg(dir)
            .output()
            .map_err(|source| PythonEnvError::NoInterpreter {
                python: shown.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(step_failed(
                "creating the virtual environment",
                &out,
                format!("{shown} -m venv {}", dir.display()),
                "\n(on Debian and Ubuntu the venv module with its pip is the package \
                 `python3-venv`: `apt-get install python3-venv`)",
            ));
        }
        let out = Command::new(&venv_python)
            .args(["-m", "pip", "install", "--disable-pip-version-check", "-r"])
            .arg(requirements)
            .output()
            .map_err(io("running", &venv_python))?;
        if !out.status.success() {
            return Err(step_failed(
                "installing the requirements with pip",
                &out,
                format!(
                    "{} -m pip install -r {}",
                    venv_python.display(),
                    requirements.display()
                ),
                "",
            ));
        }
        let tmp = dir.join(format!("{STAMP}.tmp"));
        std::fs::write(&tmp, &stamp).map_err(io("writing", &tmp))?;
        std::fs::rename(&tmp, &stamp_path).map_err(io("writing", &stamp_path))?;
        Ok(env(false))
    }
}

/// A failed step, with the last lines of what it printed.
fn step_failed(
    step: &'static str,
    out: &Output,
    command: String,
    hint: &'static str,
) -> PythonEnvError {
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let lines: Vec<&str> = all.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    PythonEnvError::StepFailed {
        step,
        status: out.status.to_string(),
        output: tail,
        command,
        hint,
    }
}
/// A string a hostile target could put anywhere in a report: if any
/// renderer let it through unescaped, a browser would run it.
pub const HOSTILE: &str =
    "<script>console.error('xss')</script><img src=x onerror=\"console.error('img')\">'\"&";

/// A report whose every target-controlled string is [`HOSTILE`], with a
/// failure, a skip and one long transcript (streamed frames included).
pub fn hostile_report(exchanges: usize) -> osc_harness::report::RunReport {
    use osc_harness::report::{Exchange, RunReport, ScenarioResult, Verdict};
    let exchange = |step: usize| {
        Exchange {
        step,
        action: format!("call {HOSTILE}"),
        request_line: "POST /secure/call".into(),
        request_body: format!("{{\"sid\":\"{HOSTILE}\"}}"),
        inner_request: Some(format!("GET /agents/x Authorization: Bearer <redacted> {HOSTILE}")),
        status: 200,
        response_body: format!(
            "data: {{\"seq\":0,\"ct\":\"AAAA\"}}\n\ndata: {{\"seq\":1,\"fin\":true,\"ct\":\"{HOSTILE}\"}}\n\n"
        ),
        inner_response: Some(format!("200 text/plain {HOSTILE}")),
        note: Some(format!("the relay changed {HOSTILE}")),
    }
    };
    let scenario = |id: &str, verdict: Verdict, n: usize| ScenarioResult {
        id: id.into(),
        title: format!("title {HOSTILE}"),
        category: "replay".into(),
        level: "MUST".into(),
        requirements: vec!["CALL-2".into(), "HS-1".into()],
        verdict,
        reason: (verdict != Verdict::Pass).then(|| format!("reason {HOSTILE}")),
        expected: (verdict == Verdict::Fail).then(|| format!("expected {HOSTILE}")),
        repro: Some(format!("osc-harness test --target self --only {id}")),
        precondition: false,
        known: false,
        duration_ms: 3,
        transcript: (0..n).map(exchange).collect(),
    };
    RunReport {
        target: format!("http://127.0.0.1:1/{HOSTILE}"),
        duration_ms: 1234,
        scenarios: vec![
            scenario("hostile-fail", Verdict::Fail, 2),
            scenario("hostile-skip", Verdict::Skip, 0),
            scenario("hostile-long", Verdict::Pass, exchanges),
            scenario(&format!("odd-id-{HOSTILE}"), Verdict::Warn, 1),
        ],
        not_exercised: vec!["ENC-1".into()],
        run_problems: vec![format!("problem {HOSTILE}")],
        insecure: false,
    }
}

/// The `fuzz` summary of a short run against the in-process reference
/// server, written as HTML to `path`; returns the JSON summary too.
pub fn fuzz_html(path: &Path, findings: &Path) -> Value {
    let mut cmd = harness();
    cmd.args(["fuzz", "--target", "self", "--max-execs", "400", "--quiet"])
        .arg("--findings")
        .arg(findings)
        .arg("--report")
        .arg(path);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    serde_json::from_slice(&out.stdout).expect("the summary is JSON")
}

/// The `src`/`href`/`action`/`srcset` attribute values of an HTML page's
/// tags, read attribute by attribute so quoted values (escaped hostile
/// text included) are never mistaken for attributes.
pub fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for tag in html.split('<').skip(1) {
        let chars: Vec<char> = tag.chars().collect();
        // Skip the tag name.
        let mut i = chars
            .iter()
            .position(|c| c.is_whitespace() || *c == '>')
            .unwrap_or(chars.len());
        while i < chars.len() && chars[i] != '>' {
            while i < chars.len() && (chars[i].is_whitespace() || chars[i] == '/') {
                i += 1;
            }
            let start = i;
            while i < chars.len() && !"= \t\n>".contains(chars[i]) {
                i += 1;
            }
            let name: String = chars[start..i]
                .iter()
                .collect::<String>()
                .to_ascii_lowercase();
            let mut value = String::new();
            if i < chars.len() && chars[i] == '=' {
                i += 1;
                if i < chars.len() && (chars[i] == '"' || chars[i] == '\'') {
                    let q = chars[i];
                    i += 1;
                    while i < chars.len() && chars[i] != q {
                        value.push(chars[i]);
                        i += 1;
                    }
                    i += 1;
                } else {
                    while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '>' {
                        value.push(chars[i]);
                        i += 1;
                    }
                }
            }
            if matches!(
                name.as_str(),
                "src" | "href" | "action" | "xlink:href" | "srcset"
            ) {
                out.push(value);
            }
            if start == i {
                i += 1;
            }
        }
    }
    out
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
