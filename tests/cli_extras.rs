//! What the command line ships beside its jobs: `--version` names the
//! commit and the protocol, `completions` writes a script for each shell,
//! and the committed manual pages in `man/` are what `osc-harness man`
//! generates now (`OSC_WRITE_DOCS=1` rewrites them).

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use support::{describe, harness, repo, run, text};

#[test]
fn version_names_the_commit_and_the_protocol() {
    let out = run({
        let mut cmd = harness();
        cmd.arg("--version");
        cmd
    });
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let line = text(&out.stdout);
    let expected_start = format!("osc-harness {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&expected_start), "{line}");
    assert!(
        line.contains(&format!(
            "Osaurus Secure Channel v{}",
            osc_harness::protocol::VERSION
        )),
        "{line}"
    );
    // Built from a checkout, the commit is the checked-out one (cargo
    // rebuilds when HEAD moves); from a tarball it would be `unknown`.
    let git = Command::new("git")
        .arg("-C")
        .arg(env!("CARGO_MANIFEST_DIR"))
        .args(["rev-parse", "HEAD"])
        .output();
    match git {
        Ok(g) if g.status.success() => {
            let head = text(&g.stdout);
            assert!(
                line.contains(&format!("(commit {};", &head.trim()[..12])),
                "{line} does not name HEAD {head}"
            );
        }
        _ => assert!(line.contains("(commit unknown;"), "{line}"),
    }
}

#[test]
fn completions_cover_every_subcommand_in_each_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = run({
            let mut cmd = harness();
            cmd.args(["completions", shell]);
            cmd
        });
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", describe(&out));
        let script = text(&out.stdout);
        for sub in ["test", "selftest", "fuzz", "diff", "completions", "man"] {
            assert!(script.contains(sub), "{shell} completion lacks {sub}");
        }
        // The per-command flags are completed too, not only the names.
        assert!(script.contains("agent-address"), "{shell}: no flags");
    }
    // The bash script parses.
    let out = run({
        let mut cmd = harness();
        cmd.args(["completions", "bash"]);
        cmd
    });
    let path = std::env::temp_dir().join(format!("osc-harness-completion-{}", std::process::id()));
    std::fs::write(&path, &out.stdout).unwrap();
    let check = Command::new("bash").arg("-n").arg(&path).output();
    let _ = std::fs::remove_file(&path);
    if let Ok(check) = check {
        assert!(check.status.success(), "bash -n: {}", text(&check.stderr));
    }
    // An unknown shell is a usage error.
    let out = run({
        let mut cmd = harness();
        cmd.args(["completions", "tcsh"]);
        cmd
    });
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[test]
fn committed_man_pages_are_current() {
    let dir = repo("man");
    let pages: BTreeMap<String, Vec<u8>> = osc_harness::cli::extras::man_pages()
        .expect("pages render")
        .into_iter()
        .collect();
    assert!(pages.contains_key("osc-harness.1"));
    assert!(pages.contains_key("osc-harness-test.1"));
    if std::env::var_os("OSC_WRITE_DOCS").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, page) in &pages {
            std::fs::write(dir.join(name), page).unwrap();
        }
        return;
    }
    let fix = "run `OSC_WRITE_DOCS=1 cargo test --release --test cli_extras man`";
    let mut committed = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("man/: {e}; {fix}")) {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        committed.insert(name, std::fs::read(&path).unwrap());
    }
    let stale: Vec<&String> = pages
        .iter()
        .filter(|(name, page)| committed.get(*name) != Some(page))
        .map(|(name, _)| name)
        .collect();
    let extra: Vec<&String> = committed
        .keys()
        .filter(|name| !pages.contains_key(*name))
        .collect();
    assert!(
        stale.is_empty() && extra.is_empty(),
        "man/ is stale (changed or missing: {stale:?}; no longer generated: {extra:?}): {fix}"
    );
    // The main page is what `osc-harness man` prints, and names its jobs.
    let out = run({
        let mut cmd = harness();
        cmd.arg("man");
        cmd
    });
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(out.stdout, pages["osc-harness.1"]);
    let main = text(&out.stdout);
    assert!(main.contains(".TH osc-harness 1"), "{main}");
    assert!(main.contains("Exit status"), "{main}");
}

#[test]
fn summary_refuses_a_report_that_is_not_json_and_notes_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("osc-report.json");
    std::fs::write(&bad, "<testsuite/>").unwrap();
    let out = run({
        let mut cmd = harness();
        cmd.arg("summary").arg("--test").arg(&bad);
        cmd
    });
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        text(&out.stderr).contains("is not a JSON report"),
        "{}",
        describe(&out)
    );

    let missing = dir.path().join("none.json");
    let out = run({
        let mut cmd = harness();
        cmd.arg("summary")
            .arg("--test")
            .arg(&missing)
            .args(["--test-exit", "3"]);
        cmd
    });
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let summary = text(&out.stdout);
    assert!(summary.contains("No `test` report"), "{summary}");
    assert!(
        summary.contains("exit code: **3** (target unreachable"),
        "{summary}"
    );
}
