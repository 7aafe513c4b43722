//! traj-store
