//! Errors of the store: what went wrong, where (file and byte offset for corruption), and whether
//! retrying the operation can succeed.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// What is wrong with the bytes at a record position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorruptKind {
    /// The file ends inside a record header (`have` of the 24 header bytes present).
    ShortHeader { have: usize },
    /// The header announces `need` payload bytes but only `have` remain in the file.
    ShortPayload { need: u64, have: u64 },
    /// The header does not start with the record magic.
    BadMagic,
    /// The header carries a format version this build does not read.
    UnsupportedVersion(u8),
    /// Reserved header bits are set.
    UnknownFlags,
    /// A version-2 header names a record kind this build does not know.
    UnknownKind(u8),
    /// The CRC stored in the header does not match the one computed over header and payload.
    CrcMismatch { stored: u32, computed: u32 },
    /// The record (or segment file name) carries a sequence number other than the next one.
    SeqMismatch { expected: u64, found: u64 },
}

impl fmt::Display for CorruptKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorruptKind::ShortHeader { have } => write!(f, "short header ({have} of 24 bytes)"),
            CorruptKind::ShortPayload { need, have } => {
                write!(f, "short payload ({have} of {need} bytes)")
            }
            CorruptKind::BadMagic => write!(f, "bad record magic"),
            CorruptKind::UnsupportedVersion(v) if *v > crate::record_format::VERSION_2 => write!(
                f,
                "record format version {v} is newer than this build reads (versions 1 and 2): \
                 written by a newer traj?"
            ),
            CorruptKind::UnsupportedVersion(v) => write!(f, "unsupported record version {v}"),
            CorruptKind::UnknownFlags => write!(f, "reserved header bits set"),
            CorruptKind::UnknownKind(k) => write!(f, "unknown record kind {k}"),
            CorruptKind::CrcMismatch { stored, computed } => {
                write!(
                    f,
                    "crc mismatch (stored {stored:#010x}, computed {computed:#010x})"
                )
            }
            CorruptKind::SeqMismatch { expected, found } => {
                write!(f, "sequence mismatch (expected {expected}, found {found})")
            }
        }
    }
}

/// Which step of a commit failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOp {
    /// Writing the group's bytes.
    Write,
    /// `fdatasync` of the segment (or of the directory after creating a segment).
    Sync,
    /// Creating the next segment file.
    Roll,
    /// Truncating the segment back to its last committed length after a failure.
    Truncate,
}

impl fmt::Display for WriteOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteOp::Write => "write",
            WriteOp::Sync => "fdatasync",
            WriteOp::Roll => "segment roll",
            WriteOp::Truncate => "truncate",
        })
    }
}

/// Every error the store returns.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The append queue is full: back off and retry (maps to HTTP 503 / gRPC UNAVAILABLE).
    #[error("store queue is full ({capacity} appends waiting); retry later")]
    Busy { capacity: usize },
    /// The store is closed (or its writer stopped); appends are no longer accepted.
    #[error("store is closed")]
    Closed,
    /// The payload does not fit in one record.
    #[error("payload of {len} bytes exceeds the record limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    /// The configuration is unusable.
    #[error("invalid store config: {0}")]
    Config(String),
    /// A commit failed (e.g. ENOSPC). Nothing of the group is kept (the segment was truncated back
    /// to its last committed length, or will be before the next write); retrying can succeed.
    #[error("{op} of {path} failed (retryable, no record of the group kept): {source}")]
    Write {
        path: PathBuf,
        op: WriteOp,
        #[source]
        source: io::Error,
    },
    /// Any other I/O failure (open, read, list, truncate during recovery).
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Bytes that must hold a committed record do not.
    #[error("corrupt record in {path} at offset {offset}: {kind}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        kind: CorruptKind,
    },
    /// Corruption in the last segment that is followed by a valid record: not a torn tail, so
    /// recovery refuses to truncate (that would drop good data). Needs an operator.
    #[error(
        "corrupt record in {path} at offset {offset}: {kind}; a valid record follows at offset \
         {valid_at}, refusing to truncate"
    )]
    CorruptBeforeValid {
        path: PathBuf,
        offset: u64,
        kind: CorruptKind,
        valid_at: u64,
    },
    /// No committed record has this sequence number.
    #[error("no record with sequence number {seq}")]
    NotFound { seq: u64 },
}

impl StoreError {
    /// True when the same call may succeed later (queue full, transient write failure).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Busy { .. } | StoreError::Write { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }

    /// A copy of a `Write` error for each append of a failed group (io::Error is not Clone).
    pub(crate) fn duplicate_write(path: &std::path::Path, op: WriteOp, source: &io::Error) -> Self {
        let source = match source.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(source.kind(), source.to_string()),
        };
        StoreError::Write {
            path: path.to_path_buf(),
            op,
            source,
        }
    }
}
