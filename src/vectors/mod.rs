//! Known-answer vectors: the upstream fixture's shape and our richer suite
//! format, generated deterministically from a seed and verified against
//! the protocol core.
//!
//! [`generate`] writes either format; [`verify_bytes`] and [`verify_path`]
//! detect the format and return a [`Report`] with one line per field
//! (upstream) or per case (suite).

pub mod cli;
pub mod fields;
pub mod flags;
pub mod pretty;
pub mod suite;
pub mod suite_verify;
pub mod upstream;

use std::io::Read;
use std::path::Path;

use thiserror::Error;

/// Largest vector file `verify` reads; checked before reading.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The two vector file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One vector set in exactly the shape of the upstream fixture.
    Upstream,
    /// Wycheproof-style test groups, positive and negative.
    Suite,
}

impl Format {
    /// The name printed in reports.
    pub fn name(self) -> &'static str {
        match self {
            Format::Upstream => "upstream",
            Format::Suite => "suite",
        }
    }
}

/// A vector file that cannot be checked at all.
#[derive(Debug, Error)]
pub enum VectorsError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is above [`MAX_FILE_BYTES`].
    #[error("{path} is {len} bytes, above the {limit}-byte limit for vector files")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// Not JSON.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// JSON, but neither format.
    #[error(
        "not a vector file: expected an object with `testGroups` (suite) or `handshake` (upstream)"
    )]
    UnknownFormat,
    /// A field the check needs is absent or has the wrong type.
    #[error("field `{path}` must be {expected}")]
    Field {
        /// Its path.
        path: String,
        /// What it should be.
        expected: &'static str,
    },
}

/// One verified field or case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    /// The field path or case name.
    pub name: String,
    /// `None` when it holds; otherwise what differs.
    pub failure: Option<String>,
}

impl CheckLine {
    /// A line that holds.
    pub fn ok(name: impl Into<String>) -> Self {
        CheckLine {
            name: name.into(),
            failure: None,
        }
    }

    /// A line that fails.
    pub fn fail(name: impl Into<String>, why: impl Into<String>) -> Self {
        CheckLine {
            name: name.into(),
            failure: Some(why.into()),
        }
    }

    /// Holds if `result` is Ok.
    pub fn from_result(name: impl Into<String>, result: Result<(), String>) -> Self {
        match result {
            Ok(()) => CheckLine::ok(name),
            Err(why) => CheckLine::fail(name, why),
        }
    }
}

/// The outcome of verifying one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The detected format.
    pub format: Format,
    /// One line per field or case, in file order.
    pub lines: Vec<CheckLine>,
}

impl Report {
    /// Whether every line holds.
    pub fn passed(&self) -> bool {
        self.lines.iter().all(|l| l.failure.is_none())
    }

    /// Lines that fail.
    pub fn failures(&self) -> impl Iterator<Item = &CheckLine> {
        self.lines.iter().filter(|l| l.failure.is_some())
    }

    /// `ok   <name>` / `FAIL <name>: <what differs>`, one per line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            match &line.failure {
                None => {
                    out.push_str("ok   ");
                    out.push_str(&line.name);
                }
                Some(why) => {
                    out.push_str("FAIL ");
                    out.push_str(&line.name);
                    out.push_str(": ");
                    out.push_str(why);
                }
            }
            out.push('\n');
        }
        out
    }
}

/// Generates the vector file for `seed` in `format`.
pub fn generate(seed: u64, format: Format) -> String {
    match format {
        Format::Upstream => {
            pretty::to_swift_pretty(&upstream::build(&upstream::UpstreamInputs::from_seed(seed)))
        }
        Format::Suite => {
            let mut text = serde_json::to_string_pretty(&suite::build(seed))
                .expect("a serde_json Value always serialises");
            text.push('\n');
            text
        }
    }
}

/// Detects the format of a parsed file.
pub fn detect(value: &serde_json::Value) -> Result<Format, VectorsError> {
    let obj = value.as_object().ok_or(VectorsError::UnknownFormat)?;
    if obj.contains_key("testGroups") {
        Ok(Format::Suite)
    } else if obj.contains_key("handshake") {
        Ok(Format::Upstream)
    } else {
        Err(VectorsError::UnknownFormat)
    }
}

/// Verifies a vector file's bytes, whichever its format.
pub fn verify_bytes(bytes: &[u8]) -> Result<Report, VectorsError> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(VectorsError::TooLarge {
            path: "<input>".into(),
            len: bytes.len() as u64,
            limit: MAX_FILE_BYTES,
        });
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| VectorsError::NotJson(e.to_string()))?;
    let format = detect(&value)?;
    let lines = match format {
        Format::Upstream => upstream::verify(&value)?,
        Format::Suite => suite_verify::verify(&value)?,
    };
    Ok(Report { format, lines })
}

/// Reads a vector file (refusing one above [`MAX_FILE_BYTES`] before
/// reading it) and verifies it.
pub fn verify_path(path: &Path) -> Result<Report, VectorsError> {
    let shown = path.display().to_string();
    let io = |source| VectorsError::Io {
        path: shown.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len > MAX_FILE_BYTES {
        return Err(VectorsError::TooLarge {
            path: shown,
            len,
            limit: MAX_FILE_BYTES,
        });
    }
    // The size may change between the check and the read; the `take`
    // keeps the bound regardless.
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    verify_bytes(&bytes).map_err(|e| match e {
        VectorsError::TooLarge { len, limit, .. } => VectorsError::TooLarge {
            path: shown.clone(),
            len,
            limit,
        },
        other => other,
    })
}
