//! `agent`: a scripted, seeded Planner → Worker → Verifier agent with real tools, exporting its
//! runs as schema v2 traces over OTLP. Prints one summary line per batch; exits non-zero when
//! any span was dropped or failed to export.

#[path = "lib.rs"]
mod agent;

use agent::batch::{run_batch, Summary};
use agent::episode::AgentConfig;
use anyhow::Context;
use clap::{Parser, ValueEnum};
use std::process::ExitCode;
use traj_instrument::{ExportConfig, Protocol};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ProtocolArg {
    Grpc,
    Http,
}

#[derive(Parser, Debug)]
#[command(
    name = "agent",
    about = "Example traj agent: scripted Planner/Worker/Verifier with real tools"
)]
struct Args {
    /// Episodes to run.
    #[arg(long, default_value_t = 20)]
    tasks: u64,
    /// Batch seed: a number, or `random` (the drawn seed is printed and recorded).
    #[arg(long, default_value = "1")]
    seed: String,
    /// OTLP endpoint (default: OTEL_EXPORTER_OTLP_* or 127.0.0.1:4317 / :4318).
    #[arg(long)]
    endpoint: Option<String>,
    /// OTLP protocol (default: OTEL_EXPORTER_OTLP_PROTOCOL or grpc).
    #[arg(long, value_enum)]
    protocol: Option<ProtocolArg>,
    /// Episodes running at once (threads).
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Scales every injected failure, 0..1.
    #[arg(long, default_value_t = 0.5)]
    failure_rate: f64,
    /// Orchestrator cycles before a run is aborted.
    #[arg(long, default_value_t = 8)]
    max_steps: u32,
    /// service.name (default: OTEL_SERVICE_NAME or traj-agent).
    #[arg(long)]
    service_name: Option<String>,
    /// Tag in every model name of the model stack (changes config_hash).
    #[arg(long, default_value = "v1")]
    model_tag: String,
    /// Number of batches to run (one summary line each).
    #[arg(long, default_value_t = 1)]
    batches: u32,
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    agent::prng::task_seed(nanos ^ u64::from(std::process::id()).rotate_left(32), 0)
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("agent: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.failure_rate),
        "--failure-rate must be within 0..1, got {}",
        args.failure_rate
    );
    let (seed, seed_kind) = match args.seed.as_str() {
        "random" => (random_seed(), traj_schema::SeedKind::Random),
        s => (
            s.parse::<u64>()
                .with_context(|| format!("--seed must be a number or `random`, got {s:?}"))?,
            traj_schema::SeedKind::Fixed,
        ),
    };
    let telemetry = traj_instrument::init(ExportConfig {
        endpoint: args.endpoint.clone(),
        protocol: args.protocol.map(|p| match p {
            ProtocolArg::Grpc => Protocol::Grpc,
            ProtocolArg::Http => Protocol::HttpProtobuf,
        }),
        service_name: args.service_name.clone(),
        ..ExportConfig::default()
    })
    .context("setting up OTLP export")?;
    let r = telemetry.resolved();
    println!(
        "agent: seed={seed} protocol={} endpoint={} service={}",
        r.protocol.as_str(),
        r.endpoint,
        r.service_name
    );
    for b in 0..args.batches.max(1) {
        let cfg = AgentConfig {
            tasks: args.tasks,
            seed: seed.wrapping_add(u64::from(b)),
            seed_kind,
            concurrency: args.concurrency,
            failure_rate: args.failure_rate,
            max_steps: args.max_steps,
            model_tag: args.model_tag.clone(),
            ..AgentConfig::default()
        };
        let started = std::time::Instant::now();
        let records = run_batch(&cfg, &telemetry);
        let stats = telemetry.flush().context("flushing spans")?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "batch {b}: {} elapsed={secs:.2}s",
            Summary::of(&records).line(&stats)
        );
    }
    let stats = telemetry.shutdown().context("shutting down export")?;
    if stats.lost() > 0 {
        eprintln!(
            "agent: {} span(s) lost ({} dropped, {} failed to export)",
            stats.lost(),
            stats.dropped,
            stats.failed
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
