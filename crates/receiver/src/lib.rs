//! traj-receiver
