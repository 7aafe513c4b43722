//! traj-metrics
