//! The pretty JSON layout of Swift's `JSONEncoder` with `.prettyPrinted`
//! and `.sortedKeys`, which is how the upstream fixture is written.
//!
//! Reproducing the layout (two-space indent, `"key" : value`, `\/`) lets
//! a file we generate be compared with the upstream one by eye and by
//! `diff`, not only by a JSON parser.

use serde_json::Value;

use crate::protocol::json::{push_string, SlashStyle};

/// Renders `value` as Swift's sorted, pretty-printed encoder does, with a
/// final newline (as the committed fixture ends).
pub fn to_swift_pretty(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, 0);
    out.push('\n');
    out
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

fn write_value(out: &mut String, value: &Value, level: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => push_string(out, s, SlashStyle::Escaped),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[\n\n");
                indent(out, level);
                out.push(']');
                return;
            }
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                indent(out, level + 1);
                write_value(out, item, level + 1);
                if i + 1 < items.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(out, level);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{\n\n");
                indent(out, level);
                out.push('}');
                return;
            }
            // Sorted here rather than trusting the map type, whose order
            // depends on serde_json's features.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push_str("{\n");
            for (i, key) in keys.iter().enumerate() {
                indent(out, level + 1);
                push_string(out, key, SlashStyle::Escaped);
                out.push_str(" : ");
                write_value(out, &map[key.as_str()], level + 1);
                if i + 1 < keys.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(out, level);
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_the_upstream_fixture_layout() {
        let text = include_str!("../../vectors/upstream/secure-channel-v1-vectors.json");
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(to_swift_pretty(&value), text);
    }
}
