//! The Python environment the interop tests build for themselves
//! (`support::interop_python`): built once, reused, rebuilt when its
//! requirements change, and a failure that names its cause.

mod support;

use std::path::Path;
use std::process::Command;

use support::{describe, interop_python, run, skip_interop, text, PythonEnv, PythonEnvError};

/// The test a child process runs to set up the interop environment.
const SETUP_TEST: &str = "the_interop_environment_runs_the_python_peer";

#[test]
#[cfg_attr(
    osc_skip_interop,
    ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
)]
fn the_interop_environment_runs_the_python_peer() {
    let Some(python) = interop_python() else {
        return;
    };
    let out = run({
        let mut cmd = Command::new(python);
        cmd.arg("-c")
            .arg("import cryptography, coincurve; from Crypto.Hash import keccak; import sys; print(sys.prefix)");
        cmd
    });
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        Path::new(text(&out.stdout).trim()),
        support::interop_env_dir(),
        "the interpreter is the environment's own"
    );
}

/// This test binary, running only [`SETUP_TEST`] with `PATH` set to an
/// empty directory, so no `python3` can be found.
fn setup_without_python(skip: Option<&str>) -> std::process::Output {
    let empty = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([SETUP_TEST, "--exact", "--test-threads", "1"])
        .env("PATH", empty.path())
        .env_remove(support::SKIP_INTEROP);
    if let Some(value) = skip {
        cmd.env(support::SKIP_INTEROP, value);
    }
    run(cmd)
}

#[test]
#[cfg_attr(
    osc_skip_interop,
    ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
)]
fn without_python3_on_path_the_interop_tests_fail_naming_it() {
    let out = setup_without_python(None);
    assert!(!out.status.success(), "{}", describe(&out));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        all.contains("needs `python3`, which was not found on PATH"),
        "{}",
        describe(&out)
    );
    assert!(all.contains("python3 --version"), "{}", describe(&out));
    assert!(all.contains("OSC_SKIP_INTEROP=1"), "{}", describe(&out));
    assert!(all.contains("1 failed"), "{}", describe(&out));
}

#[test]
#[cfg_attr(
    osc_skip_interop,
    ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
)]
fn only_osc_skip_interop_1_skips_and_says_so() {
    let out = setup_without_python(Some("1"));
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains(&format!(
            "skipped python_env::{SETUP_TEST}: OSC_SKIP_INTEROP=1, so it checked nothing"
        )),
        "{}",
        describe(&out)
    );
    // Any other value is no opt-out.
    let out = setup_without_python(Some("yes"));
    assert!(!out.status.success(), "{}", describe(&out));
}

#[test]
#[cfg_attr(
    osc_skip_interop,
    ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
)]
fn a_missing_interpreter_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let requirements = dir.path().join("requirements.txt");
    std::fs::write(&requirements, "").expect("write");
    let err = PythonEnv::ensure(
        "osc-no-such-python3".as_ref(),
        &dir.path().join("env"),
        &requirements,
    )
    .expect_err("no such interpreter");
    assert!(
        matches!(&err, PythonEnvError::NoInterpreter { python, .. } if python == "osc-no-such-python3"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("osc-no-such-python3 --version"),
        "{err}"
    );
    assert!(!dir.path().join("env").exists(), "nothing was built");
}

#[test]
#[cfg_attr(
    osc_skip_interop,
    ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
)]
fn a_failing_pip_step_says_how_to_reproduce_it() {
    if skip_interop() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let requirements = dir.path().join("requirements.txt");
    // Rejected by pip itself, so no package index is asked.
    std::fs::write(&requirements, "not a valid requirement ==\n").expect("write");
    let env = dir.path().join("env");
    let err = PythonEnv::ensure(support::BASE_PYTHON.as_ref(), &env, &requirements)
        .expect_err("pip refuses the file");
    let PythonEnvError::StepFailed {
        step,
        output,
        command,
        ..
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!(*step, "installing the requirements with pip", "{err}");
    assert!(output.contains("Invalid requirement"), "{err}");
    assert_eq!(
        command,
        &format!(
            "{} -m pip install -r {}",
            env.join("bin/python").display(),
            requirements.display()
        )
    );
    assert!(err.to_string().contains("reproduce with: "), "{err}");
    // No stamp, so the next attempt builds again rather than trusting it.
    let again = PythonEnv::ensure(support::BASE_PYTHON.as_ref(), &env, &requirements);
    assert!(again.is_err(), "{again:?}");
}

#[test]
#[cfg_attr(
    osc_skip_interop,
    ignore = "OSC_SKIP_INTEROP=1: needs the Python interop environment"
)]
fn an_environment_is_built_once_reused_and_rebuilt_on_change() {
    if skip_interop() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let requirements = dir.path().join("requirements.txt");
    std::fs::write(&requirements, "").expect("write");
    let env = dir.path().join("env");
    let python = support::BASE_PYTHON.as_ref();

    // Two builders at once: the lock lets one build and the other reuse.
    let builders: Vec<_> = (0..2)
        .map(|_| {
            let (env, requirements) = (env.clone(), requirements.clone());
            std::thread::spawn(move || {
                PythonEnv::ensure(python, &env, &requirements).unwrap_or_else(|e| panic!("{e}"))
            })
        })
        .collect();
    let mut reused: Vec<bool> = builders
        .into_iter()
        .map(|b| b.join().expect("builder").reused)
        .collect();
    reused.sort();
    assert_eq!(reused, [false, true]);

    let stamp = env.join("osc-harness-stamp");
    let built_at = std::fs::metadata(&stamp).and_then(|m| m.modified());
    let again = PythonEnv::ensure(python, &env, &requirements).unwrap_or_else(|e| panic!("{e}"));
    assert!(again.reused);
    assert!(again.python.starts_with(&env), "{again:?}");
    assert_eq!(
        std::fs::metadata(&stamp).and_then(|m| m.modified()).ok(),
        built_at.ok()
    );

    std::fs::write(&requirements, "# changed\n").expect("write");
    let changed = PythonEnv::ensure(python, &env, &requirements).unwrap_or_else(|e| panic!("{e}"));
    assert!(!changed.reused, "a changed requirements file rebuilds");
    let stamped = std::fs::read_to_string(&stamp).expect("stamp");
    assert!(stamped.ends_with("requirements:\n# changed\n"), "{stamped}");
}
