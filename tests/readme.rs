//! The README a newcomer reads in five minutes: the two set-up commands on
//! its first screen, and links that resolve. Its links are absolute (to
//! the repository's main branch) so that they resolve on crates.io too;
//! each must name a file of this tree and, with `#anchor`, one of its
//! headings. The guides it moved text to (`docs/USAGE.md`,
//! `docs/INTEROP.md`) link relatively, to files that exist.

mod support;

use std::path::Path;

const BASE: &str = "https://github.com/osc-harness/osc-harness/blob/main/";

/// GitHub's anchor for a heading: lower case, spaces to dashes, only
/// letters, digits, `-` and `_` kept.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn headings(text: &str) -> Vec<String> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            out.push(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

/// Checks that `path#anchor` (relative to the repository) exists.
fn resolves(link: &str, from: &str) {
    let (path, frag) = link.split_once('#').unwrap_or((link, ""));
    let full = support::repo(path);
    assert!(
        Path::new(&full).exists(),
        "{from} links to {link}, which is not in the tree"
    );
    if !frag.is_empty() {
        let text = std::fs::read_to_string(&full).unwrap();
        assert!(
            headings(&text).iter().any(|h| h == frag),
            "{from} links to {link}: {path} has no heading #{frag}"
        );
    }
}

/// The targets of the Markdown links of `text`: inline `](x)` and
/// reference definitions `[k]: x`.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices("](") {
        let rest = &text[at + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].to_owned());
        }
    }
    for line in text.lines() {
        if let Some((label, target)) = line.split_once("]: ") {
            if label.starts_with('[') && !label.contains(' ') {
                out.push(target.trim().to_owned());
            }
        }
    }
    out
}

#[test]
fn the_two_commands_are_on_the_first_screen() {
    let readme = std::fs::read_to_string(support::repo("README.md")).unwrap();
    // The first screen: about 30 lines, and the set-up commands are the
    // only commands in it.
    let first: Vec<&str> = readme.lines().take(30).collect();
    let commands: Vec<&str> = first
        .iter()
        .filter(|l| l.starts_with("cargo ") || l.starts_with("osc-harness "))
        .copied()
        .collect();
    assert_eq!(commands.len(), 2, "{commands:?}");
    assert!(commands[0].starts_with("cargo run --release -- test --target self"));
    assert!(commands[1].starts_with("cargo test --release"));
    let lines = readme.lines().count();
    assert!(
        lines <= 170,
        "README.md has {lines} lines: keep the tour short, move details to docs/"
    );
}

#[test]
fn readme_links_resolve_in_this_tree() {
    let readme = std::fs::read_to_string(support::repo("README.md")).unwrap();
    let mut checked = 0;
    for link in links(&readme) {
        let Some(rest) = link.strip_prefix(BASE) else {
            assert!(
                link.starts_with("https://"),
                "README.md links to {link}: relative links do not resolve on crates.io; use {BASE}…"
            );
            continue;
        };
        resolves(rest, "README.md");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} repository links");
}

#[test]
fn guides_link_to_files_that_exist() {
    for doc in ["docs/USAGE.md", "docs/INTEROP.md", "docs/ARCHITECTURE.md"] {
        let text = std::fs::read_to_string(support::repo(doc)).unwrap();
        for link in links(&text) {
            if link.starts_with("http") || link.starts_with('#') {
                continue;
            }
            let joined = Path::new(doc).parent().unwrap().join(&link);
            let mut parts: Vec<&str> = Vec::new();
            for part in joined.to_str().unwrap().split('/') {
                match part {
                    ".." => {
                        parts.pop();
                    }
                    "." | "" => {}
                    p => parts.push(p),
                }
            }
            resolves(&parts.join("/"), doc);
        }
    }
}
