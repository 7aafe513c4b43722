//! Store configuration: where the log lives, when it is fsynced, and the size limits that bound
//! segments, commit groups and the append queue.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::StoreError;

/// Default segment size before rolling over to a new file: 128 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 128 * 1024 * 1024;
/// Default upper bound on the bytes gathered into one commit group: 4 MiB.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Default number of appends that may wait for the writer before `append` returns `Busy`.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;

/// When the writer makes written data durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// `fdatasync` after every commit group, before any append of the group resolves (default).
    #[default]
    Always,
    /// Appends resolve once written (page cache); the writer `fdatasync`s at most this long after
    /// the first unsynced write, also when idle. A crash may lose up to one interval of data.
    Interval(Duration),
    /// Never fsync (tests, throw-away runs). A machine crash may lose anything not yet written
    /// back by the kernel, including data in older segments.
    Never,
}

/// How to open a [`crate::Store`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Store root; segments live in `dir/raw/`.
    pub dir: PathBuf,
    /// Durability policy.
    pub fsync: FsyncPolicy,
    /// Roll over to a new segment when the next commit group would push the active one past this.
    pub segment_bytes: u64,
    /// Stop gathering a commit group once it holds this many bytes (a single larger record still
    /// forms a group of its own).
    pub max_batch_bytes: usize,
    /// Appends queued for the writer beyond this are refused with [`StoreError::Busy`].
    pub queue_capacity: usize,
}

impl StoreConfig {
    /// A config with the defaults: `Always`, 128 MiB segments, 4 MiB groups, 1024 queued appends.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            dir: dir.into(),
            fsync: FsyncPolicy::Always,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
        }
    }

    /// The directory holding the segment files (`dir/raw`).
    pub fn raw_dir(&self) -> PathBuf {
        self.dir.join("raw")
    }

    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        if self.segment_bytes == 0 {
            return Err(StoreError::Config("segment_bytes must be > 0".into()));
        }
        if self.max_batch_bytes == 0 {
            return Err(StoreError::Config("max_batch_bytes must be > 0".into()));
        }
        if self.queue_capacity == 0 {
            return Err(StoreError::Config("queue_capacity must be > 0".into()));
        }
        if self.fsync == FsyncPolicy::Interval(Duration::ZERO) {
            return Err(StoreError::Config(
                "FsyncPolicy::Interval needs a non-zero duration (use Always)".into(),
            ));
        }
        Ok(())
    }
}
