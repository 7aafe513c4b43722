//! `traj report --runs DIR [--runs DIR2 ..] --out OUT [--baseline CONFIG_HASH] [--jaeger-url URL]`:
//! computes the role metrics of every run and writes `OUT/metrics.json` and `OUT/dashboard.html`.
//! Unreadable runs are skipped with their error (listed in both files); the rest are counted.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use traj_metrics::{render_dashboard, DashboardOptions, MetricsAccumulator, MetricsOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Data directories (holding `runs/`) or runs directories (holding `<run_id>/`); repeatable.
    #[arg(long = "runs", required = true)]
    runs: Vec<PathBuf>,
    /// Output directory for metrics.json and dashboard.html (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Config hash to compare the others against (default: the config with most runs).
    #[arg(long)]
    baseline: Option<String>,
    /// Jaeger UI base URL; run links go to URL/trace/TRACE_ID.
    #[arg(long, default_value = "http://localhost:16686")]
    jaeger_url: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::init_logs();
    if !(args.jaeger_url.starts_with("http://") || args.jaeger_url.starts_with("https://")) {
        anyhow::bail!(
            "--jaeger-url must start with http:// or https://, got {:?}",
            args.jaeger_url
        );
    }
    let report = measure(&args)?;
    let (metrics_path, html_path) = write_outputs(&args, &report)?;
    print_summary(&report);
    println!(
        "wrote {} and {}",
        metrics_path.display(),
        html_path.display()
    );
    Ok(if report.runs == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Reads every run (unreadable ones are listed as skipped) into the role metrics; refuses a
/// `--baseline` that no run has.
fn measure(args: &Args) -> anyhow::Result<traj_metrics::MetricsReport> {
    let dirs = traj_runs::list_runs(&args.runs)?;
    if dirs.is_empty() {
        anyhow::bail!(
            "no runs found under {}",
            args.runs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut acc = MetricsAccumulator::new(MetricsOptions {
        baseline: args.baseline.clone(),
        ..Default::default()
    });
    for dir in &dirs {
        match traj_runs::read_run(dir) {
            Ok(run) => acc.add_run(&run.session, &run.events, None),
            Err(err) => {
                tracing::warn!(run_id = %dir.run_id, %err, "skipping unreadable run");
                acc.add_skipped(&dir.run_id, err.to_string());
            }
        }
    }
    let report = acc.finish();
    if let Some(want) = &args.baseline {
        if !report.groups.config.iter().any(|g| &g.key == want) {
            let known: Vec<String> = report
                .groups
                .config
                .iter()
                .map(|g| format!("{} ({} runs)", g.key, g.runs))
                .collect();
            anyhow::bail!(
                "--baseline {want}: no run has this config_hash; configs found: {}",
                known.join(", ")
            );
        }
    }
    Ok(report)
}

/// `metrics.json` and `dashboard.html`, written atomically.
fn write_outputs(
    args: &Args,
    report: &traj_metrics::MetricsReport,
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut json = serde_json::to_string_pretty(report)?;
    json.push('\n');
    let metrics_path = args.out.join("metrics.json");
    traj_runs::write_atomic(&metrics_path, json.as_bytes())?;
    let html = render_dashboard(
        report,
        &DashboardOptions {
            jaeger_url: args.jaeger_url.clone(),
            ..Default::default()
        },
    );
    let html_path = args.out.join("dashboard.html");
    traj_runs::write_atomic(&html_path, html.as_bytes())?;
    Ok((metrics_path, html_path))
}

fn pct_interval(r: &traj_metrics::Rate) -> String {
    match (r.value, r.ci95) {
        (Some(v), Some([lo, hi])) => format!(
            "{:.1}% [95% CI {:.1}-{:.1}]",
            v * 100.0,
            lo * 100.0,
            hi * 100.0
        ),
        _ => "n/a".to_string(),
    }
}

/// One line per config and per comparison with the baseline.
fn print_summary(report: &traj_metrics::MetricsReport) {
    println!(
        "{} runs ({} skipped), {} configs; baseline {}",
        report.runs,
        report.skipped_runs.len(),
        report.groups.config.len(),
        report
            .baseline
            .as_ref()
            .map_or("-", |b| b.config_hash.as_str())
    );
    for g in &report.groups.config {
        println!(
            "  config {}: {} runs, success {}",
            g.key,
            g.runs,
            pct_interval(&g.success_rate)
        );
    }
    for c in &report.comparisons {
        let significant = c
            .metrics
            .iter()
            .filter(|m| m.diff.is_some_and(|d| d.significant))
            .count();
        let success = c
            .metrics
            .iter()
            .find(|m| m.metric == "run.success_rate")
            .and_then(|m| m.diff.map(|d| (d, m.assessment.as_str())));
        println!(
            "  {} vs baseline: success {}; {significant} of {} metrics differ significantly",
            c.config_hash,
            match success {
                Some((d, how)) => format!(
                    "{:+.1} pt [95% CI {:+.1}, {:+.1}] ({how})",
                    d.value * 100.0,
                    d.ci95[0] * 100.0,
                    d.ci95[1] * 100.0
                ),
                None => "n/a".to_string(),
            },
            c.metrics.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use traj_metrics::testkit::RunBuilder;
    use traj_schema::{Outcome, Verdict};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let p = std::env::temp_dir()
                .join(format!("traj-report-{tag}-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Writes `oks.len()` runs of `config` into `dir`, numbered from `first`.
    fn batch(dir: &std::path::Path, config: &str, first: u64, oks: &[bool]) {
        for (i, ok) in oks.iter().enumerate() {
            let (s, e) = RunBuilder::new(first + i as u64)
                .session(|s| s.config_hash = config.to_string())
                .plan(&[("a", Some("search"))], &[("search", true)])
                .work(&[("search", if *ok { Ok(()) } else { Err("timeout") })])
                .verdict(Verdict::End)
                .finish(if *ok {
                    Outcome::Success
                } else {
                    Outcome::Failure
                });
            traj_runs::write_run(dir, &s, &e).unwrap();
        }
    }

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn args(runs: Vec<PathBuf>, out: PathBuf) -> Args {
        Args {
            runs,
            out,
            baseline: None,
            jaeger_url: "http://localhost:16686".to_string(),
        }
    }

    #[test]
    fn two_batches_with_different_configs_show_the_difference() {
        let tmp = TempDir::new("two");
        let (a, b, out) = (tmp.0.join("a"), tmp.0.join("b"), tmp.0.join("out"));
        // A: 30 runs, 27 successful; B: 20 runs, 6 successful
        batch(&a, A, 0, &(0..30).map(|i| i % 10 != 0).collect::<Vec<_>>());
        batch(&b, B, 100, &(0..20).map(|i| i % 10 < 3).collect::<Vec<_>>());
        let code = run(args(vec![a, b], out.clone())).unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap())
                .unwrap();
        assert_eq!(v["runs"], 50);
        assert_eq!(v["baseline"]["config_hash"], A);
        let m = v["comparisons"][0]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == "run.success_rate")
            .unwrap()
            .clone();
        // 6/20 - 27/30 = -0.6
        assert!((m["diff"]["value"].as_f64().unwrap() + 0.6).abs() < 1e-12);
        assert_eq!(m["diff"]["significant"], true);
        assert_eq!(m["assessment"], "worse");
        let html = std::fs::read_to_string(out.join("dashboard.html")).unwrap();
        assert!(html.contains("-60.0 pt"));
    }

    #[test]
    fn an_unreadable_run_is_skipped_with_its_location_and_the_rest_counted() {
        let tmp = TempDir::new("bad");
        let (runs, out) = (tmp.0.join("runs"), tmp.0.join("out"));
        batch(&runs, A, 0, &[true, false, true]);
        let victim = traj_runs::list_runs(std::slice::from_ref(&runs)).unwrap()[0].clone();
        let events = victim.path.join("events.jsonl");
        let text = std::fs::read_to_string(&events).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines[1] = "{not json";
        std::fs::write(&events, lines.join("\n")).unwrap();
        run(args(vec![runs], out.clone())).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap())
                .unwrap();
        assert_eq!(v["runs"], 2);
        assert_eq!(v["skipped_runs"][0]["run"], victim.run_id.as_str());
        let reason = v["skipped_runs"][0]["reason"].as_str().unwrap();
        assert!(reason.contains("events.jsonl:2"), "{reason}");
    }

    #[test]
    fn bad_flags_are_precise_errors() {
        let tmp = TempDir::new("flags");
        let (runs, out) = (tmp.0.join("runs"), tmp.0.join("out"));
        batch(&runs, A, 0, &[true]);
        let mut a = args(vec![runs.clone()], out.clone());
        a.baseline = Some("sha256:nope".to_string());
        let err = run(a).unwrap_err().to_string();
        assert!(err.contains("sha256:nope") && err.contains(A), "{err}");
        let mut a = args(vec![runs], out.clone());
        a.jaeger_url = "javascript:alert(1)".to_string();
        assert!(run(a).unwrap_err().to_string().contains("--jaeger-url"));
        let empty = tmp.0.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let err = run(args(vec![empty], out)).unwrap_err().to_string();
        assert!(err.contains("no runs found"), "{err}");
    }
}
