//! traj-datasets
