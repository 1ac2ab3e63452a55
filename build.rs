//! Two build-time facts:
//! - with `OSC_SKIP_INTEROP=1` in the environment of `cargo test`, the tests
//!   that need the Python interop environment are compiled as ignored, so
//!   the run lists each of them as ignored instead of counting it as passed;
//! - `OSC_HARNESS_COMMIT`, the commit `--version` names: `git rev-parse`
//!   when the crate is the root of a git checkout, else the commit cargo
//!   recorded in a packaged crate's `.cargo_vcs_info.json`, else `unknown`
//!   (a source tarball).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(osc_skip_interop)");
    println!("cargo::rerun-if-env-changed=OSC_SKIP_INTEROP");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("OSC_SKIP_INTEROP").as_deref() == Ok("1") {
        println!("cargo::rustc-cfg=osc_skip_interop");
        println!(
            "cargo::warning=OSC_SKIP_INTEROP=1: the tests that need Python are ignored, not run"
        );
    }
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let commit = git_commit(&dir)
        .or_else(|| packaged_commit(&dir))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo::rustc-env=OSC_HARNESS_COMMIT={commit}");
}

/// `git` in `dir`, its trimmed stdout when it succeeds.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The checked-out commit, only when `dir` is the top of the checkout: a
/// packaged crate unpacked under `target/package/` sits inside the
/// checkout it came from, whose commit is not necessarily its own.
fn git_commit(dir: &Path) -> Option<String> {
    let top = PathBuf::from(git(dir, &["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    // A new commit or a checkout changes HEAD or the branch it points to.
    // Only files that exist: cargo reruns the script on every build for a
    // missing one, and then rebuilds the whole crate.
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    watched.extend(git(dir, &["symbolic-ref", "-q", "HEAD"]));
    for name in &watched {
        if let Some(p) = git(dir, &["rev-parse", "--git-path", name]) {
            let p = dir.join(p);
            if p.is_file() {
                println!("cargo::rerun-if-changed={}", p.display());
            }
        }
    }
    let sha = git(dir, &["rev-parse", "HEAD"])?;
    Some(sha.chars().take(12).collect())
}

/// The commit `cargo package` recorded (`{"git":{"sha1":"…"}}`), read with
/// a plain scan: the build script has no JSON parser and needs none for
/// one hex string.
fn packaged_commit(dir: &Path) -> Option<String> {
    let path = dir.join(".cargo_vcs_info.json");
    let text = std::fs::read_to_string(&path).ok()?;
    println!("cargo::rerun-if-changed={}", path.display());
    let after = text.split_once("\"sha1\"")?.1;
    let sha: String = after
        .trim_start_matches(|c: char| c == ':' || c == '"' || c.is_whitespace())
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .take(12)
        .collect();
    // `cargo package --allow-dirty` records that the tree had changes.
    let dirty = text.contains("\"dirty\": true") || text.contains("\"dirty\":true");
    (sha.len() == 12).then(|| if dirty { format!("{sha}-dirty") } else { sha })
}
