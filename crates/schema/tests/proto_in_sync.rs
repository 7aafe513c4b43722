//! The published contract in `proto/` must equal what the Rust types generate.
//! Run with `TRAJ_BLESS=1` to rewrite `proto/` after an intended change.

use std::path::PathBuf;

fn proto_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto")
}

fn check(rel: &str, want: &str) {
    let path = proto_dir().join(rel);
    if std::env::var_os("TRAJ_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with TRAJ_BLESS=1 to generate)",
            path.display()
        )
    });
    assert!(
        have == want,
        "{} drifted from the Rust types; rerun with TRAJ_BLESS=1 and review the diff",
        path.display()
    );
}

#[test]
fn attribute_tables_are_in_sync() {
    check("attributes.md", &traj_schema::keys::attributes_markdown());
    check("attributes.json", &traj_schema::keys::attributes_json());
}

#[test]
fn json_schemas_are_in_sync() {
    for (name, text) in traj_schema::json_schema::all() {
        check(&format!("schemas/{name}"), &text);
    }
}
