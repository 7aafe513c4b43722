//! Role metrics of traj: what Planner, Worker and Verifier do well or badly, per config, prompt,
//! goal family and split, with honest intervals; plus the self-contained HTML dashboard.
//!
//! Streaming use (no other traj crate beyond schema and runs is needed):
//!
//! ```
//! use traj_metrics::{MetricsAccumulator, MetricsOptions};
//! # let (session, events) = traj_metrics::testkit::RunBuilder::new(1)
//! #     .work(&[]).verdict(traj_schema::Verdict::End).finish(traj_schema::Outcome::Success);
//! let mut acc = MetricsAccumulator::new(MetricsOptions::default());
//! acc.add_run(&session, &events, Some("train"));
//! let report = acc.finish();
//! assert_eq!(report.runs, 1);
//! ```
//!
//! Definitions of every metric: `docs/metrics.md`.

// The run builders of the tests, examples and doc examples; everything else is reached through
// the re-exports below.
pub mod testkit;

mod accumulator;
mod compare;
mod coverage;
mod dashboard;
mod planner;
mod report;
mod run_facts;
mod stats;
mod svg;
mod verifier;
mod worker;

pub use accumulator::{MetricsAccumulator, MetricsOptions};
pub use coverage::{Coverage, CoverageCell};
pub use dashboard::{render_dashboard, DashboardOptions};
pub use planner::PlannerMetrics;
pub use report::{
    Baseline, ConfigComparison, GroupMetrics, Groups, MetricDiff, MetricsReport, RunRow,
    SkippedRun, METRICS_VERSION,
};
pub use stats::{diff_rates, Diff, Mean, Rate};
pub use verifier::{StopConfusion, VerifierMetrics};
pub use worker::WorkerMetrics;
