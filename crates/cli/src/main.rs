//! `traj`: the command-line face of the pipeline. Thin: each subcommand parses its flags and
//! calls into the library crate that does the work (receive → store → assemble → convert → report).

mod bench_ingest;
mod cmd_bench;
mod cmd_build;
mod cmd_demo;
mod cmd_report;
mod cmd_schema;
mod cmd_serve;
mod cmd_validate;
mod global_alloc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "traj",
    version,
    about = "OpenTelemetry-native pipeline from agent traces to training data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the OTLP receiver: gRPC and HTTP ingest, raw store, run assembly.
    Serve(cmd_serve::Args),
    /// Build the role datasets from assembled runs.
    Build(cmd_build::Args),
    /// Compute role metrics and write metrics.json + dashboard.html.
    Report(cmd_report::Args),
    /// Check runs against schema v2.
    Validate(cmd_validate::Args),
    /// Run the whole chain on this machine: receiver, example agent, build, report.
    Demo(cmd_demo::Args),
    /// Benchmarks (ingest load generator, corpus generator).
    Bench(cmd_bench::Args),
    /// Print the schema v2 contract (attribute table, JSON Schemas).
    Schema(cmd_schema::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(a) => cmd_serve::run(a),
        Command::Build(a) => cmd_build::run(a),
        Command::Report(a) => cmd_report::run(a),
        Command::Validate(a) => cmd_validate::run(a),
        Command::Demo(a) => cmd_demo::run(a),
        Command::Bench(a) => cmd_bench::run(a),
        Command::Schema(a) => cmd_schema::run(a),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("traj: error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Sets up `tracing` logs on stderr (`RUST_LOG` overrides the default `info`).
pub(crate) fn init_logs() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
