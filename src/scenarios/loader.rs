//! Loading scenario files: the built-in set embedded at build time, plus
//! `--scenarios DIR`, with errors that name the file, line and field.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::builtin::BUILTIN;
use super::model::{Action, EnvelopeKey, Scenario, INNER_SHORT_FORMS};
use super::registry::Registry;

/// A scenario file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// TOML syntax or schema error.
    #[error("{file}:{line}: {message}")]
    Parse {
        /// The file.
        file: String,
        /// 1-based line (0 when unknown).
        line: usize,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The directory or a file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn line_containing(text: &str, needle: &str) -> usize {
    text.find(needle).map(|o| line_of(text, o)).unwrap_or(0)
}

/// The first line of the `index`-th `[[step]]` table and the byte range
/// of its text (up to the next table header).
fn step_block(text: &str, index: usize) -> (usize, usize, usize) {
    let Some((start, _)) = text.match_indices("[[step]]").nth(index) else {
        return (0, 0, text.len());
    };
    let body = start + "[[step]]".len();
    let end = text[body..]
        .find("\n[")
        .map(|o| body + o + 1)
        .unwrap_or(text.len());
    (line_of(text, start), start, end)
}

/// The line where `key` is set in the step table `block` (the table's
/// first line when it cannot be found, e.g. inside an inline table).
fn key_line(text: &str, block: (usize, usize, usize), key: &str) -> usize {
    let (first, start, end) = block;
    let mut offset = start;
    for line in text[start..end].split_inclusive('\n') {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix(key) {
            if rest.trim_start().starts_with('=') || rest.starts_with('.') {
                return line_of(text, offset);
            }
        }
        offset += line.len();
    }
    first
}

/// Parses and checks one scenario file.
pub fn parse_scenario(file: &str, text: &str, registry: &Registry) -> Result<Scenario, LoadError> {
    let scenario: Scenario = toml::from_str(text).map_err(|e| LoadError::Parse {
        file: file.to_owned(),
        line: e.span().map(|s| line_of(text, s.start)).unwrap_or(0),
        message: e.message().trim().to_owned(),
    })?;
    let bad = |needle: &str, message: String| LoadError::Parse {
        file: file.to_owned(),
        line: line_containing(text, needle),
        message,
    };
    for r in &scenario.requirements {
        if !registry.contains(r) {
            return Err(bad(
                r,
                format!("field `requirements`: {r:?} is not a requirement ID of docs/PROTOCOL.md"),
            ));
        }
    }
    if scenario.requirements.is_empty() {
        return Err(bad("requirements", "field `requirements` is empty".into()));
    }
    if scenario.steps.is_empty() {
        return Err(bad(&scenario.id, "no `[[step]]` tables".into()));
    }
    for (i, step) in scenario.steps.iter().enumerate() {
        let block = step_block(text, i);
        let Some(action) = step.action else {
            return Err(LoadError::Parse {
                file: file.to_owned(),
                line: block.0,
                message: format!("step {}: missing field `do`", i + 1),
            });
        };
        let misplaced = |key: &str, why: String| LoadError::Parse {
            file: file.to_owned(),
            line: key_line(text, block, key),
            message: format!("step {}: key `{key}` {why}", i + 1),
        };
        for key in step.keys() {
            if !action.takes(key) {
                return Err(misplaced(
                    key,
                    format!("does not apply to `do = \"{}\"`", action.name()),
                ));
            }
        }
        if step.inner.is_some() {
            for key in step.keys() {
                if INNER_SHORT_FORMS.contains(&key) {
                    return Err(misplaced(key, "does not apply with `inner`".into()));
                }
            }
        }
        match (&step.envelope, action) {
            (Some(EnvelopeKey::Saved(_)), Action::Call) => {
                return Err(misplaced(
                    "envelope",
                    "on `call` is a list of envelope edits, not a saved envelope's name".into(),
                ))
            }
            (Some(EnvelopeKey::Edits(_)), Action::Resend) => {
                return Err(misplaced(
                    "envelope",
                    "on `resend` names a saved envelope, not a list of edits".into(),
                ))
            }
            _ => {}
        }
    }
    Ok(scenario)
}

/// The built-in scenarios, with files from `dir` added (a file with the
/// same name replaces a built-in one).
pub fn load(dir: Option<&Path>, registry: &Registry) -> Result<Vec<Scenario>, LoadError> {
    let mut files: Vec<(String, String)> = BUILTIN
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect();
    if let Some(dir) = dir {
        let entries = std::fs::read_dir(dir).map_err(|source| LoadError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let mut extra = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|source| LoadError::Io {
                    path: dir.to_owned(),
                    source,
                })?
                .path();
            if path.extension().and_then(|e| e.to_str()) == Some("toml") {
                let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Io {
                    path: path.clone(),
                    source,
                })?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                extra.push((name, text, path.display().to_string()));
            }
        }
        extra.sort();
        for (name, text, shown) in extra {
            files.retain(|(n, _)| *n != name);
            files.push((shown, text));
        }
    }
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (name, text) in &files {
        let s = parse_scenario(name, text, registry)?;
        if !seen.insert(s.id.clone()) {
            return Err(LoadError::Parse {
                file: name.clone(),
                line: line_containing(text, "id"),
                message: format!("field `id`: {:?} is used by another scenario", s.id),
            });
        }
        out.push(s);
    }
    Ok(out)
}
