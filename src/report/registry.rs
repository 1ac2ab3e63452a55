//! The requirement registry, read from `docs/PROTOCOL.md` (embedded), where
//! every requirement is a bullet `- **ID** (LEVEL): …`.

/// The protocol document, as built into the binary.
pub const PROTOCOL_MD: &str = include_str!("../../docs/PROTOCOL.md");

/// The generated vector suite, scanned for the requirement IDs it cites.
const VECTOR_SUITE: &str = include_str!("../../vectors/generated/seed-1.suite.json");

/// One requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// ID such as `CALL-3`.
    pub id: String,
    /// `MUST`, `SHOULD` or `UPSTREAM`.
    pub level: String,
}

/// Every requirement of the document, in document order.
#[derive(Debug, Clone)]
pub struct Registry {
    /// The requirements.
    pub requirements: Vec<Requirement>,
}

impl Registry {
    /// Parses a protocol document.
    pub fn parse(doc: &str) -> Self {
        let mut requirements = Vec::new();
        for line in doc.lines() {
            let Some(rest) = line.trim_start().strip_prefix("- **") else {
                continue;
            };
            let Some((id, after)) = rest.split_once("**") else {
                continue;
            };
            let Some(level) = after
                .trim_start()
                .strip_prefix('(')
                .and_then(|l| l.split_once("):"))
                .map(|(l, _)| l)
            else {
                continue;
            };
            if matches!(level, "MUST" | "SHOULD" | "UPSTREAM")
                && id.contains('-')
                && id
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
            {
                requirements.push(Requirement {
                    id: id.to_owned(),
                    level: level.to_owned(),
                });
            }
        }
        Registry { requirements }
    }

    /// The registry of the embedded document.
    pub fn builtin() -> Self {
        Self::parse(PROTOCOL_MD)
    }

    /// Whether `id` is a requirement.
    pub fn contains(&self, id: &str) -> bool {
        self.requirements.iter().any(|r| r.id == id)
    }

    /// Requirement IDs cited by the generated vector suite.
    pub fn vector_ids(&self) -> Vec<String> {
        self.requirements
            .iter()
            .filter(|r| {
                VECTOR_SUITE.match_indices(r.id.as_str()).any(|(o, _)| {
                    let before = VECTOR_SUITE[..o].chars().next_back();
                    let after = VECTOR_SUITE[o + r.id.len()..].chars().next();
                    !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
                        && !after.is_some_and(|c| c.is_ascii_digit())
                })
            })
            .map(|r| r.id.clone())
            .collect()
    }
}
