//! `traj demo`: the whole chain on this machine with embedded defaults — a receiver on loopback
//! ports chosen by the OS, two batches of the example agent over OTLP (a baseline config and a
//! candidate with more injected failures, standing in for two model versions), then validate,
//! build and report. Each stage is the real `traj` subcommand, run as a child process, so the
//! demo exercises exactly what a user runs and prints those commands.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Where everything goes (data/, datasets/, report/); created if missing.
    #[arg(long, default_value = "traj-demo")]
    dir: PathBuf,
    /// Runs per batch (two batches are run).
    #[arg(long, default_value_t = 150)]
    tasks: u64,
    /// Seed of the agent batches and of the dataset split.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// OTLP protocol the agent uses.
    #[arg(long, default_value = "grpc", value_parser = ["grpc", "http"])]
    protocol: String,
    /// The example agent binary (default: `examples/agent` next to this `traj`).
    #[arg(long)]
    agent: Option<PathBuf>,
}

/// A child `traj serve`, stopped with SIGTERM when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        terminate(&mut self.0);
    }
}

fn terminate(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
    }
}

fn traj() -> Result<PathBuf> {
    std::env::current_exe().context("locating the traj binary")
}

fn agent_path(args: &Args) -> Result<PathBuf> {
    if let Some(p) = &args.agent {
        return Ok(p.clone());
    }
    let exe = traj()?;
    let dir = exe.parent().context("traj has no parent directory")?;
    let p = dir.join("examples").join("agent");
    if !p.is_file() {
        bail!(
            "example agent not found at {} — build it with `cargo build --release --workspace --bins --examples` \
             (or pass --agent PATH)",
            p.display()
        );
    }
    Ok(p)
}

fn run_step(what: &str, cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}").replace('"', "");
    println!("\n$ {shown}");
    let status = cmd.status().with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Finalized runs under a data directory (as `traj build` would list them).
fn count_runs(data: &Path) -> usize {
    traj_runs::list_runs(&[data.to_path_buf()])
        .map(|r| r.len())
        .unwrap_or(0)
}

pub fn run(args: Args) -> Result<ExitCode> {
    let started = Instant::now();
    let agent = agent_path(&args)?;
    let dir = &args.dir;
    let data = dir.join("data");
    if data.exists() {
        // A demo starts from nothing so the printed counts are this demo's.
        std::fs::remove_dir_all(&data).with_context(|| format!("clearing {}", data.display()))?;
    }
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let serve_log = dir.join("serve.log");
    println!(
        "traj demo: receiver → example agent (2 batches) → validate → build → report, in {}",
        dir.display()
    );
    let (mut serve, endpoint) = start_receiver(&data, &serve_log, &args.protocol)?;
    let batches = run_batches(&agent, &endpoint, &args)?;
    let want = (args.tasks * batches) as usize;
    wait_for_runs(&data, want, &serve_log)?;
    terminate(&mut serve.0);
    println!("receiver: {want} runs finalized, stopped");
    let ds = dir.join("datasets");
    let report = dir.join("report");
    convert(&data, &ds, &report, args.seed)?;
    print_summary(started, &data, &ds, &report, &serve_log);
    Ok(ExitCode::SUCCESS)
}

/// Starts `traj serve` on free loopback ports; returns it and the endpoint for `protocol`.
fn start_receiver(data: &Path, serve_log: &Path, protocol: &str) -> Result<(Serve, String)> {
    let log = std::fs::File::create(serve_log)?;
    let child = Command::new(traj()?)
        .args(["serve", "--data-dir"])
        .arg(data)
        .args([
            "--grpc",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--grace-period",
            "500ms",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting traj serve")?;
    let mut serve = Serve(child);
    let info_path = data.join(traj_receiver::RECEIVER_INFO_FILE);
    let deadline = Instant::now() + Duration::from_secs(30);
    let info: serde_json::Value = loop {
        if let Some(v) = std::fs::read_to_string(&info_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
        {
            break v;
        }
        if let Ok(Some(status)) = serve.0.try_wait() {
            bail!("traj serve exited ({status}); see {}", serve_log.display());
        }
        if Instant::now() > deadline {
            bail!(
                "traj serve did not start within 30 s; see {}",
                serve_log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let key = if protocol == "grpc" { "grpc" } else { "http" };
    let addr = info
        .get(key)
        .and_then(|v| v.as_str())
        .context("receiver.json lacks the listen address")?;
    println!(
        "receiver: grpc={} http={} (log: {})",
        info["grpc"],
        info["http"],
        serve_log.display()
    );
    Ok((serve, format!("http://{addr}")))
}

/// Two configurations of the example agent on the same tasks (different model tag and failure
/// rate); returns how many batches ran.
fn run_batches(agent: &Path, endpoint: &str, args: &Args) -> Result<u64> {
    let batches = [("baseline", "0.3"), ("candidate", "0.7")];
    for (tag, failure_rate) in batches {
        run_step(
            &format!("agent batch {tag}"),
            Command::new(agent)
                .args([
                    "--tasks",
                    &args.tasks.to_string(),
                    "--seed",
                    &args.seed.to_string(),
                ])
                .args(["--endpoint", endpoint, "--protocol", &args.protocol])
                .args([
                    "--concurrency",
                    "4",
                    "--failure-rate",
                    failure_rate,
                    "--model-tag",
                    tag,
                ])
                .args(["--service-name", &format!("demo-agent-{tag}")]),
        )?;
    }
    Ok(batches.len() as u64)
}

/// Waits until every run is finalized (root ended + grace period).
fn wait_for_runs(data: &Path, want: usize, serve_log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while count_runs(data) < want {
        if Instant::now() > deadline {
            bail!(
                "only {} of {want} runs finalized after 120 s; see {}",
                count_runs(data),
                serve_log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// `traj validate`, `traj build` and `traj report` on the runs.
fn convert(data: &Path, ds: &Path, report: &Path, seed: u64) -> Result<()> {
    run_step(
        "validate",
        Command::new(traj()?)
            .args(["validate", "--quiet"])
            .arg(data),
    )?;
    run_step(
        "build",
        Command::new(traj()?)
            .arg("build")
            .arg("--runs")
            .arg(data)
            .arg("--out")
            .arg(ds)
            .args(["--seed", &seed.to_string()]),
    )?;
    run_step(
        "report",
        Command::new(traj()?)
            .arg("report")
            .arg("--runs")
            .arg(data)
            .arg("--out")
            .arg(report),
    )
}

fn print_summary(started: Instant, data: &Path, ds: &Path, report: &Path, serve_log: &Path) {
    println!(
        "\ntraj demo finished in {:.1} s. Where everything went:",
        started.elapsed().as_secs_f64()
    );
    let rows = [
        (
            "raw spans (append-only)",
            data.join("raw").display().to_string(),
        ),
        (
            "runs",
            format!(
                "{}/<run_id>/{{{},{}}}",
                traj_runs::runs_dir_of(data).display(),
                traj_runs::SESSION_FILE,
                traj_runs::EVENTS_FILE
            ),
        ),
        (
            "datasets",
            format!("{}/{{train,validation,test}}/*.jsonl", ds.display()),
        ),
        (
            "dataset report",
            format!(
                "{} , {}",
                ds.join("report.md").display(),
                ds.join("report.json").display()
            ),
        ),
        ("dataset card", ds.join("README.md").display().to_string()),
        ("manifest", ds.join("manifest.json").display().to_string()),
        (
            "role metrics",
            report.join("metrics.json").display().to_string(),
        ),
        (
            "dashboard",
            report.join("dashboard.html").display().to_string(),
        ),
        ("receiver log", serve_log.display().to_string()),
    ];
    for (what, where_) in rows {
        println!("  {what:<25} {where_}");
    }
}
