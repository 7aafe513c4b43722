//! traj-store: the append-only raw span store. The receiver appends every accepted OTLP export
//! batch (opaque bytes tagged with a [`RecordKind`]: traces or logs) here before acknowledging
//! it; assembly replays it by sequence number.
//!
//! Layout: `DIR/raw/seg-<20-digit first seq>.log`, each a run of CRC-protected records (format,
//! fsync policy and recovery rules in `docs/store.md`). Concurrent [`Store::append`] calls are
//! batched by one writer thread into a single write + `fdatasync` per group (group commit); the
//! queue in front of it is bounded and a full queue is reported as [`StoreError::Busy`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), traj_store::StoreError> {
//! use traj_store::{Record, RecordKind, Store, StoreConfig};
//! let (store, report) = Store::open(StoreConfig::new("/var/lib/traj"))?;
//! let seq = store.append(bytes::Bytes::from_static(b"export request")).await?;
//! assert_eq!(store.read(seq)?, &b"export request"[..]);
//! let logs = store
//!     .append_kind(RecordKind::Logs, bytes::Bytes::from_static(b"logs request"))
//!     .await?;
//! assert_eq!(store.read_record(logs)?.kind, RecordKind::Logs);
//! for rec in store.scan(0) {
//!     let Record { seq, kind, payload } = rec?;
//! }
//! store.close().await?;
//! # Ok(()) }
//! ```

mod config;
mod error;
mod fault_injection;
mod group_commit_writer;
mod range_reads;
mod record_format;
mod recovery;
mod retention;
mod scan_iter;
mod segment_files;
mod segment_index;
mod store_handle;

#[cfg(test)]
mod fault_tests;

pub use config::{
    FsyncPolicy, StoreConfig, DEFAULT_MAX_BATCH_BYTES, DEFAULT_QUEUE_CAPACITY,
    DEFAULT_SEGMENT_BYTES,
};
pub use error::{CorruptKind, StoreError, WriteOp};
pub use range_reads::RangeReader;
pub use record_format::{Record, RecordKind, HEADER_LEN, MAX_PAYLOAD};
pub use recovery::{RecoveryReport, Truncation};
pub use retention::{Dropped, RetentionPolicy};
pub use scan_iter::Scan;
pub use segment_files::segment_name;
pub use store_handle::{AppendTicket, Store, StoreStats};
