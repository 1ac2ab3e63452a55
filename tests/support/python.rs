//! The Python environment the interop tests run their Python peers from.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::thread;

use super::fixtures::repo;
use super::process::text;

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

/// The Python peer of the interop tests.
pub fn peer_script() -> PathBuf {
    repo("interop/python/osc_peer.py")
}

/// `python osc_peer.py`, waiting for its subcommand.
pub fn python_peer(python: &Path) -> Command {
    let mut cmd = Command::new(python);
    cmd.arg(peer_script());
    cmd
}

/// The Python peer's `serve` on a free loopback port, with the access key
/// `osk-v1.interop` and the agent id `interop-agent`; more flags may follow
/// before it is started.
pub fn python_serve(python: &Path) -> Command {
    let mut cmd = python_peer(python);
    cmd.args(["serve", "--port", "0", "--access-key", "osk-v1.interop"])
        .args(["--agent-id", "interop-agent"]);
    cmd
}
