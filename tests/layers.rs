//! Arrows point down: every top-level module of `src/` imports only
//! modules of a lower layer, so there is no import circle between rooms
//! and the command-line dispatcher is imported by nobody. The layers are
//! the ones drawn in `docs/ARCHITECTURE.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first. A module may import any module of a lower
/// layer and none of its own or a higher one.
const LAYERS: &[&[&str]] = &[
    &["protocol", "rng", "clock", "runtime", "knobs", "text"],
    &["transport", "report", "vectors", "fuzz_targets", "tunnel"],
    &["server"],
    // The driver module between transport and the commands.
    &["peer"],
    // The shared target flags, resolved into the driver's one `Target`;
    // the one judge of the driver's answers.
    &["flags", "judge"],
    &["client", "mitm"],
    &["scenarios", "clientrole", "netfuzz", "relay"],
    &["selftest", "diff"],
    &["cli"],
];

/// Imports against the layers that are known and waiting for a move, as
/// (file, imported module). Each one is a debt: remove the entry when the
/// file moves to the lower module.
const KNOWN: &[(&str, &str)] = &[];

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

/// The top-level module a file of `src/` belongs to.
fn room_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_string()
}

/// Every `crate::NAME` a file names outside comments.
fn imports(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
            rest = after;
        }
    }
    found
}

/// (file, room, imported room) for every cross-room import in `src/`.
fn edges() -> Vec<(String, String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let room = room_of(&src, &file);
        if room == "lib" || room == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let shown = format!("src/{}", file.strip_prefix(&src).unwrap().display());
        for target in imports(&text) {
            if target != room {
                out.push((shown.clone(), room.clone(), target));
            }
        }
    }
    out
}

fn layer_of(room: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&room))
}

#[test]
fn every_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let room = room_of(&src, &path);
        if room == "lib" || room == "main" {
            continue;
        }
        assert!(
            layer_of(&room).is_some(),
            "src/{room} has no layer in tests/layers.rs (and docs/ARCHITECTURE.md)"
        );
    }
}

#[test]
fn imports_point_down() {
    let mut wrong = Vec::new();
    let mut used_known = BTreeSet::new();
    for (file, room, target) in edges() {
        let (Some(from), Some(to)) = (layer_of(&room), layer_of(&target)) else {
            continue;
        };
        if to < from {
            continue;
        }
        if KNOWN.contains(&(file.as_str(), target.as_str())) {
            used_known.insert((file, target));
            continue;
        }
        wrong.push(format!("{file}: {room} imports {target}"));
    }
    assert!(
        wrong.is_empty(),
        "imports that do not point down:\n{}",
        wrong.join("\n")
    );
    for (file, target) in KNOWN {
        assert!(
            used_known.contains(&(file.to_string(), target.to_string())),
            "{file} no longer imports {target}: remove it from KNOWN"
        );
    }
}

#[test]
fn no_import_circle_between_rooms() {
    // Stronger than the layer rule alone would need, and independent of
    // the table: a depth-first search over the import graph itself.
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, room, target) in edges() {
        if KNOWN.contains(&(file.as_str(), target.as_str())) {
            continue;
        }
        graph.entry(room).or_default().insert(target);
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.to_string());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(circle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!("import circle: {}", circle.join(" -> "));
        }
    }
}

#[test]
fn the_reader_finds_imports_and_skips_comments() {
    let found = imports("use crate::a::b;\n// crate::c\nlet x = crate::d::e(); // crate::f\n");
    assert_eq!(
        found,
        ["a", "d"]
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
    );
}

#[test]
fn the_architecture_doc_draws_these_layers() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ARCHITECTURE.md"))
        .unwrap();
    let mut drawn: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for line in doc.lines() {
        let mut cells = line.split('|').map(str::trim).skip(1);
        let (Some(layer), Some(modules)) = (cells.next(), cells.next()) else {
            continue;
        };
        let Ok(layer) = layer.parse::<usize>() else {
            continue;
        };
        for name in modules.split('`').skip(1).step_by(2) {
            let name = name.trim_end_matches('/').trim_end_matches(".rs");
            drawn.entry(layer).or_default().insert(name.to_string());
        }
    }
    let table: BTreeMap<usize, BTreeSet<String>> = LAYERS
        .iter()
        .enumerate()
        .map(|(i, l)| (i, l.iter().map(|m| m.to_string()).collect()))
        .collect();
    assert_eq!(
        drawn, table,
        "the layer table of docs/ARCHITECTURE.md differs from LAYERS"
    );
}
