//! The dataset card (`OUT/README.md`): YAML front matter that makes the output directory a
//! Hugging Face dataset (`datasets.load_dataset(OUT, "<view>")` gives its splits, with the
//! features each view's rows have), a license placeholder and the build's summary.

use crate::output::Written;
use crate::report::Report;
use crate::rows::{Format, View};
use crate::split::Split;
use std::fmt::Write as _;
use std::path::Path;

/// A column of a view's rows and its `datasets` feature (`json` keeps nested messages, tools and
/// metadata exactly as written: no Arrow struct inference across rows).
enum Feature {
    Json,
    ListJson,
    ListString,
    ListBool,
    Bool,
    String,
}

fn columns(view: View, format: Format) -> Vec<(&'static str, Feature)> {
    use Feature::*;
    match (format, view) {
        (Format::Trl, View::PlannerSft | View::WorkerSft | View::VerifierSft) => vec![
            ("messages", ListJson),
            ("tools", ListJson),
            ("metadata", Json),
        ],
        (Format::Trl, View::WorkerRecoveryCases) => vec![
            ("prompt", ListJson),
            ("completion", ListJson),
            ("tools", ListJson),
            ("metadata", Json),
        ],
        (Format::Trl, View::VerifierPrefPairs) => vec![
            ("prompt", ListJson),
            ("chosen", ListJson),
            ("rejected", ListJson),
            ("tools", ListJson),
            ("metadata", Json),
        ],
        (Format::Trl, View::VerifierKto | View::WorkerKto) => vec![
            ("prompt", ListJson),
            ("completion", ListJson),
            ("label", Bool),
            ("tools", ListJson),
            ("metadata", Json),
        ],
        (_, View::WorkerPrm) => vec![
            ("prompt", String),
            ("completions", ListString),
            ("labels", ListBool),
            ("metadata", Json),
        ],
        (Format::Openai, View::VerifierPrefPairs) => vec![
            ("input", Json),
            ("preferred_output", ListJson),
            ("non_preferred_output", ListJson),
        ],
        (Format::Openai, _) => vec![
            ("messages", ListJson),
            ("tools", ListJson),
            ("parallel_tool_calls", Bool),
        ],
    }
}

fn feature_yaml(out: &mut String, name: &str, f: &Feature) {
    let (key, ty) = match f {
        Feature::Json => ("dtype", "json"),
        Feature::ListJson => ("list", "json"),
        Feature::ListString => ("list", "string"),
        Feature::ListBool => ("list", "bool"),
        Feature::Bool => ("dtype", "bool"),
        Feature::String => ("dtype", "string"),
    };
    let _ = writeln!(out, "  - name: {name}\n    {key}: {ty}");
}

/// The card's text. A split with no rows of a view is left out of that view's config (the
/// `datasets` library refuses a split with no data); the body says which.
pub fn dataset_card(rep: &Report, format: Format, written: &[Written]) -> String {
    let mut s = String::from("---\n# Set the license of your data before sharing it.\nlicense: other\npretty_name: traj agent trajectories\ntags:\n- traj\n- agents\n- planner-worker-verifier\nconfigs:\n");
    let mut left_out = Vec::new();
    for &view in View::for_format(format) {
        let splits: Vec<Split> = Split::ALL
            .into_iter()
            .filter(|sp| rep.rows_in(*sp, view) > 0)
            .collect();
        for sp in Split::ALL.iter().filter(|sp| !splits.contains(sp)) {
            left_out.push(format!("{}/{}", view.as_str(), sp.as_str()));
        }
        if splits.is_empty() {
            continue;
        }
        let _ = writeln!(s, "- config_name: {}\n  data_files:", view.as_str());
        for sp in &splits {
            let _ = writeln!(
                s,
                "  - split: {}\n    path: {}/{}.jsonl",
                sp.as_str(),
                sp.as_str(),
                view.as_str()
            );
        }
        let _ = writeln!(s, "  features:");
        for (name, f) in columns(view, format) {
            feature_yaml(&mut s, name, &f);
        }
    }
    dataset_info(&mut s, rep, format, written);
    s.push_str("---\n\n");
    body(&mut s, rep, format, &left_out);
    s
}

/// Each split's rows and bytes: what the files hold. `datasets` keys its cache of a directory
/// on the card, so a rebuild in place must change the card, or a reload returns the old build.
fn dataset_info(s: &mut String, rep: &Report, format: Format, written: &[Written]) {
    s.push_str("dataset_info:\n");
    for &view in View::for_format(format) {
        let splits: Vec<Split> = Split::ALL
            .into_iter()
            .filter(|sp| rep.rows_in(*sp, view) > 0)
            .collect();
        if splits.is_empty() {
            continue;
        }
        let _ = writeln!(s, "- config_name: {}\n  splits:", view.as_str());
        for sp in splits {
            let path = crate::build::view_path(Path::new(""), sp, view);
            let bytes = written
                .iter()
                .find(|w| w.path.ends_with(&path))
                .map_or(0, |w| w.bytes);
            let _ = writeln!(
                s,
                "  - name: {}\n    num_bytes: {bytes}\n    num_examples: {}",
                sp.as_str(),
                rep.rows_in(sp, view)
            );
        }
    }
}

fn body(s: &mut String, rep: &Report, format: Format, left_out: &[String]) {
    let _ = writeln!(
        s,
        "# traj agent trajectories\n\nRole datasets built by `traj build` (traj {}) from {} runs of a Planner / Worker / Verifier agent: {} kept, {} quarantined, {} duplicates removed, {} left out to keep near-duplicate goals in one split. Format `{}`; seed {}; build config `{}`.\n",
        env!("CARGO_PKG_VERSION"),
        rep.runs.found,
        rep.runs.kept,
        rep.runs.quarantined,
        rep.runs.deduplicated,
        rep.runs.cut_near_duplicates,
        format.as_str(),
        rep.seed,
        rep.config_hash
    );
    let _ = writeln!(s, "```python\nfrom datasets import load_dataset\nds = load_dataset(\"path/to/this/directory\", \"worker_sft\")  # train / validation / test\n```\n");
    let _ = writeln!(
        s,
        "| config | train | validation | test |\n|---|---|---|---|"
    );
    for &view in View::for_format(format) {
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} |",
            view.as_str(),
            rep.rows_in(Split::Train, view),
            rep.rows_in(Split::Validation, view),
            rep.rows_in(Split::Test, view)
        );
    }
    if !left_out.is_empty() {
        let _ = writeln!(
            s,
            "\nEmpty, so not in the configs: {}.",
            left_out.join(", ")
        );
    }
    let failed = rep.checks.len();
    let _ = writeln!(
        s,
        "\nSplits are by goal family (near-duplicate goals never cross splits); leakage: {} shared families, {} shared near-duplicate clusters, {} shared goals. {} named checks failed (see `report.md`).\n\nEvery row's `metadata` gives its lineage (`run_id`, `trace_id`, `span_ids`, `event_ids`, `step`, `role`) and its labels; `manifest.json` holds the sha256 of every input and output file. Labelling rules: traj's docs/datasets.md.",
        rep.leakage.shared_goal_families,
        rep.leakage.shared_near_duplicate_clusters,
        rep.leakage.shared_goals,
        failed
    );
}
