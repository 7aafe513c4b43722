//! `manifest.json`: what the build read (every input run's hashes, the labels, the config) and
//! wrote (every file's sha256, bytes and lines), so a dataset can be traced and re-checked.

use super::{io_at, BuildError, BuildInputs};
use crate::output::Written;
use crate::report::{InputHashes, Report};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use traj_schema::SCHEMA_VERSION;

fn rel(out: &Path, p: &Path) -> String {
    p.strip_prefix(out)
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Writes the manifest of the files in `written`.
pub(crate) fn write_manifest(
    inputs: &BuildInputs,
    rep: &Report,
    written: &[Written],
) -> Result<(), BuildError> {
    let out = &inputs.out;
    let cfg = &inputs.config;
    let mut files = BTreeMap::new();
    for w in written {
        files.insert(
            rel(out, &w.path),
            json!({"sha256": w.sha256, "bytes": w.bytes, "lines": w.lines}),
        );
    }
    // Serialized from borrowed parts (fields in sorted key order, as a `serde_json` object would
    // write them): the per-run input list is not copied into a `Value`.
    #[derive(serde::Serialize)]
    struct ManifestInputs<'a> {
        labels_sha256: Value,
        runs: &'a [InputHashes],
        runs_dirs: Vec<String>,
    }
    #[derive(serde::Serialize)]
    struct Manifest<'a> {
        config: Value,
        config_hash: Value,
        counts: &'a BTreeMap<String, BTreeMap<String, u64>>,
        files: BTreeMap<String, Value>,
        format: &'a str,
        inputs: ManifestInputs<'a>,
        rebalanced: &'a [crate::balance::Rebalanced],
        redaction: Value,
        schema_version: Value,
        seed: u64,
        traj_version: &'a str,
    }
    let manifest = Manifest {
        config: json!(cfg),
        config_hash: json!(cfg.hash()),
        counts: &rep.rows,
        files,
        format: inputs.format.as_str(),
        inputs: ManifestInputs {
            labels_sha256: json!(inputs.labels.sha256()),
            runs: &rep.inputs,
            runs_dirs: inputs
                .runs
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
        },
        rebalanced: &rep.balance.rebalanced,
        redaction: json!({"policy": inputs.redactor.name(), "version": inputs.redactor.version()}),
        schema_version: json!(SCHEMA_VERSION),
        seed: inputs.seed,
        traj_version: env!("CARGO_PKG_VERSION"),
    };
    let p = out.join("manifest.json");
    crate::output::write_pretty_json(&p, &manifest).map_err(io_at(&p))?;
    Ok(())
}
