//! Generation of the suite format.
use serde_json::{json, Value};
/// Builds the suite for `seed`.
pub fn build(seed: u64) -> Value {
    json!({"seed": seed, "testGroups": []})
}
