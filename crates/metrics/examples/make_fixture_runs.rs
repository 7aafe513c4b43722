//! Writes the hand-built fixture runs ([`traj_metrics::testkit::fixture_runs`]) as run
//! directories: `cargo run -p traj-metrics --example make_fixture_runs -- tests/fixtures/runs`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: make_fixture_runs OUT_DIR")?;
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    let runs = traj_metrics::testkit::fixture_runs();
    for (session, events) in &runs {
        traj_runs::write_run(&dir, session, events)?;
    }
    println!("wrote {} runs to {}", runs.len(), dir.display());
    Ok(())
}
