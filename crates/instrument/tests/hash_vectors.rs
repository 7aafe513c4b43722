//! Run-hash test vectors shared with other languages (`proto/test-vectors/run_hashes.json`).
//!
//! Each vector holds the inputs of a run as JSON (`model_stack`, `runtime_config`, `prompts`,
//! `tools`) and what [`RunInfo::hashes`] makes of them: `config_hash`, `prompt_hash`,
//! `toolset_hash`, plus `config_canonical`, the canonical JSON the config hash is taken over (the
//! typed model stack and runtime config serialized: defaults filled in, `extra` flattened). The
//! Python package checks the same file (`tests/python/test_python_package.py`). `TRAJ_BLESS=1`
//! recomputes the outputs from the inputs; review the diff.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use traj_instrument::RunInfo;
use traj_schema::hashing::canonical_json;
use traj_schema::session::{ModelSpec, RuntimeConfig};

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto/test-vectors/run_hashes.json")
}

fn run_info(v: &Value) -> RunInfo {
    let model_stack: BTreeMap<String, ModelSpec> =
        serde_json::from_value(v["model_stack"].clone()).expect("model_stack");
    let runtime_config: RuntimeConfig =
        serde_json::from_value(v["runtime_config"].clone()).expect("runtime_config");
    let prompts: BTreeMap<String, String> =
        serde_json::from_value(v["prompts"].clone()).expect("prompts");
    let tools: Vec<Value> = serde_json::from_value(v["tools"].clone()).expect("tools");
    RunInfo {
        agent_name: "vectors".into(),
        model_stack,
        runtime_config,
        prompts,
        tools,
        ..Default::default()
    }
}

#[test]
fn run_hash_vectors_match_run_info_hashes() {
    let path = vectors_path();
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut doc: Value = serde_json::from_str(&raw).expect("vectors file is JSON");
    let bless = std::env::var_os("TRAJ_BLESS").is_some();
    let mut mismatches = Vec::new();
    let vectors = doc["run_hashes"].as_array_mut().expect("run_hashes array");
    assert!(vectors.len() >= 5, "expected the full vector set");
    for v in vectors.iter_mut() {
        let name = v["name"].as_str().expect("name").to_owned();
        let info = run_info(v);
        let hashes = info.hashes();
        let config_canonical = canonical_json(&json!({
            "model_stack": info.model_stack,
            "runtime_config": info.runtime_config,
        }));
        // The canonical text must be what config_hash is taken over.
        assert_eq!(
            traj_schema::hashing::hash_str(&config_canonical),
            hashes.config_hash,
            "{name}: config_hash is not the hash of the serialized model stack + runtime config"
        );
        let outputs = [
            ("config_canonical", config_canonical),
            ("config_hash", hashes.config_hash),
            ("prompt_hash", hashes.prompt_hash),
            ("toolset_hash", hashes.toolset_hash),
        ];
        for (key, want) in outputs {
            if bless {
                v[key] = Value::String(want);
            } else if v[key].as_str() != Some(want.as_str()) {
                mismatches.push(format!("{name}.{key}: file {}, rust {want:?}", v[key]));
            }
        }
    }
    if bless {
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap() + "\n").unwrap();
        return;
    }
    assert!(
        mismatches.is_empty(),
        "{} drifted from RunInfo::hashes (rerun with TRAJ_BLESS=1 if intended):\n{}",
        path.display(),
        mismatches.join("\n")
    );
}
