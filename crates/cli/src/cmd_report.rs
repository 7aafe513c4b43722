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

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut json = serde_json::to_string_pretty(&report)?;
    json.push('\n');
    let metrics_path = args.out.join("metrics.json");
    traj_runs::write_atomic(&metrics_path, json.as_bytes())?;
    let html = render_dashboard(
        &report,
        &DashboardOptions {
            jaeger_url: args.jaeger_url.clone(),
            ..Default::default()
        },
    );
    let html_path = args.out.join("dashboard.html");
    traj_runs::write_atomic(&html_path, html.as_bytes())?;

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
        let r = g.success_rate;
        println!(
            "  config {}: {} runs, success {}",
            g.key,
            g.runs,
            match (r.value, r.ci95) {
                (Some(v), Some([lo, hi])) => format!(
                    "{:.1}% [95% CI {:.1}-{:.1}]",
                    v * 100.0,
                    lo * 100.0,
                    hi * 100.0
                ),
                _ => "n/a".to_string(),
            }
        );
    }
    for c in &report.comparisons {
        for m in c
            .metrics
            .iter()
            .filter(|m| m.diff.is_some_and(|d| d.significant))
        {
            if let Some(d) = m.diff {
                let scale = if m.kind == "rate" { 100.0 } else { 1.0 };
                println!(
                    "  {} vs baseline: {} {:+.2}{} [95% CI {:+.2}, {:+.2}] ({})",
                    c.config_hash,
                    m.metric,
                    d.value * scale,
                    if m.kind == "rate" { " pt" } else { "" },
                    d.ci95[0] * scale,
                    d.ci95[1] * scale,
                    m.assessment
                );
            }
        }
    }
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
