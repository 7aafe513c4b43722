//! Segment file naming (`seg-<20-digit first seq>.log`), listing the segments of a raw directory
//! in order, and directory fsync (so a newly created segment survives a crash).

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::StoreError;

/// File name of the segment whose first record has sequence number `first_seq`.
pub fn segment_name(first_seq: u64) -> String {
    format!("seg-{first_seq:020}.log")
}

/// The first sequence number encoded in a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// All segment files of `raw_dir`, sorted by first sequence number. Other files are ignored
/// (with a warning when they look like a mangled segment name).
pub fn list_segments(raw_dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let entries = std::fs::read_dir(raw_dir).map_err(|e| StoreError::io(raw_dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(raw_dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        match parse_segment_name(name) {
            Some(seq) => out.push((seq, entry.path())),
            None if name.starts_with("seg-") => {
                tracing::warn!(file = %entry.path().display(), "ignoring file with malformed segment name");
            }
            None => {}
        }
    }
    out.sort_by_key(|(seq, _)| *seq);
    Ok(out)
}

/// fsyncs a directory so that entries created in it are durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_round_trips_and_sorts_lexically() {
        assert_eq!(segment_name(1), "seg-00000000000000000001.log");
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        assert!(segment_name(9) < segment_name(10));
        assert_eq!(parse_segment_name("seg-1.log"), None);
        assert_eq!(parse_segment_name("seg-0000000000000000000a.log"), None);
        assert_eq!(parse_segment_name("seg-00000000000000000001.tmp"), None);
    }
}
