//! The GitHub Action's script (`action/run.sh`, called by `action.yml`)
//! run here as a runner runs it: the runner's files (GITHUB_OUTPUT,
//! GITHUB_STEP_SUMMARY, GITHUB_ENV, GITHUB_PATH), RUNNER_TEMP,
//! GITHUB_WORKSPACE and the INPUT_* variables action.yml passes, against
//! `osc-harness serve` on loopback. It checks the reports, the job
//! summary, the outputs and the exit code, and that an expectations file
//! turns a known failure into information while an unexpected pass fails.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::{describe, harness, repo, start, Running, EXE};

/// The INPUT_* variables the action passes; cleared before each run so
/// a test never inherits one from the environment it runs in.
const INPUTS: &[&str] = &[
    "TARGET",
    "AGENT_ADDRESS",
    "ACCESS_KEY",
    "AGENT_ID",
    "VIA_RELAY",
    "CA_CERT",
    "ONLY",
    "SKIP",
    "STRICT",
    "EXPECTATIONS",
    "FUZZ_DURATION",
    "VERSION",
    "TEST_ARGS",
    "FUZZ_ARGS",
    "REPORTS_DIR",
];

/// One job's runner: its files and folders, in a temporary directory.
struct Runner {
    dir: tempfile::TempDir,
}

/// What one step of the script left behind.
struct Step {
    code: i32,
    log: String,
    outputs: Vec<(String, String)>,
}

impl Step {
    fn output(&self, name: &str) -> &str {
        self.outputs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no output {name}: {:?}\n{}", self.outputs, self.log))
    }
}

impl Runner {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["workspace", "temp", "home"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        Runner { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// Runs `run.sh MODE` with the runner's environment and `inputs`
    /// (INPUT_NAME, value); the runner's files are fresh for each step.
    fn step(&self, mode: &str, inputs: &[(&str, &str)], env: &[(&str, &str)]) -> Step {
        for f in ["output", "summary", "env", "path"] {
            let _ = std::fs::remove_file(self.path(f));
        }
        let mut cmd = Command::new("bash");
        cmd.arg(repo("action/run.sh"))
            .arg(mode)
            .env("GITHUB_OUTPUT", self.path("output"))
            .env("GITHUB_STEP_SUMMARY", self.path("summary"))
            .env("GITHUB_ENV", self.path("env"))
            .env("GITHUB_PATH", self.path("path"))
            .env("GITHUB_WORKSPACE", self.path("workspace"))
            .env("GITHUB_ACTION_PATH", repo(""))
            .env("RUNNER_TEMP", self.path("temp"))
            .env("RUNNER_OS", "Linux")
            .env("RUNNER_ARCH", "X64")
            .env("HOME", self.path("home"))
            .env("NO_COLOR", "1")
            .env_remove("OSC_HARNESS_BIN")
            .env_remove("OSC_HARNESS_ROOT");
        for name in INPUTS {
            cmd.env_remove(format!("INPUT_{name}"));
        }
        for (name, value) in inputs {
            cmd.env(format!("INPUT_{name}"), value);
        }
        for (name, value) in env {
            cmd.env(name, value);
        }
        let out = support::run(cmd);
        let outputs = self
            .read("output")
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        Step {
            code: out.status.code().unwrap_or(-1),
            log: describe(&out),
            outputs,
        }
    }
}

/// `serve` on loopback with no handshake limit, plus `extra` flags. It
/// does not trust unmarked loopback callers, as a server reached over the
/// network would not, so the fuzzer's calls from here are remote ones.
fn serve(extra: &[&str]) -> Running {
    let mut cmd = harness();
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--handshake-rate",
        "0",
        "--trust-loopback",
        "false",
    ])
    .args(extra);
    start(cmd)
}

/// The inputs that reach `server`, running only `only`.
fn inputs<'a>(server: &'a Running, only: &'a str) -> Vec<(&'a str, String)> {
    vec![
        ("TARGET", server.field("url")),
        ("AGENT_ADDRESS", server.field("agentAddress")),
        ("ACCESS_KEY", server.field("accessKey")),
        ("AGENT_ID", server.field("agentId")),
        ("ONLY", only.to_owned()),
        ("TEST_ARGS", "--handshake-budget none".to_owned()),
    ]
}

fn as_refs<'a>(v: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    v.iter().map(|(n, s)| (*n, s.as_str())).collect()
}

/// The binary under test, as an installed osc-harness on PATH would be.
fn with_bin() -> [(&'static str, &'static str); 1] {
    [("OSC_HARNESS_BIN", EXE)]
}

fn json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The scenario the test runs: fast, MUST, and broken by the knob below.
const SCENARIO: &str = "mitm-handshake-verifies";
const KNOB: &str = "wrong-signing-key";

#[test]
fn a_run_against_serve_writes_reports_summary_and_outputs() {
    let server = serve(&[]);
    let runner = Runner::new();
    // A pattern is the harness's glob: a file of the workspace it would
    // match as a shell glob must not replace it.
    std::fs::write(runner.path("workspace/mitm-handshake-verifier"), "").unwrap();
    let mut ins = inputs(&server, "mitm-handshake-verif*");
    ins.push(("FUZZ_DURATION", "2s".to_owned()));
    ins.push(("FUZZ_ARGS", "--seed 3".to_owned()));
    let step = runner.step("run", &as_refs(&ins), &with_bin());
    assert_eq!(step.code, 0, "{}", step.log);
    assert_eq!(step.output("exit-code"), "0");

    // The reports are in the folder the output names, under RUNNER_TEMP.
    let reports = PathBuf::from(step.output("reports-dir"));
    assert!(reports.starts_with(runner.path("temp")), "{reports:?}");
    let report = json(&reports.join("osc-report.json"));
    assert_eq!(report["schema"], "osc-harness/test-report/v1");
    assert_eq!(report["scenarios"][0]["id"], SCENARIO);
    assert_eq!(report["scenarios"][0]["verdict"], "pass");
    let junit = std::fs::read_to_string(reports.join("osc-report.xml")).unwrap();
    assert!(
        junit.contains("<testsuite") && junit.contains(SCENARIO),
        "{junit}"
    );
    let html = std::fs::read_to_string(reports.join("osc-report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") || html.starts_with("<!doctype html>"));
    let fuzz = json(&reports.join("fuzz-summary.json"));
    assert!(fuzz["execs"].as_u64().unwrap_or(0) > 0, "{fuzz}");
    assert!(reports.join("fuzz-report.html").is_file());

    // The summary states the run's own coverage line, and the fuzz run.
    let cov = &report["must_coverage"];
    let line = format!(
        "MUST requirements exercised: {} of {}",
        cov["exercised"], cov["total"]
    );
    let summary = runner.read("summary");
    assert!(summary.contains(&line), "{summary}");
    assert_eq!(step.output("must-coverage"), line);
    assert!(summary.contains("### Fuzzing"), "{summary}");
    assert!(
        summary.contains(&format!("{} executions", fuzz["execs"])),
        "{summary}"
    );
    assert!(!summary.contains("### Failures"), "{summary}");
    // Later steps of the job find the reports and the binary.
    assert!(runner.read("env").contains("OSC_HARNESS_REPORTS="));
}

#[test]
fn a_failure_is_listed_with_its_rerun_line_and_fails_the_run() {
    let server = serve(&["--bug", KNOB]);
    let runner = Runner::new();
    let step = runner.step("run", &as_refs(&inputs(&server, SCENARIO)), &with_bin());
    assert_eq!(step.code, 1, "{}", step.log);
    assert_eq!(step.output("exit-code"), "1");
    let summary = runner.read("summary");
    let failures = summary
        .split_once("### Failures (MUST)")
        .unwrap_or_else(|| panic!("no failures section: {summary}"))
        .1;
    assert!(failures.contains(&format!("`{SCENARIO}`")), "{summary}");
    assert!(
        failures.contains("rerun: `osc-harness test") && failures.contains(SCENARIO),
        "{summary}"
    );
}

#[test]
fn expectations_turn_a_known_failure_into_information() {
    let server = serve(&["--bug", KNOB]);
    let runner = Runner::new();
    // A path relative to the workspace, as a workflow would give it.
    std::fs::create_dir(runner.path("workspace/ci")).unwrap();
    std::fs::write(
        runner.path("workspace/ci/osc-expect.toml"),
        format!("[[known]]\nid = \"{SCENARIO}\"\nverdict = \"fail\"\nreason = \"signs with the wrong key (tracked)\"\n"),
    )
    .unwrap();
    let mut ins = inputs(&server, SCENARIO);
    ins.push(("EXPECTATIONS", "ci/osc-expect.toml".to_owned()));
    let step = runner.step("run", &as_refs(&ins), &with_bin());
    assert_eq!(step.code, 0, "{}", step.log);
    let summary = runner.read("summary");
    let known = summary
        .split_once("### Known failures")
        .unwrap_or_else(|| panic!("no known failures section: {summary}"))
        .1;
    assert!(known.contains(&format!("`{SCENARIO}` (fail)")), "{summary}");
    assert!(!summary.contains("### Failures"), "{summary}");
    let report = json(&PathBuf::from(step.output("reports-dir")).join("osc-report.json"));
    assert_eq!(report["scenarios"][0]["known"], true);

    // The same file against a server that now passes: the run fails and
    // says which entry to remove.
    let honest = serve(&[]);
    let mut ins = inputs(&honest, SCENARIO);
    ins.push(("EXPECTATIONS", "ci/osc-expect.toml".to_owned()));
    let step = runner.step("run", &as_refs(&ins), &with_bin());
    assert_eq!(step.code, 1, "{}", step.log);
    let summary = runner.read("summary");
    let problems = summary
        .split_once("### Problems with the run")
        .unwrap_or_else(|| panic!("no problems section: {summary}"))
        .1;
    assert!(
        problems.contains(SCENARIO) && problems.contains("now passes"),
        "{summary}"
    );
}

#[test]
fn an_unreachable_target_exits_3_with_a_summary() {
    let runner = Runner::new();
    let ins = [
        ("TARGET", "http://127.0.0.1:1"),
        (
            "AGENT_ADDRESS",
            "0x943fd0FfD5C7aC4488334F8dE52af9d141359823",
        ),
        ("ACCESS_KEY", "osk-v1.unused"),
        ("FUZZ_DURATION", "5s"),
    ];
    let step = runner.step("run", &ins, &with_bin());
    assert_eq!(step.code, 3, "{}", step.log);
    assert_eq!(step.output("exit-code"), "3");
    let summary = runner.read("summary");
    assert!(summary.contains("No `test` report"), "{summary}");
    assert!(summary.contains("exit code: **3**"), "{summary}");
    // No fuzzing against a target that is not there.
    assert!(!summary.contains("### Fuzzing"), "{summary}");
    assert!(step.log.contains("fuzz skipped"), "{}", step.log);
}

#[test]
fn a_missing_target_input_is_a_usage_error() {
    let runner = Runner::new();
    let step = runner.step("run", &[], &with_bin());
    assert_eq!(step.code, 2, "{}", step.log);
    assert!(
        step.log.contains("target input is required"),
        "{}",
        step.log
    );
}

/// The install step accepts an osc-harness of the wanted version as it
/// is; for another version it installs from crates.io and, when the crate
/// is not published there, from the action's checkout. Cargo is replaced
/// by a script that logs its arguments and answers as crates.io would for
/// an unpublished crate: a real install takes minutes and the network.
#[test]
fn install_uses_a_binary_of_the_right_version_else_cargo() {
    let runner = Runner::new();
    let version = env!("CARGO_PKG_VERSION");

    let step = runner.step("plan", &[], &[]);
    assert_eq!(step.code, 0, "{}", step.log);
    assert_eq!(step.output("version"), version);
    let root = step.output("install-root").to_owned();
    assert!(
        root.starts_with(&*runner.path("home").to_string_lossy()),
        "{root}"
    );
    let key = step.output("cache-key").to_owned();
    assert!(
        key.starts_with(&format!("osc-harness-Linux-X64-{version}-")),
        "{key}"
    );

    let step = runner.step("install", &[], &with_bin());
    assert_eq!(step.code, 0, "{}", step.log);
    assert_eq!(step.output("bin"), EXE);
    assert!(runner
        .read("env")
        .contains(&format!("OSC_HARNESS_BIN={EXE}")));
    let bin_dir = Path::new(EXE)
        .parent()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(runner.read("path").trim(), bin_dir);

    // The action's own version, with no binary: cargo is asked for the
    // published crate, then for the checkout.
    let fake = runner.path("fakebin");
    std::fs::create_dir(&fake).unwrap();
    let log = runner.path("cargo.log");
    std::fs::write(
        fake.join("cargo"),
        format!(
            "#!/bin/sh\necho \"$*\" >> '{log}'\n\
             case \"$*\" in *--path*) root=$(echo \"$*\" | sed 's/.*--root \\([^ ]*\\).*/\\1/'); \
             mkdir -p \"$root/bin\" && cp '{EXE}' \"$root/bin/osc-harness\" && exit 0;; esac\n\
             echo 'error: could not find `osc-harness` in registry `crates-io` with version `={version}`' >&2\nexit 101\n",
            log = log.display()
        ),
    )
    .unwrap();
    let mode = Command::new("chmod")
        .arg("+x")
        .arg(fake.join("cargo"))
        .status()
        .unwrap();
    assert!(mode.success());
    // PATH keeps the tools the script uses, not an osc-harness someone
    // installed on this machine.
    let mut dirs = vec![fake.clone()];
    dirs.extend(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .filter(|d| !d.join("osc-harness").exists()),
    );
    let path = std::env::join_paths(dirs).unwrap();
    let path = path.to_string_lossy().into_owned();
    let step = runner.step("install", &[], &[("PATH", &path)]);
    assert_eq!(step.code, 0, "{}", step.log);
    let calls = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls[0].contains("install --locked")
            && calls[0].contains(&format!("--version ={version}")),
        "{calls:?}"
    );
    assert!(calls[1].contains("--path"), "{calls:?}");
    assert_eq!(step.output("bin"), format!("{root}/bin/osc-harness"));

    // Now installed under the root (as a restored cache would leave it):
    // used as it is, cargo not called again.
    let step = runner.step("install", &[], &[("PATH", &path)]);
    assert_eq!(step.code, 0, "{}", step.log);
    assert!(step.log.contains("already installed"), "{}", step.log);
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 2);

    // Another version that crates.io lacks cannot come from this checkout.
    let step = runner.step("install", &[("VERSION", "99.0.0")], &[("PATH", &path)]);
    assert_eq!(step.code, 2, "{}", step.log);
    assert!(
        step.log.contains("cannot install osc-harness 99.0.0"),
        "{}",
        step.log
    );
}

#[test]
fn action_yml_passes_every_input_the_script_reads() {
    let yml = std::fs::read_to_string(repo("action.yml")).unwrap();
    for name in INPUTS {
        let input = name.to_ascii_lowercase().replace('_', "-");
        assert!(
            yml.contains(&format!("  {input}:\n")),
            "action.yml declares no input {input}"
        );
        assert!(
            yml.contains(&format!("INPUT_{name}: ${{{{ inputs.{input} }}}}")),
            "action.yml does not pass {input} to the script"
        );
    }
    let script = std::fs::read_to_string(repo("action/run.sh")).unwrap();
    for name in INPUTS {
        assert!(
            script.contains(&format!("INPUT_{name}")),
            "run.sh ignores {name}"
        );
    }
    assert!(yml.contains("actions/upload-artifact@"));
    assert!(yml.contains("actions/cache@"));
}
