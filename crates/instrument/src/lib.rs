//! traj-instrument
