//! The files a run reads and writes: the findings it saves (and their
//! final counts), the corpus it keeps between runs, and `replay`'s reading
//! of a saved finding.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::super::case::{CorpusEntry, Exchange, Finding, Step};
use super::super::dedup::{self, BucketSummary};
use super::super::exec::{self, Outcome};

/// The exchanges of a run, as a finding records them.
pub(super) fn exchanges(outcomes: &[Outcome]) -> Vec<Exchange> {
    outcomes
        .iter()
        .map(|o| Exchange {
            endpoint: o.endpoint.to_string(),
            sent: exec::lossy(&o.sent, 4096),
            received: o.describe(),
        })
        .collect()
}

/// Errors reading or writing the run's files.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file did not hold what it should.
    #[error("{path}: {reason}")]
    Format {
        /// The path.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), FilesError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| FilesError::Format {
        path: path.into(),
        reason: e.to_string(),
    })?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| FilesError::Io {
            path: dir.into(),
            source,
        })?;
    }
    std::fs::write(path, text + "\n").map_err(|source| FilesError::Io {
        path: path.into(),
        source,
    })
}

/// Loads a saved finding.
pub fn load_finding(path: &Path) -> Result<Finding, FilesError> {
    let text = std::fs::read_to_string(path).map_err(|source| FilesError::Io {
        path: path.into(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| FilesError::Format {
        path: path.into(),
        reason: e.to_string(),
    })
}

/// Loads every corpus entry in `dir` (missing dir: none), sorted by name so
/// runs are repeatable.
pub fn load_corpus(dir: &Path) -> Vec<CorpusEntry> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect()
}

fn shape_file(shape: &str) -> String {
    format!("{:016x}.json", dedup::stable_hash(shape))
}

/// Saves `steps` as the corpus entry for `shape` in `dir`, unless one is
/// there; a failure is logged and the run goes on.
pub(super) fn save_corpus_entry(dir: &Path, shape: &str, steps: &[Step]) {
    let path = dir.join(shape_file(shape));
    if path.exists() {
        return;
    }
    let entry = CorpusEntry {
        shape: shape.to_owned(),
        steps: steps.to_vec(),
    };
    if let Err(e) = write_json(&path, &entry) {
        tracing::warn!("cannot save a corpus entry: {e}");
    }
}

/// Saves `finding` as `dir/file_name` and returns its path.
pub(super) fn save_finding(
    dir: &Path,
    file_name: &str,
    finding: &Finding,
) -> Result<PathBuf, FilesError> {
    let path = dir.join(file_name);
    write_json(&path, finding)?;
    Ok(path)
}

/// Rewrites each saved finding's `count` with the run's final tally for
/// its shape.
pub(super) fn update_counts(buckets: &[BucketSummary]) {
    for shape in buckets.iter().flat_map(|b| &b.shapes) {
        let Some(path) = &shape.file else { continue };
        let path = Path::new(path);
        if let Ok(mut f) = load_finding(path) {
            f.count = shape.count;
            let _ = write_json(path, &f);
        }
    }
}
