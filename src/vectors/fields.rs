//! Typed access into a parsed vector file that names the failing field by
//! its path, so a wrong type is reported as such and never panics.

use serde_json::Value;

use super::VectorsError;

/// A JSON value together with the path it was reached by.
#[derive(Clone, Copy)]
pub struct At<'a> {
    /// The dotted path, e.g. `handshake.serverHello.sid`.
    pub path: &'a str,
    /// The value there.
    pub value: &'a Value,
}

/// Joins a path and a key.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn wrong(path: &str, expected: &'static str) -> VectorsError {
    VectorsError::Field {
        path: path.to_owned(),
        expected,
    }
}

/// Member `key` of the object at `path`.
pub fn get<'a>(value: &'a Value, path: &str, key: &str) -> Result<&'a Value, VectorsError> {
    let full = join(path, key);
    match value {
        Value::Object(map) => map.get(key).ok_or(VectorsError::Field {
            path: full,
            expected: "present",
        }),
        _ => Err(wrong(path, "an object")),
    }
}

/// A string member.
pub fn str_at<'a>(value: &'a Value, path: &str, key: &str) -> Result<&'a str, VectorsError> {
    get(value, path, key)?
        .as_str()
        .ok_or_else(|| wrong(&join(path, key), "a string"))
}

/// An unsigned integer member.
pub fn u64_at(value: &Value, path: &str, key: &str) -> Result<u64, VectorsError> {
    get(value, path, key)?
        .as_u64()
        .ok_or_else(|| wrong(&join(path, key), "an integer in 0..=2^64-1"))
}

/// A signed integer member.
pub fn i64_at(value: &Value, path: &str, key: &str) -> Result<i64, VectorsError> {
    get(value, path, key)?
        .as_i64()
        .ok_or_else(|| wrong(&join(path, key), "a 64-bit integer"))
}

/// An array member.
pub fn array_at<'a>(value: &'a Value, path: &str, key: &str) -> Result<&'a [Value], VectorsError> {
    get(value, path, key)?
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| wrong(&join(path, key), "an array"))
}

/// A hex member of exactly `N` bytes (optional `0x`).
pub fn hex_array_at<const N: usize>(
    value: &Value,
    path: &str,
    key: &str,
) -> Result<[u8; N], VectorsError> {
    let text = str_at(value, path, key)?;
    crate::protocol::encoding::hex_decode_0x(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| wrong(&join(path, key), "hex of the right length"))
}
