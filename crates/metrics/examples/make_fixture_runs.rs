//! Writes hand-built runs as run directories.
//!
//! `make_fixture_runs OUT_DIR` writes the committed fixtures
//! ([`traj_metrics::testkit::fixture_runs`]: `cargo run -p traj-metrics --example
//! make_fixture_runs -- tests/fixtures/runs`); `make_fixture_runs OUT_DIR COUNT [CONFIGS]` writes
//! COUNT synthetic runs over CONFIGS configs instead (load tests of `traj report`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: make_fixture_runs OUT_DIR [COUNT [CONFIGS]]")?;
    let count: Option<usize> = args.next().map(|s| s.parse()).transpose()?;
    let configs: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2);
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    let mut written = 0usize;
    let runs: Box<dyn Iterator<Item = _>> = match count {
        None => Box::new(traj_metrics::testkit::fixture_runs().into_iter()),
        Some(n) => Box::new(traj_metrics::testkit::synthetic_runs(n, configs)),
    };
    for (session, events) in runs {
        traj_runs::write_run_with(&dir, &session, &events, traj_runs::Durability::RenameOnly)?;
        written += 1;
    }
    println!("wrote {written} runs to {}", dir.display());
    Ok(())
}
