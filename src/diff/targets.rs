//! The `--targets` file: one `[[target]]` table per implementation, each
//! holding what the target flags of `test` hold, resolved by the same code.

use std::path::Path;

use thiserror::Error;

use crate::flags::target::TargetArgs;

/// One `[[target]]` table.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    /// How reports name this target (unique in the file).
    pub name: String,
    /// The target flags it stands for (`--target` is `url`).
    pub args: TargetArgs,
    /// `--handshake-budget` for this target (`N/SECS` or `none`).
    pub handshake_budget: Option<String>,
}

/// Why a `--targets` file cannot be used.
#[derive(Debug, Error)]
pub enum TargetsError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("{path}: not TOML: {message}")]
    Toml {
        /// The file.
        path: String,
        /// What the parser said (with its line).
        message: String,
    },
    /// Something in the file is wrong, at a line.
    #[error("{path}:{line}: {message}")]
    At {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Something in the file as a whole is wrong.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

const KEYS: [&str; 8] = [
    "name",
    "url",
    "agent_address",
    "access_key",
    "agent_id",
    "relay_origin",
    "ca_cert",
    "handshake_budget",
];

/// The 1-based line of `key = …` inside the `index`-th `[[target]]` table.
fn line_of(text: &str, index: usize, key: &str) -> usize {
    let mut table = None::<usize>;
    let mut header_line = 1;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with("[[target]]") {
            table = Some(table.map_or(0, |i| i + 1));
            if table == Some(index) {
                header_line = n + 1;
            }
            continue;
        }
        if table != Some(index) {
            continue;
        }
        let k = t.split('=').next().unwrap_or("").trim().trim_matches('"');
        if k == key {
            return n + 1;
        }
    }
    header_line
}

/// Reads and checks a `--targets` file: at least two targets, unique
/// names, known keys of the right types, `url` and `name` present.
pub fn load(path: &Path) -> Result<Vec<TargetSpec>, TargetsError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| TargetsError::Read {
        path: shown.clone(),
        source,
    })?;
    parse(&shown, &text)
}

/// [`load`] on text already read; `path` names it in errors, and a
/// relative `ca_cert` is taken relative to its directory.
pub fn parse(path: &str, text: &str) -> Result<Vec<TargetSpec>, TargetsError> {
    let base_dir = Path::new(path).parent();
    let table: toml::Table = toml::from_str(text).map_err(|e| TargetsError::Toml {
        path: path.into(),
        message: e.to_string().trim().to_owned(),
    })?;
    let at = |line: usize, message: String| TargetsError::At {
        path: path.into(),
        line,
        message,
    };
    if let Some(key) = table.keys().find(|k| *k != "target") {
        let line = text
            .lines()
            .position(|l| l.trim_start().starts_with(key.as_str()))
            .map_or(1, |n| n + 1);
        return Err(at(
            line,
            format!("unknown key `{key}` (only [[target]] tables)"),
        ));
    }
    let tables = match table.get("target") {
        Some(toml::Value::Array(a)) => a.clone(),
        Some(_) => {
            return Err(TargetsError::File {
                path: path.into(),
                message: "`target` must be [[target]] tables".into(),
            })
        }
        None => Vec::new(),
    };
    if tables.len() < 2 {
        return Err(TargetsError::File {
            path: path.into(),
            message: format!(
                "{} [[target]] table(s): a differential run needs two or more",
                tables.len()
            ),
        });
    }
    let mut specs: Vec<TargetSpec> = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let toml::Value::Table(t) = t else {
            return Err(at(
                line_of(text, i, ""),
                "[[target]] must be a table".into(),
            ));
        };
        if let Some(key) = t.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(at(
                line_of(text, i, key),
                format!(
                    "unknown key `{key}` in [[target]] (known: {})",
                    KEYS.join(", ")
                ),
            ));
        }
        let string = |key: &str| -> Result<Option<String>, TargetsError> {
            match t.get(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(at(
                    line_of(text, i, key),
                    format!("`{key}` must be a string"),
                )),
            }
        };
        let name = string("name")?
            .ok_or_else(|| at(line_of(text, i, ""), "[[target]] without `name`".into()))?;
        if specs.iter().any(|s| s.name == name) {
            return Err(at(
                line_of(text, i, "name"),
                format!("target name `{name}` is used twice"),
            ));
        }
        let url = string("url")?.ok_or_else(|| {
            at(
                line_of(text, i, ""),
                format!("target `{name}` has no `url` (a URL, or `self`)"),
            )
        })?;
        let ca_certs: Vec<std::path::PathBuf> = string("ca_cert")?
            .map(|p| {
                // A relative path is relative to the targets file, as a
                // user reading the file would expect.
                let p = std::path::PathBuf::from(p);
                match (p.is_relative(), base_dir) {
                    (true, Some(dir)) => dir.join(p),
                    _ => p,
                }
            })
            .into_iter()
            .collect();
        let relay_origin = match t.get("relay_origin") {
            None => None,
            Some(toml::Value::Boolean(b)) => Some(*b),
            Some(toml::Value::String(s)) if s == "on" => Some(true),
            Some(toml::Value::String(s)) if s == "off" => Some(false),
            Some(_) => {
                return Err(at(
                    line_of(text, i, "relay_origin"),
                    "`relay_origin` must be true/false (or \"on\"/\"off\")".into(),
                ))
            }
        };
        specs.push(TargetSpec {
            args: TargetArgs {
                target: Some(url),
                agent_address: string("agent_address")?,
                access_key: string("access_key")?,
                agent_id: string("agent_id")?,
                relay_origin,
                timeout: None,
                via_relay: false,
                relay_budget: None,
                net: crate::flags::target::NetArgs {
                    ca_certs,
                    ..Default::default()
                },
            },
            handshake_budget: string("handshake_budget")?,
            name,
        });
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"
[[target]]
name = "ref"
url = "self"

[[target]]
name = "py"
url = "http://127.0.0.1:9"
agent_address = "0x90F8bf6A479f320ead074411a4B0e7944Ea8c9C1"
access_key = "k"
relay_origin = true
handshake_budget = "none"
"#;

    #[test]
    fn two_targets_parse_into_target_flags() {
        let specs = parse("t.toml", TWO).expect("parses");
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].args.target.as_deref(), Some("self"));
        assert_eq!(specs[1].args.relay_origin, Some(true));
        assert_eq!(specs[1].handshake_budget.as_deref(), Some("none"));
    }

    #[test]
    fn unknown_keys_name_file_line_and_key() {
        let text = TWO.replace(
            "access_key = \"k\"",
            "access_key = \"k\"\nacces_key = \"k\"",
        );
        let err = parse("t.toml", &text).unwrap_err().to_string();
        assert!(
            err.starts_with("t.toml:11: unknown key `acces_key`"),
            "{err}"
        );
        let top = format!("seed = 3\n{TWO}");
        let err = parse("t.toml", &top).unwrap_err().to_string();
        assert!(err.starts_with("t.toml:1: unknown key `seed`"), "{err}");
    }

    #[test]
    fn one_target_or_a_repeated_name_is_refused() {
        let one = "[[target]]\nname = \"a\"\nurl = \"self\"\n";
        assert!(parse("t.toml", one)
            .unwrap_err()
            .to_string()
            .contains("two or more"));
        let twice = format!("{one}{one}");
        let err = parse("t.toml", &twice).unwrap_err().to_string();
        assert!(
            err.contains("t.toml:5: target name `a` is used twice"),
            "{err}"
        );
        // A ca_cert is `--ca-cert` for its target, relative to the file.
        let cert = TWO.replace("handshake_budget = \"none\"", "ca_cert = \"ca.pem\"");
        let specs = parse("conf/t.toml", &cert).unwrap();
        assert!(specs[0].args.net.ca_certs.is_empty());
        assert_eq!(
            specs[1].args.net.ca_certs,
            vec![std::path::PathBuf::from("conf/ca.pem")]
        );
    }
}
