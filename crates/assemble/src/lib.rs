//! traj-assemble
