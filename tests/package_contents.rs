//! The published crate carries every file the code embeds: each
//! `include_str!` / `include_bytes!` of `src/` and the build script's
//! inputs fall under the `include` list of Cargo.toml, so the packaged
//! crate builds on its own (`.ci/run` builds it; this test says which file
//! is missing in a second).

mod support;

use std::path::{Component, Path, PathBuf};

/// The `include = [...]` patterns of Cargo.toml, as written.
fn include_patterns() -> Vec<String> {
    let manifest: toml::Table = std::fs::read_to_string(support::repo("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    manifest["package"]["include"]
        .as_array()
        .expect("Cargo.toml lists what the package includes")
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// Whether `path` (relative to the repository) is packaged: the patterns
/// used are `/FILE` and `/DIR/**`.
fn packaged(patterns: &[String], path: &str) -> bool {
    patterns.iter().any(|p| {
        let p = p.trim_start_matches('/');
        match p.strip_suffix("/**") {
            Some(dir) => path.starts_with(&format!("{dir}/")),
            None => path == p,
        }
    })
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rs_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `a/b/../c` → `a/c`, without touching the file system.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Every file a macro of `text` (in `file`) embeds, relative to `root`.
fn embedded(root: &Path, file: &Path, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for mac in ["include_str!(\"", "include_bytes!(\""] {
        for (at, _) in text.match_indices(mac) {
            let rest = &text[at + mac.len()..];
            let Some(end) = rest.find('"') else { continue };
            let target = normalise(&file.parent().unwrap().join(&rest[..end]));
            let rel = target.strip_prefix(root).unwrap_or(&target);
            found.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    found
}

#[test]
fn every_embedded_file_is_in_the_package() {
    let root = normalise(&support::repo(""));
    let patterns = include_patterns();
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "README.md",
        "src/lib.rs",
        "src/main.rs",
    ] {
        assert!(packaged(&patterns, needed), "{needed} is not packaged");
    }
    let mut files = Vec::new();
    rs_files(&root.join("src"), &mut files);
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for path in embedded(&root, file, &text) {
            checked += 1;
            assert!(
                root.join(&path).is_file(),
                "{} embeds {path}, which does not exist",
                file.display()
            );
            assert!(
                packaged(&patterns, &path),
                "{} embeds {path}, which the package leaves out: add it to `include` in Cargo.toml",
                file.display()
            );
        }
    }
    // The scenarios, the protocol document and the vectors at least.
    assert!(checked > 50, "only {checked} embedded files found");
}

#[test]
fn tests_benches_and_the_fuzz_package_stay_out() {
    let patterns = include_patterns();
    for path in [
        "tests/layers.rs",
        "benches/core.rs",
        "fuzz/Cargo.toml",
        "interop/python/osc_peer.py",
        "target/release/osc-harness",
    ] {
        assert!(!packaged(&patterns, path), "{path} is packaged");
    }
}
