//! The example agent as a library: the task suite, real tools, the simulated chat models, the
//! seeded Planner → Worker → Verifier loop and the batch runner. `main.rs` and
//! `tests/agent_spans.rs` both use it.

pub mod batch;
pub mod episode;
pub mod models;
pub mod prng;
pub mod tasks;
pub mod tools;
