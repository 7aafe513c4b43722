//! The small in-memory index of committed records: per segment its first sequence number, record
//! count, committed length and a sparse list of record offsets (one every `INDEX_STRIDE` records),
//! so that `seq -> (segment, offset)` costs at most `INDEX_STRIDE - 1` header reads.

use std::path::PathBuf;

/// One offset is kept for every this many records (8 bytes per 32 records). A power of two.
pub const INDEX_STRIDE: u64 = 32;
const _: () = assert!(INDEX_STRIDE.is_power_of_two());

/// Whether the record `rel` places after the first of its segment gets an anchor.
pub fn is_anchor(rel: u64) -> bool {
    rel & (INDEX_STRIDE - 1) == 0
}

/// What the store knows about one segment file.
#[derive(Debug, Clone)]
pub struct SegmentInfo {
    pub first_seq: u64,
    pub path: PathBuf,
    /// Committed records in this segment.
    pub records: u64,
    /// Committed bytes (the file may be longer only transiently, during a failed write).
    pub len: u64,
    /// `anchors[i]` = offset of record `first_seq + i * INDEX_STRIDE`.
    pub anchors: Vec<u64>,
}

impl SegmentInfo {
    pub fn new(first_seq: u64, path: PathBuf) -> Self {
        SegmentInfo {
            first_seq,
            path,
            records: 0,
            len: 0,
            anchors: Vec::new(),
        }
    }

    /// Whether the record `seq` gets an anchor.
    pub fn is_anchor(&self, seq: u64) -> bool {
        is_anchor(seq - self.first_seq)
    }
}

/// Where to start looking for a record: the nearest anchor at or before it.
#[derive(Debug, Clone)]
pub struct Location {
    pub path: PathBuf,
    pub anchor_seq: u64,
    pub anchor_offset: u64,
    /// Committed length of the segment (bounds every read in it).
    pub segment_len: u64,
    /// Last committed seq of the segment.
    pub segment_last: u64,
}

/// All segments, oldest first, plus running totals.
#[derive(Debug, Default)]
pub struct Index {
    pub segments: Vec<SegmentInfo>,
    pub records: u64,
    pub bytes: u64,
}

impl Index {
    pub fn first_seq(&self) -> Option<u64> {
        self.segments
            .iter()
            .find(|s| s.records > 0)
            .map(|s| s.first_seq)
    }

    pub fn last_seq(&self) -> Option<u64> {
        self.segments
            .iter()
            .rev()
            .find(|s| s.records > 0)
            .map(|s| s.first_seq + s.records - 1)
    }

    /// The anchor to start from to reach committed record `seq`, if it exists.
    pub fn locate(&self, seq: u64) -> Option<Location> {
        let i = self.segments.partition_point(|s| s.first_seq <= seq);
        let seg = self.segments.get(i.checked_sub(1)?)?;
        let rel = seq - seg.first_seq;
        if rel >= seg.records {
            return None;
        }
        let slot = (rel / INDEX_STRIDE) as usize;
        let anchor_offset = *seg.anchors.get(slot)?;
        Some(Location {
            path: seg.path.clone(),
            anchor_seq: seg.first_seq + slot as u64 * INDEX_STRIDE,
            anchor_offset,
            segment_len: seg.len,
            segment_last: seg.first_seq + seg.records - 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(first: u64, records: u64) -> SegmentInfo {
        let mut s = SegmentInfo::new(first, PathBuf::from(format!("s{first}")));
        s.records = records;
        s.len = records * 100;
        s.anchors = (0..records.div_ceil(INDEX_STRIDE))
            .map(|i| i * INDEX_STRIDE * 100)
            .collect();
        s
    }

    #[test]
    fn locate_finds_segment_and_anchor() {
        let idx = Index {
            segments: vec![seg(1, 100), seg(101, 10)],
            records: 110,
            bytes: 11_000,
        };
        assert!(idx.locate(0).is_none());
        let l = idx.locate(1).unwrap();
        assert_eq!((l.anchor_seq, l.anchor_offset), (1, 0));
        let l = idx.locate(70).unwrap();
        assert_eq!(
            (l.anchor_seq, l.anchor_offset, l.segment_last),
            (65, 6400, 100)
        );
        let l = idx.locate(110).unwrap();
        assert_eq!((l.path, l.anchor_seq), (PathBuf::from("s101"), 101));
        assert!(idx.locate(111).is_none());
        assert_eq!((idx.first_seq(), idx.last_seq()), (Some(1), Some(110)));
    }
}
