//! The `traj` binary's allocator. The receiver's decode path and the run manager allocate and free
//! millions of small strings a second across threads; glibc malloc spent ~25 % of receiver CPU in
//! `malloc`/`_int_free`/`malloc_consolidate` under load (see `docs/benchmarks.md`). mimalloc does not.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
