//! Finding bookkeeping: confirmed hits are bucketed by signature, and
//! within a bucket kept once per response shape of the firing step, so one
//! bug that answers in two ways yields two saved findings and a bug that
//! fires a thousand times yields one. Pure: the runner does the I/O.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::report::Level;

use super::case::Signature;

/// Saved findings per bucket; hits with further shapes are only counted.
pub const MAX_SHAPES_PER_BUCKET: usize = 4;

/// One response shape seen in a bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShapeSummary {
    /// The firing step's answer, as `oracle::shape` describes it.
    pub shape: String,
    /// Hits with this shape. Each is confirmed on a fresh session, except
    /// under a handshake budget, where only the first is and repeats are
    /// counted as seen.
    pub count: u64,
    /// The saved finding, once written.
    pub file: Option<String>,
    /// What the oracle saw the first time.
    pub detail: String,
}

/// One bucket in the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketSummary {
    /// `oracle/layer/field`.
    pub signature: String,
    /// The oracle.
    pub oracle: String,
    /// The layer.
    pub layer: String,
    /// The field.
    pub field: String,
    /// The requirement IDs the bucket judges.
    pub requirement: String,
    /// Their level: `MUST` fails the run, `SHOULD` is a warning,
    /// `UPSTREAM` information.
    pub level: Level,
    /// Occurrences, all shapes together (counted as `ShapeSummary::count`).
    pub count: u64,
    /// The first shape's saved finding (each shape's is under `shapes`).
    pub file: Option<String>,
    /// What the oracle saw the first time.
    pub detail: String,
    /// The shapes kept, in the order they were first seen.
    pub shapes: Vec<ShapeSummary>,
    /// Confirmed hits whose shape came after the bucket was full.
    pub other_shapes: u64,
}

/// What to do with a confirmed hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A new shape in its bucket: minimise it and save it under this name.
    New {
        /// The file name, stable for this signature and shape.
        file_name: String,
    },
    /// A shape already kept: counted.
    Repeat,
    /// The bucket already keeps its most shapes: counted.
    Overflow,
}

/// Books one confirmed hit of `sig` whose firing step answered with
/// `shape`, and says whether it is new.
pub fn admit(
    buckets: &mut BTreeMap<Signature, BucketSummary>,
    sig: &Signature,
    shape: &str,
    detail: &str,
) -> Admission {
    let bucket = buckets.entry(sig.clone()).or_insert_with(|| {
        // An oracle this version does not name is held to the strictest level.
        let (requirement, level) =
            super::oracle::judged_signature(sig).unwrap_or(("unknown", Level::Must));
        BucketSummary {
            signature: sig.to_string(),
            oracle: sig.oracle.clone(),
            layer: sig.layer.clone(),
            field: sig.field.clone(),
            requirement: requirement.to_string(),
            level,
            count: 0,
            file: None,
            detail: detail.to_string(),
            shapes: Vec::new(),
            other_shapes: 0,
        }
    });
    bucket.count += 1;
    if let Some(known) = bucket.shapes.iter_mut().find(|s| s.shape == shape) {
        known.count += 1;
        return Admission::Repeat;
    }
    if bucket.shapes.len() >= MAX_SHAPES_PER_BUCKET {
        bucket.other_shapes += 1;
        return Admission::Overflow;
    }
    bucket.shapes.push(ShapeSummary {
        shape: shape.to_string(),
        count: 1,
        file: None,
        detail: detail.to_string(),
    });
    let shapes: Vec<&str> = bucket.shapes.iter().map(|s| s.shape.as_str()).collect();
    let file_name = file_names(sig, &shapes).pop().unwrap_or_default();
    Admission::New { file_name }
}

/// Whether a hit of `sig` with `shape` would only be counted: the shape is
/// already kept in its bucket, or the bucket keeps no more shapes.
pub fn is_known(
    buckets: &BTreeMap<Signature, BucketSummary>,
    sig: &Signature,
    shape: &str,
) -> bool {
    buckets.get(sig).is_some_and(|b| {
        b.shapes.iter().any(|s| s.shape == shape) || b.shapes.len() >= MAX_SHAPES_PER_BUCKET
    })
}

/// Records where the finding for `sig` and `shape` was saved.
pub fn saved(
    buckets: &mut BTreeMap<Signature, BucketSummary>,
    sig: &Signature,
    shape: &str,
    path: String,
) {
    let Some(bucket) = buckets.get_mut(sig) else {
        return;
    };
    if bucket.shapes.first().is_some_and(|s| s.shape == shape) {
        bucket.file = Some(path.clone());
    }
    if let Some(s) = bucket.shapes.iter_mut().find(|s| s.shape == shape) {
        s.file = Some(path);
    }
}

/// The file names of a bucket's shapes, in order:
/// `<oracle>-<layer>-<field>--<8 hex digits of the shape's hash>.json`, so
/// a shape keeps its name across runs. Names are distinct: a shape whose
/// short hash is taken gets the full hash, then a counter.
pub fn file_names(sig: &Signature, shapes: &[&str]) -> Vec<String> {
    let base = format!("{}-{}-{}", sig.oracle, sig.layer, sig.field);
    let base: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut names: Vec<String> = Vec::with_capacity(shapes.len());
    for shape in shapes {
        let h = stable_hash(shape);
        let short = format!("{base}--{:08x}.json", h >> 32);
        let name = if !names.contains(&short) {
            short
        } else {
            let long = format!("{base}--{h:016x}.json");
            let mut name = long.clone();
            let mut n = 2;
            while names.contains(&name) {
                name = long.replace(".json", &format!("-{n}.json"));
                n += 1;
            }
            name
        };
        names.push(name);
    }
    names
}

/// FNV-1a: the same number for the same text on every run and platform.
pub fn stable_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig() -> Signature {
        Signature {
            oracle: "undocumented-body".into(),
            layer: "inner".into(),
            field: "path".into(),
        }
    }

    #[test]
    fn a_hit_is_known_once_its_shape_is_kept_or_its_bucket_is_full() {
        let mut b = BTreeMap::new();
        let s = sig();
        assert!(!is_known(&b, &s, "x"));
        admit(&mut b, &s, "x", "d");
        assert!(is_known(&b, &s, "x"));
        assert!(!is_known(&b, &s, "y"));
        for shape in ["y", "z", "w"] {
            admit(&mut b, &s, shape, "d");
        }
        assert!(is_known(&b, &s, "never seen"), "a full bucket only counts");
    }

    #[test]
    fn one_saved_finding_per_shape_and_the_rest_counted() {
        let mut b = BTreeMap::new();
        let s = sig();
        let first = admit(&mut b, &s, "/secure/call 404 ", "d1");
        let Admission::New { file_name } = first else {
            panic!("{first:?}")
        };
        assert!(file_name.starts_with("undocumented-body-inner-path--"));
        assert_eq!(
            admit(&mut b, &s, "/secure/call 404 ", "d2"),
            Admission::Repeat
        );
        let second = admit(&mut b, &s, "/secure/call 405 ", "d3");
        let Admission::New { file_name: other } = second else {
            panic!("{second:?}")
        };
        assert_ne!(file_name, other);
        for shape in ["a", "b"] {
            assert!(matches!(
                admit(&mut b, &s, shape, ""),
                Admission::New { .. }
            ));
        }
        assert_eq!(admit(&mut b, &s, "c", ""), Admission::Overflow);
        assert_eq!(admit(&mut b, &s, "a", ""), Admission::Repeat);

        saved(&mut b, &s, "/secure/call 405 ", "dir/x.json".into());
        saved(&mut b, &s, "/secure/call 404 ", "dir/y.json".into());
        let bucket = &b[&s];
        assert_eq!(bucket.count, 7);
        assert_eq!(bucket.other_shapes, 1);
        let counts: Vec<(&str, u64)> = bucket
            .shapes
            .iter()
            .map(|x| (x.shape.as_str(), x.count))
            .collect();
        assert_eq!(
            counts,
            vec![
                ("/secure/call 404 ", 2),
                ("/secure/call 405 ", 1),
                ("a", 2),
                ("b", 1)
            ]
        );
        assert_eq!(bucket.file.as_deref(), Some("dir/y.json"));
        assert_eq!(bucket.shapes[1].file.as_deref(), Some("dir/x.json"));
        assert_eq!(bucket.shapes[1].detail, "d3");
        assert_eq!(bucket.detail, "d1");
    }

    #[test]
    fn names_are_stable_and_distinct() {
        let s = sig();
        let a = file_names(&s, &["/secure/call 404 ", "/secure/call 405 "]);
        let b = file_names(&s, &["/secure/call 405 "]);
        // A shape's name does not depend on what was found before it.
        assert_eq!(a[1], b[0]);
        assert_ne!(a[0], a[1]);
        assert_eq!(
            a[0],
            format!(
                "undocumented-body-inner-path--{:08x}.json",
                stable_hash("/secure/call 404 ") >> 32
            )
        );
        // The same shape twice (a collision stand-in) still gets two names.
        let same = file_names(&s, &["x", "x", "x"]);
        assert_eq!(same.len(), 3);
        assert!(same[0] != same[1] && same[1] != same[2] && same[0] != same[2]);
        let odd = Signature {
            oracle: "o".into(),
            layer: "l/x".into(),
            field: "f g".into(),
        };
        assert!(file_names(&odd, &["s"])[0].starts_with("o-l_x-f_g--"));
        // FNV-1a's published value for "a".
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
