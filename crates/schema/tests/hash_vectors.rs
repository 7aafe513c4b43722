//! Canonical-JSON and hash test vectors shared with other languages (`proto/test-vectors/`).
//!
//! `proto/test-vectors/canonical_json.json` holds inputs and what `traj_schema::hashing` makes of
//! them: the canonical text, the full SHA-256 of its UTF-8 bytes, and `hash_json` / `hash_str`.
//! The Python package (`python/traj-instrument`) checks the same file
//! (`tests/python/test_python_package.py`). Run with `TRAJ_BLESS=1` to recompute the outputs
//! from the inputs after adding a vector (or after an intended change), and review the diff.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use traj_schema::hashing::{canonical_json, hash_json, hash_str};

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto/test-vectors/canonical_json.json")
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key)
        .unwrap_or_else(|| panic!("vector without {key:?}: {v}"))
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    field(v, key)
        .as_str()
        .unwrap_or_else(|| panic!("{key:?} is not a string in {v}"))
}

/// The outputs of one `canonical_json` vector, computed from its input.
fn canonical_outputs(input: &Value) -> [(&'static str, String); 3] {
    let canonical = canonical_json(input);
    [
        ("sha256", sha256_hex(&canonical)),
        ("hash", hash_json(input)),
        ("canonical", canonical),
    ]
}

fn hash_str_outputs(input: &str) -> [(&'static str, String); 2] {
    [("sha256", sha256_hex(input)), ("hash", hash_str(input))]
}

#[test]
fn canonical_json_and_hash_vectors_match_the_rust_implementation() {
    let path = vectors_path();
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut doc: Value = serde_json::from_str(&raw).expect("vectors file is JSON");
    let bless = std::env::var_os("TRAJ_BLESS").is_some();
    let mut mismatches = Vec::new();

    let cj = doc["canonical_json"]
        .as_array_mut()
        .expect("canonical_json array");
    assert!(
        cj.len() >= 30,
        "expected the full vector set, got {}",
        cj.len()
    );
    for v in cj.iter_mut() {
        let name = text(v, "name").to_owned();
        let outputs = canonical_outputs(field(v, "input"));
        for (key, want) in outputs {
            if bless {
                v[key] = Value::String(want);
            } else if text(v, key) != want {
                mismatches.push(format!(
                    "canonical_json/{name}.{key}: file {:?}, rust {want:?}",
                    text(v, key)
                ));
            }
        }
    }
    let hs = doc["hash_str"].as_array_mut().expect("hash_str array");
    assert!(!hs.is_empty());
    for v in hs.iter_mut() {
        let name = text(v, "name").to_owned();
        let input = text(v, "input").to_owned();
        for (key, want) in hash_str_outputs(&input) {
            if bless {
                v[key] = Value::String(want);
            } else if text(v, key) != want {
                mismatches.push(format!(
                    "hash_str/{name}.{key}: file {:?}, rust {want:?}",
                    text(v, key)
                ));
            }
        }
    }
    // Float notation, from bit patterns (no JSON parsing involved): `bits` is the IEEE 754
    // double as 16 hex digits, `text` what serde_json writes for it.
    let floats = float_format_vectors();
    if bless {
        doc["float_format"] = floats;
    } else if doc.get("float_format") != Some(&floats) {
        mismatches.push("float_format: the file differs from what serde_json writes".into());
    }
    if bless {
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap() + "\n").unwrap();
        return;
    }
    assert!(
        mismatches.is_empty(),
        "{} drifted from traj_schema::hashing (rerun with TRAJ_BLESS=1 if intended):\n{}",
        path.display(),
        mismatches.join("\n")
    );
}

/// 600 finite doubles: edge values, then splitmix64 bit patterns spread over every exponent.
fn float_format_vectors() -> Value {
    let mut bits: Vec<u64> = [
        0.0f64,
        -0.0,
        1.0,
        -1.0,
        0.1,
        1e15,
        1e16,
        1e17,
        9007199254740993.0,
        1e-5,
        1e-6,
        1e-7,
        123.456,
        f64::MAX,
        f64::MIN_POSITIVE,
        5e-324,
        2.5e-3,
        1e21,
        1e22,
        1e23,
    ]
    .iter()
    .map(|f| f.to_bits())
    .collect();
    let mut state = 0x7472_616a_u64; // "traj"
    while bits.len() < 600 {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // Half the samples near 1 (exponents -40..40, where the notation switches), half anywhere.
        let b = if bits.len().is_multiple_of(2) {
            let exp = (1023 - 133 + (z >> 52) % 266) << 52;
            (z & 0x800f_ffff_ffff_ffff) | exp
        } else {
            z
        };
        if f64::from_bits(b).is_finite() {
            bits.push(b);
        }
    }
    Value::Array(
        bits.into_iter()
            .map(|b| {
                let text = canonical_json(&serde_json::json!(f64::from_bits(b)));
                serde_json::json!({"bits": format!("{b:016x}"), "text": text})
            })
            .collect(),
    )
}

#[test]
fn vectors_cover_the_tricky_cases() {
    // The properties another language most often gets wrong, pinned independently of the file.
    let obj: Map<String, Value> =
        serde_json::from_str(r#"{"é":1,"z":2,"Z":3,"😀":4,"\uffff":5}"#).unwrap();
    assert_eq!(
        canonical_json(&Value::Object(obj)),
        "{\"Z\":3,\"z\":2,\"é\":1,\"\u{ffff}\":5,\"😀\":4}",
        "keys sort by code point (= UTF-8 bytes), not UTF-16 units"
    );
    let nums: Value =
        serde_json::from_str("[1e20, 1e16, 1e15, 1e-7, 0.0, -0.0, 18446744073709551616, 3.0]")
            .unwrap();
    assert_eq!(
        canonical_json(&nums),
        "[1e+20,1e+16,1000000000000000.0,1e-7,0.0,-0.0,1.8446744073709552e+19,3.0]"
    );
    assert_eq!(
        canonical_json(&Value::String("é\u{1}\n/\u{7f}".into())),
        "\"é\\u0001\\n/\u{7f}\"",
        "non-ASCII raw, control characters escaped, / and DEL not"
    );
}
