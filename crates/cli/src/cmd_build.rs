//! `traj build`: builds the role datasets from run directories (flags → `traj_datasets::build`),
//! with a progress bar on a terminal and a one-screen summary at the end.

use anyhow::Context;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use traj_datasets::{BuildConfig, BuildInputs, Format, Labels, Severity};

#[derive(clap::Args)]
pub struct Args {
    /// A runs directory (`<run_id>/session.json` + `events.jsonl`, or a data dir with `runs/`).
    /// Repeatable: several directories give the same result as one holding all runs.
    #[arg(long = "runs", required = true)]
    runs: Vec<PathBuf>,
    /// Output directory (train/, validation/, test/, report.*, manifest.json).
    #[arg(long)]
    out: PathBuf,
    /// Build config (TOML, or JSON when the name ends in .json): split ratios, near-dup, quality.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Human corrections (JSONL keyed by event_id or span_id).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Seed of every random choice (MinHash, split tie-breaks).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Row format: trl (conversational) or openai (fine-tuning JSONL).
    #[arg(long, default_value = "trl", value_parser = ["trl", "openai"])]
    format: String,
    /// Worker threads for the per-run work (0 = one per core). The outputs do not depend on it.
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn load_config(path: &PathBuf) -> anyhow::Result<BuildConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let cfg: BuildConfig = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?
    } else {
        toml::from_str(&text).with_context(|| format!("{}", path.display()))?
    };
    cfg.check()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(cfg)
}

/// A one-line progress bar redrawn in place on stderr.
fn draw(phase: &str, done: u64, total: u64) {
    // About 200 redraws per phase at most.
    let every = (total / 200).max(1);
    if done.checked_rem(every) != Some(0) && done != total {
        return;
    }
    let width = 30u64;
    let filled = (done * width).checked_div(total).unwrap_or(width);
    let bar: String = (0..width)
        .map(|i| if i < filled { '#' } else { '-' })
        .collect();
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r{phase:>8} [{bar}] {done}/{total}");
    if done == total {
        let _ = writeln!(err);
    }
    let _ = err.flush();
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::init_logs();
    let config = match &args.config {
        Some(p) => load_config(p)?,
        None => BuildConfig::default(),
    };
    let labels = match &args.labels {
        Some(p) => Labels::load(p)?,
        None => Labels::default(),
    };
    let format = Format::parse(&args.format)
        .ok_or_else(|| anyhow::anyhow!("unknown format {:?}", args.format))?;
    let policy = traj_datasets::dataset_redaction_policy();
    let tty = std::io::stderr().is_terminal();
    let progress = |phase: &str, done: u64, total: u64| draw(phase, done, total);
    let inputs = BuildInputs {
        runs: args.runs.clone(),
        out: args.out.clone(),
        config,
        labels,
        seed: args.seed,
        format,
        redactor: &policy,
        progress: if tty { Some(&progress) } else { None },
        threads: args.threads,
    };
    let summary = traj_datasets::build(&inputs)?;
    let rep = &summary.report;
    println!(
        "built {}: {} runs found, {} kept, {} quarantined, {} duplicates removed",
        args.out.display(),
        summary.runs_found,
        summary.runs_kept,
        summary.runs_quarantined,
        summary.runs_deduplicated
    );
    for (split, views) in &summary.rows {
        let cells: Vec<String> = views.iter().map(|(v, n)| format!("{v}={n}")).collect();
        println!("  {split}: {}", cells.join(" "));
    }
    for q in &rep.quarantine {
        let at = q.line.map(|l| format!(":{l}")).unwrap_or_default();
        eprintln!("quarantined {}{at}: {}", q.file, q.reason);
    }
    let leaks = rep.leakage.shared_goal_families
        + rep.leakage.shared_near_duplicate_clusters
        + rep.leakage.shared_goals;
    if summary.runs_cut > 0 {
        println!(
            "  {} runs left out to keep near-duplicate goals in one split (report.md: Split units)",
            summary.runs_cut
        );
    }
    for c in rep
        .checks
        .iter()
        .filter(|c| c.severity == Severity::Warning)
    {
        eprintln!("traj: warning: {}: {}", c.name, c.message);
    }
    for c in &summary.failed_checks {
        eprintln!("traj: error: {}: {}", c.name, c.message);
    }
    if leaks > 0 {
        eprintln!("traj: error: split leakage found, see report.json");
        return Ok(ExitCode::from(1));
    }
    if !summary.failed_checks.is_empty() {
        eprintln!(
            "traj: error: {} check(s) failed; the datasets are written, but a split is empty or thin (set `split.allow_thin_splits = true` in the build config to accept it)",
            summary.failed_checks.len()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "traj-build-{tag}-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            ));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn args(runs: PathBuf, out: PathBuf) -> Args {
        Args {
            runs: vec![runs],
            out,
            config: None,
            labels: None,
            seed: 3,
            format: "trl".into(),
            threads: 0,
        }
    }

    #[test]
    fn builds_with_a_toml_config_and_records_it_in_the_manifest() {
        let t = TempDir::new("ok");
        let runs = t.0.join("runs");
        traj_datasets::generate_corpus(&runs, 30, 4).unwrap();
        let cfg = t.0.join("build.toml");
        std::fs::write(
            &cfg,
            "[split]\ntrain = 0.6\nvalidation = 0.2\ntest = 0.2\nallow_thin_splits = true\n",
        )
        .unwrap();
        let mut a = args(runs, t.0.join("out"));
        a.config = Some(cfg);
        let code = run(a).unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(t.0.join("out/manifest.json")).unwrap()).unwrap();
        assert_eq!(m["config"]["split"]["train"], 0.6);
        assert_eq!(m["config"]["split"]["allow_thin_splits"], true);
        assert_eq!(m["seed"], 3);
        assert!(t.0.join("out/test/verifier_pref_pairs.jsonl").is_file());
    }

    #[test]
    fn thin_splits_fail_the_build_but_everything_is_written() {
        let t = TempDir::new("thin");
        let runs = t.0.join("runs");
        traj_datasets::generate_corpus(&runs, 3, 4).unwrap();
        let code = run(args(runs, t.0.join("out"))).unwrap();
        assert_eq!(code, ExitCode::from(1));
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(t.0.join("out/report.json")).unwrap()).unwrap();
        let errors: Vec<&serde_json::Value> = r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["severity"] == "error")
            .collect();
        assert!(!errors.is_empty(), "{}", r["checks"]);
        assert!(errors
            .iter()
            .all(|c| c["name"] == "split_empty" || c["name"] == "split_thin"));
        assert!(t.0.join("out/manifest.json").is_file());
        assert!(t.0.join("out/README.md").is_file());
    }

    #[test]
    fn bad_config_and_bad_labels_name_the_file_and_line() {
        let t = TempDir::new("bad");
        let runs = t.0.join("runs");
        traj_datasets::generate_corpus(&runs, 3, 4).unwrap();
        let cfg = t.0.join("build.toml");
        std::fs::write(&cfg, "[split]\ntrian = 0.6\n").unwrap();
        let mut a = args(runs.clone(), t.0.join("out"));
        a.config = Some(cfg);
        let err = format!("{:#}", run(a).unwrap_err());
        assert!(err.contains("build.toml") && err.contains("trian"), "{err}");

        let labels = t.0.join("labels.jsonl");
        std::fs::write(
            &labels,
            "{\"event_id\": \"a\", \"verdict\": \"end\"}\n{\"event_id\": \"b\"}\n",
        )
        .unwrap();
        let mut a = args(runs, t.0.join("out"));
        a.labels = Some(labels);
        let err = format!("{:#}", run(a).unwrap_err());
        assert!(err.contains("labels.jsonl:2:"), "{err}");
        assert!(
            !t.0.join("out/manifest.json").exists(),
            "nothing built on bad labels"
        );
    }
}
