//! Writes a synthetic corpus: `cargo run -p traj-datasets --example synth_corpus -- DIR N SEED`.
//! Handy for trying `traj build` by hand and for timing it.

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "corpus".into()));
    let n: usize = args.next().unwrap_or_else(|| "100".into()).parse()?;
    let seed: u64 = args.next().unwrap_or_else(|| "1".into()).parse()?;
    let runs = traj_datasets::generate_corpus(&dir, n, seed)?;
    println!("wrote {} runs under {}", runs.len(), dir.display());
    Ok(())
}
