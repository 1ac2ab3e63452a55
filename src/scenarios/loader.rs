//! Loading scenario files: the built-in set embedded at build time, plus
//! `--scenarios DIR`, with errors that name the file, line and field.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::builtin::BUILTIN;
use serde::Deserialize;

use super::model::{keys_of, Scenario, Step, KINDS};
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
/// of its text (up to the next table header that is not one of its own
/// sub-tables).
fn step_block(text: &str, index: usize) -> (usize, usize, usize) {
    let mut offset = 0;
    let mut starts = Vec::new();
    for line in text.split_inclusive('\n') {
        if line.trim() == "[[step]]" {
            starts.push(offset);
        }
        offset += line.len();
    }
    let Some(&start) = starts.get(index) else {
        return (0, 0, text.len());
    };
    let end = starts.get(index + 1).copied().unwrap_or(text.len());
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
        // A sub-table (`[step.expect]`) is keyed by its header.
        if t.trim_end() == format!("[step.{key}]") {
            return line_of(text, offset);
        }
        offset += line.len();
    }
    first
}

/// Why step `index` (0-based) of a file that did not load is wrong, naming
/// its line and key: the `do` value, then each key on its own (a key the
/// step's kind does not take, or a value it cannot hold). `None` when the
/// step loads.
fn step_error(file: &str, text: &str, index: usize, table: &toml::Table) -> Option<LoadError> {
    let block = step_block(text, index);
    let at = |line: usize, message: String| LoadError::Parse {
        file: file.to_owned(),
        line,
        message: format!("step {}: {message}", index + 1),
    };
    if Step::deserialize(toml::Value::Table(table.clone())).is_ok() {
        return None;
    }
    let Some(kind) = table.get("do") else {
        return Some(at(block.0, "missing field `do`".into()));
    };
    let Some(kind) = kind.as_str().filter(|k| KINDS.contains(k)) else {
        return Some(at(
            key_line(text, block, "do"),
            format!(
                "`do = {kind}` is not a step; expected one of {}",
                KINDS.join(", ")
            ),
        ));
    };
    let mut keys: Vec<&String> = table.keys().filter(|k| *k != "do").collect();
    keys.sort_by_key(|k| key_line(text, block, k));
    for key in keys {
        let line = key_line(text, block, key);
        if !keys_of(kind).contains(&key.as_str()) {
            let known = KINDS.iter().any(|k| keys_of(k).contains(&key.as_str()));
            return Some(at(
                line,
                if known {
                    format!("key `{key}` does not apply to `do = \"{kind}\"`")
                } else {
                    format!(
                        "unknown key `{key}` (a `{kind}` step takes {})",
                        keys_of(kind).join(", ")
                    )
                },
            ));
        }
        let mut alone = toml::Table::new();
        alone.insert("do".into(), kind.into());
        alone.insert(key.clone(), table[key].clone());
        if let Err(e) = Step::deserialize(toml::Value::Table(alone)) {
            return Some(at(line, format!("key `{key}`: {}", e.message().trim())));
        }
    }
    None
}

/// Parses and checks one scenario file.
pub fn parse_scenario(file: &str, text: &str, registry: &Registry) -> Result<Scenario, LoadError> {
    let scenario: Scenario = toml::from_str(text).map_err(|e| {
        // A step is a tagged enum, whose errors serde reports without the
        // key: find the step and key that are wrong.
        let steps = toml::from_str::<toml::Table>(text)
            .ok()
            .and_then(|t| t.get("step").and_then(|s| s.as_array()).cloned())
            .unwrap_or_default();
        steps
            .iter()
            .enumerate()
            .find_map(|(i, s)| step_error(file, text, i, s.as_table()?))
            .unwrap_or_else(|| LoadError::Parse {
                file: file.to_owned(),
                line: e.span().map(|s| line_of(text, s.start)).unwrap_or(0),
                message: e.message().trim().to_owned(),
            })
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
        // A whole hello body leaves no field to edit.
        if let Step::Handshake(h) = step {
            if let Some(key) = h
                .raw_body
                .as_ref()
                .and(h.field_edit_keys().first().copied())
            {
                return Err(LoadError::Parse {
                    file: file.to_owned(),
                    line: key_line(text, step_block(text, i), key),
                    message: format!("step {}: key `{key}` does not apply with `raw_body`", i + 1),
                });
            }
        }
        let Step::Call(call) = step else { continue };
        if call.inner.is_none() {
            continue;
        }
        if let Some(key) = call.inner_short_forms().first() {
            return Err(LoadError::Parse {
                file: file.to_owned(),
                line: key_line(text, step_block(text, i), key),
                message: format!("step {}: key `{key}` does not apply with `inner`", i + 1),
            });
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
