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

pub mod accumulator;
pub mod compare;
pub mod coverage;
pub mod dashboard;
pub mod planner;
pub mod report;
pub mod run_facts;
pub mod stats;
pub mod svg;
pub mod testkit;
pub mod verifier;
pub mod worker;

pub use accumulator::{MetricsAccumulator, MetricsOptions};
pub use coverage::{Coverage, CoverageCell};
pub use dashboard::{render_dashboard, DashboardOptions};
pub use planner::PlannerMetrics;
pub use report::{
    Baseline, ConfigComparison, GroupMetrics, Groups, MetricDiff, MetricsReport, RunRow,
    SkippedRun, METRICS_VERSION,
};
pub use stats::{Diff, Mean, Rate};
pub use verifier::{StopConfusion, VerifierMetrics};
pub use worker::WorkerMetrics;
