//! Rough append throughput and group-commit figures: N concurrent tokio tasks append fixed-size
//! payloads to a fresh store in a temp dir. Usage:
//! `cargo run -p traj-store --example append_throughput -- [tasks] [appends_per_task] [payload_bytes] [always|interval|never]`

use std::time::{Duration, Instant};

use bytes::Bytes;
use traj_store::{FsyncPolicy, Store, StoreConfig};

fn arg<T: std::str::FromStr>(n: usize, default: T) -> T {
    std::env::args()
        .nth(n)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tasks: usize = arg(1, 64);
    let per_task: usize = arg(2, 200);
    let size: usize = arg(3, 4096);
    let policy = match std::env::args().nth(4).as_deref() {
        Some("never") => FsyncPolicy::Never,
        Some("interval") => FsyncPolicy::Interval(Duration::from_millis(100)),
        _ => FsyncPolicy::Always,
    };
    let dir = std::env::temp_dir().join(format!("traj-store-bench-{}", std::process::id()));
    let mut cfg = StoreConfig::new(&dir);
    cfg.fsync = policy;
    let (store, _) = Store::open(cfg)?;
    let payload = Bytes::from(vec![0x5a; size]);

    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let store = store.clone();
        let payload = payload.clone();
        handles.push(tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            for _ in 0..per_task {
                let t = Instant::now();
                store.append(payload.clone()).await?;
                worst = worst.max(t.elapsed());
            }
            Ok::<_, traj_store::StoreError>(worst)
        }));
    }
    let mut worst = Duration::ZERO;
    for h in handles {
        worst = worst.max(h.await??);
    }
    let elapsed = start.elapsed();
    let stats = store.stats();
    store.close().await?;
    let reopen = Instant::now();
    let (_store, report) = Store::open(StoreConfig::new(&dir))?;
    let reopen = reopen.elapsed();
    drop(_store);
    std::fs::remove_dir_all(&dir)?;

    let n = (tasks * per_task) as f64;
    println!(
        "{policy:?}: {} appends x {size} B from {tasks} tasks in {:.2?}: {:.0} appends/s, {:.1} MB/s; \
         {} commits (avg group {:.1}), {} fsyncs, worst append latency {:.2?}",
        tasks * per_task,
        elapsed,
        n / elapsed.as_secs_f64(),
        n * size as f64 / elapsed.as_secs_f64() / 1e6,
        stats.commits,
        n / stats.commits.max(1) as f64,
        stats.fsyncs,
        worst,
    );
    println!(
        "reopen (full CRC verification): {} records, {:.1} MB in {:.2?} ({:.0} MB/s)",
        report.records,
        stats.bytes as f64 / 1e6,
        reopen,
        stats.bytes as f64 / 1e6 / reopen.as_secs_f64(),
    );
    Ok(())
}
