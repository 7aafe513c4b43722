//! `traj bench`: reproducible benchmarks whose output is recorded in `docs/benchmarks.md`.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// OTLP load generator against `traj serve` (self-started unless --target is given).
    Ingest(crate::bench_ingest::IngestArgs),
    /// Writes a synthetic corpus of runs (input for `traj build` benchmarks).
    Corpus(CorpusArgs),
}

#[derive(clap::Args, Debug)]
pub struct CorpusArgs {
    /// How many runs to write.
    #[arg(long, default_value_t = 1000)]
    runs: usize,
    /// Runs directory to write into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Seed of the generator (same seed, same corpus).
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::init_logs();
    match args.what {
        What::Ingest(a) => crate::bench_ingest::run(a),
        What::Corpus(a) => corpus(a),
    }
}

fn corpus(a: CorpusArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let t = Instant::now();
    let dirs = traj_datasets::generate_corpus(&a.out, a.runs, a.seed)
        .with_context(|| format!("writing the corpus into {}", a.out.display()))?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "runs": dirs.len(),
            "out": a.out.display().to_string(),
            "seed": a.seed,
            "seconds": secs,
            "runs_per_s": if secs > 0.0 { dirs.len() as f64 / secs } else { 0.0 },
        })
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_writes_the_requested_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("runs");
        let code = corpus(CorpusArgs {
            runs: 3,
            out: out.clone(),
            seed: 7,
        })
        .unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
        let runs = traj_runs::list_runs(std::slice::from_ref(&out)).unwrap();
        assert_eq!(runs.len(), 3);
        for r in &runs {
            assert!(r.path.join(traj_runs::EVENTS_FILE).is_file(), "{r:?}");
        }
    }
}
