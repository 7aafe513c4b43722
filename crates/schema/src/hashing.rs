//! Content hashes over canonical JSON: `config_hash`, `prompt_hash`, `toolset_hash`, goal hashes.
//!
//! Canonical JSON here means: object keys sorted (recursively), no insignificant whitespace,
//! numbers and strings as `serde_json` prints them. Any language can reproduce it, which is why
//! the hash is defined on it rather than on a Rust struct layout.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Writes `v` as canonical JSON (keys sorted at every depth, compact).
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `sha256:` followed by the first 16 bytes (32 hex digits) of SHA-256 of the canonical JSON.
pub fn hash_json(v: &Value) -> String {
    hash_str(&canonical_json(v))
}

/// `sha256:` followed by the first 16 bytes (32 hex digits) of SHA-256 of the text.
pub fn hash_str(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    format!("sha256:{}", hex::encode(&digest[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a = json!({"b": 1, "a": {"y": [1, 2], "x": "s"}});
        let b = json!({"a": {"x": "s", "y": [1, 2]}, "b": 1});
        assert_eq!(hash_json(&a), hash_json(&b));
        assert_eq!(canonical_json(&a), r#"{"a":{"x":"s","y":[1,2]},"b":1}"#);
    }

    #[test]
    fn different_content_different_hash() {
        assert_ne!(hash_json(&json!({"a": 1})), hash_json(&json!({"a": 2})));
        assert!(hash_str("x").starts_with("sha256:"));
        assert_eq!(hash_str("x").len(), "sha256:".len() + 32);
    }
}
