//! `traj bench`: reproducible benchmarks whose output is recorded in `docs/benchmarks.md`.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// OTLP load generator against `traj serve` (self-started unless --target is given).
    Ingest(crate::bench_ingest::IngestArgs),
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::init_logs();
    match args.what {
        What::Ingest(a) => crate::bench_ingest::run(a),
    }
}
