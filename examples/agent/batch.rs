//! Runs a batch of episodes on K threads (each episode deterministic on its own), flushing
//! after every run, and summarises outcomes, verdicts and span accounting.

use super::episode::{run_episode, AgentConfig, EpisodeRecord};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use traj_instrument::{ExportStats, TelemetryGuard};
use traj_schema::event::{Outcome, Verdict};

/// Runs `cfg.tasks` episodes and returns their records in task order.
pub fn run_batch(cfg: &AgentConfig, telemetry: &TelemetryGuard) -> Vec<EpisodeRecord> {
    let next = AtomicU64::new(0);
    let records = Mutex::new(Vec::with_capacity(cfg.tasks as usize));
    std::thread::scope(|s| {
        for _ in 0..cfg.concurrency.max(1) {
            s.spawn(|| {
                tracing::dispatcher::with_default(telemetry.dispatch(), || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= cfg.tasks {
                        break;
                    }
                    let rec = run_episode(cfg, i);
                    if cfg.flush_each_run {
                        if let Err(e) = telemetry.flush() {
                            tracing::warn!(error = %e, run_id = %rec.run_id, "flush after run failed");
                        }
                    }
                    match records.lock() {
                        Ok(mut r) => r.push(rec),
                        Err(p) => p.into_inner().push(rec),
                    }
                })
            });
        }
    });
    let mut out = records.into_inner().unwrap_or_else(|p| p.into_inner());
    out.sort_by_key(|r| r.index);
    out
}

/// Batch figures for the one-line summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub runs: usize,
    pub success: usize,
    pub failure: usize,
    pub aborted: usize,
    pub verdicts: usize,
    pub continue_: usize,
    pub replan: usize,
    pub end: usize,
}

impl Summary {
    pub fn of(records: &[EpisodeRecord]) -> Summary {
        let count = |o| records.iter().filter(|r| r.outcome == o).count();
        let verdicts: Vec<Verdict> = records
            .iter()
            .flat_map(|r| r.verdicts.iter().copied())
            .collect();
        let v = |x| verdicts.iter().filter(|y| **y == x).count();
        Summary {
            runs: records.len(),
            success: count(Outcome::Success),
            failure: count(Outcome::Failure),
            aborted: count(Outcome::Aborted),
            verdicts: verdicts.len(),
            continue_: v(Verdict::Continue),
            replan: v(Verdict::Replan),
            end: v(Verdict::End),
        }
    }

    pub fn line(&self, stats: &ExportStats) -> String {
        let pct = |n: usize, d: usize| {
            if d == 0 {
                0.0
            } else {
                100.0 * n as f64 / d as f64
            }
        };
        format!(
            "runs={} success={} ({:.0}%) failure={} aborted={} verdicts: continue={:.0}% replan={:.0}% end={:.0}% spans: ended={} exported={} dropped={} failed={}",
            self.runs,
            self.success,
            pct(self.success, self.runs),
            self.failure,
            self.aborted,
            pct(self.continue_, self.verdicts),
            pct(self.replan, self.verdicts),
            pct(self.end, self.verdicts),
            stats.ended,
            stats.exported,
            stats.dropped,
            stats.failed
        )
    }
}
