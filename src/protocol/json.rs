//! A tiny JSON writer that reproduces the exact bytes upstream emits.
//!
//! serde_json cannot escape `/` as `\/` (as Swift's plain encoder does),
//! and the protocol's envelopes are small and fixed, so they are written
//! by hand; parsing always goes through serde_json.

use std::fmt::Write;

/// How `/` is written inside JSON strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlashStyle {
    /// `\/`, as a plain Swift `JSONEncoder` writes it (frames' inner payloads).
    Escaped,
    /// `/`, as the `.withoutEscapingSlashes` encoder writes it (ServerHello).
    Plain,
}

/// Appends `text` as a quoted JSON string.
pub fn push_string(out: &mut String, text: &str, slashes: SlashStyle) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if slashes == SlashStyle::Escaped => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a string that normally needs no escaping (base64url, digits)
/// in one copy. A value that does need escaping (a parsed or adversarial
/// `ct`) falls back to [`push_string`], so the output is always valid JSON.
pub fn push_raw_string(out: &mut String, text: &str) {
    if needs_escape(text.as_bytes()) {
        push_string(out, text, SlashStyle::Plain);
        return;
    }
    out.push('"');
    out.push_str(text);
    out.push('"');
}

/// Whether any byte needs a JSON escape. Branch-free within each chunk so
/// the scan vectorises: `ct` can be megabytes and sits on the seal path.
fn needs_escape(bytes: &[u8]) -> bool {
    bytes.chunks(64).any(|chunk| {
        chunk.iter().fold(0u8, |acc, &b| {
            acc | u8::from(b == b'"') | u8::from(b == b'\\') | u8::from(b < 0x20)
        }) != 0
    })
}

/// An ordered JSON object writer: keys come out in the order they are pushed.
pub struct ObjectWriter<'a> {
    out: &'a mut String,
    first: bool,
    slashes: SlashStyle,
}

impl<'a> ObjectWriter<'a> {
    /// Starts an object in `out`.
    pub fn new(out: &'a mut String, slashes: SlashStyle) -> Self {
        out.push('{');
        ObjectWriter {
            out,
            first: true,
            slashes,
        }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        push_string(self.out, key, self.slashes);
        self.out.push(':');
    }

    /// Writes a string member.
    pub fn string(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        push_string(self.out, value, self.slashes);
        self
    }

    /// Writes a string member that needs no escaping.
    pub fn raw_string(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        push_raw_string(self.out, value);
        self
    }

    /// Writes an optional string member, omitting it when absent.
    pub fn opt_string(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.string(key, v);
        }
        self
    }

    /// Writes an integer member.
    pub fn int(&mut self, key: &str, value: impl std::fmt::Display) -> &mut Self {
        self.key(key);
        let _ = write!(self.out, "{value}");
        self
    }

    /// Writes a boolean member.
    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
        self
    }

    /// Writes a member whose value is already JSON text.
    pub fn raw_json(&mut self, key: &str, json: &str) -> &mut Self {
        self.key(key);
        self.out.push_str(json);
        self
    }

    /// Closes the object.
    pub fn finish(self) {
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_swift() {
        let mut s = String::new();
        push_string(&mut s, "a/b\"c\\\n\u{1}", SlashStyle::Escaped);
        assert_eq!(s, r#""a\/b\"c\\\n\u0001""#);
        let mut p = String::new();
        push_string(&mut p, "a/b", SlashStyle::Plain);
        assert_eq!(p, r#""a/b""#);
    }

    #[test]
    fn raw_strings_that_need_escaping_stay_valid_json() {
        let mut s = String::new();
        push_raw_string(&mut s, "a\"b\\");
        assert_eq!(s, r#""a\"b\\""#);
    }
}
