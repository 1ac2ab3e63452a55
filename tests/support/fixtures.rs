//! Files of the repository and small edits of test data.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// A path inside the repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A JSON file of the repository.
pub fn load(path: &str) -> Value {
    serde_json::from_slice(&std::fs::read(repo(path)).expect("file reads")).expect("file is JSON")
}

/// Changes one character in the middle of `text` to another of its kind
/// (an empty string gains one).
pub fn mutate(text: &str) -> String {
    if text.is_empty() {
        return "A".into();
    }
    let mut chars: Vec<char> = text.chars().collect();
    let i = chars.len() / 2;
    chars[i] = match chars[i] {
        '0' => '1',
        c if c.is_ascii_hexdigit() => '0',
        'A' => 'B',
        _ => 'A',
    };
    chars.into_iter().collect()
}
