//! Reads of byte ranges inside committed payloads, for readers that keep `(seq, range)` instead
//! of the bytes (the receiver's open runs hold their spans this way, so memory does not grow with
//! span sizes). A reader caches where recent records start and keeps their segment files open,
//! so reading several ranges of one record costs one header read and one `pread` each.
//!
//! A range read does not re-check the record's CRC (that needs the whole payload): the record was
//! checked when it was written and is checked again by every full read and by the startup scan.
//! Callers verify what they decode (the receiver checks each span's id).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{CorruptKind, StoreError};
use crate::record_format::{self as fmt, ReadFailure, HEADER_LEN};
use crate::store_handle::{Shared, Store};

/// Record starts remembered by one reader (a few KB).
const LOCATIONS: usize = 512;
/// Segment files kept open by one reader.
const FILES: usize = 8;

/// Where a committed record's payload sits.
#[derive(Debug, Clone)]
struct PayloadAt {
    path: PathBuf,
    offset: u64,
    len: u32,
}

/// A single-threaded reader of payload ranges (one per run-assembly thread).
pub struct RangeReader {
    shared: Arc<Shared>,
    locations: HashMap<u64, PayloadAt>,
    order: VecDeque<u64>,
    files: HashMap<PathBuf, Arc<File>>,
}

impl Store {
    /// A reader of byte ranges inside committed payloads.
    pub fn range_reader(&self) -> RangeReader {
        RangeReader {
            shared: Arc::clone(&self.inner.shared),
            locations: HashMap::new(),
            order: VecDeque::new(),
            files: HashMap::new(),
        }
    }
}

impl RangeReader {
    /// `range` of committed record `seq`'s payload. `NotFound` when the record is not (or no
    /// longer) in the store; `Corrupt` when the range lies outside the payload.
    pub fn read(&mut self, seq: u64, range: Range<usize>) -> Result<Vec<u8>, StoreError> {
        let at = self.locate(seq)?;
        if range.start > range.end || range.end > at.len as usize {
            return Err(StoreError::Corrupt {
                path: at.path,
                offset: at.offset,
                kind: CorruptKind::ShortPayload {
                    need: range.end as u64,
                    have: u64::from(at.len),
                },
            });
        }
        let file = self.file(&at.path)?;
        let mut buf = vec![0u8; range.len()];
        let from = at.offset + range.start as u64;
        let have =
            fmt::pread_full(&file, &mut buf, from).map_err(|e| StoreError::io(&at.path, e))?;
        if have < buf.len() {
            return Err(StoreError::Corrupt {
                path: at.path,
                offset: from,
                kind: CorruptKind::ShortPayload {
                    need: buf.len() as u64,
                    have: have as u64,
                },
            });
        }
        Ok(buf)
    }

    /// Where record `seq`'s payload starts: from the cache, else from the nearest index anchor
    /// by walking headers.
    fn locate(&mut self, seq: u64) -> Result<PayloadAt, StoreError> {
        if let Some(at) = self.locations.get(&seq) {
            return Ok(at.clone());
        }
        let loc = self
            .shared
            .index()
            .locate(seq)
            .ok_or(StoreError::NotFound { seq })?;
        let file = self.file(&loc.path)?;
        let corrupt = |f: ReadFailure, offset: u64| match f {
            ReadFailure::Io(e) => StoreError::io(&loc.path, e),
            ReadFailure::Corrupt(kind) => StoreError::Corrupt {
                path: loc.path.clone(),
                offset,
                kind,
            },
        };
        let (mut offset, mut at) = (loc.anchor_offset, loc.anchor_seq);
        loop {
            let header = fmt::pread_header(&file, offset, loc.segment_len)
                .map_err(|f| corrupt(f, offset))?;
            if header.seq != at {
                let kind = CorruptKind::SeqMismatch {
                    expected: at,
                    found: header.seq,
                };
                return Err(corrupt(ReadFailure::Corrupt(kind), offset));
            }
            self.remember(
                at,
                PayloadAt {
                    path: loc.path.clone(),
                    offset: offset + HEADER_LEN as u64,
                    len: header.len,
                },
            );
            if at == seq {
                break;
            }
            offset += header.record_len();
            at += 1;
        }
        self.locations
            .get(&seq)
            .cloned()
            .ok_or(StoreError::NotFound { seq })
    }

    fn remember(&mut self, seq: u64, at: PayloadAt) {
        if self.locations.insert(seq, at).is_none() {
            self.order.push_back(seq);
        }
        while self.order.len() > LOCATIONS {
            if let Some(old) = self.order.pop_front() {
                self.locations.remove(&old);
            }
        }
    }

    fn file(&mut self, path: &PathBuf) -> Result<Arc<File>, StoreError> {
        if let Some(f) = self.files.get(path) {
            return Ok(Arc::clone(f));
        }
        if self.files.len() >= FILES {
            self.files.clear();
        }
        let f = Arc::new(File::open(path).map_err(|e| StoreError::io(path, e))?);
        self.files.insert(path.clone(), Arc::clone(&f));
        Ok(f)
    }

    /// Forgets cached locations and files (after segments were removed).
    pub fn clear(&mut self) {
        self.locations.clear();
        self.order.clear();
        self.files.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreConfig;
    use bytes::Bytes;

    #[tokio::test]
    async fn ranges_of_many_records_read_back_exactly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = StoreConfig::new(dir.path());
        cfg.segment_bytes = 4096; // several segments
        let (store, _) = Store::open(cfg).expect("open");
        let mut seqs = Vec::new();
        for i in 0..200u32 {
            let payload: Vec<u8> = (0..(50 + i)).map(|b| (b ^ i) as u8).collect();
            seqs.push((
                store
                    .append(Bytes::from(payload.clone()))
                    .await
                    .expect("append"),
                payload,
            ));
        }
        assert!(store.stats().segments > 1);
        let mut reader = store.range_reader();
        // Out of order, so the walk from an anchor and the cache both serve.
        for (seq, payload) in seqs.iter().rev().chain(seqs.iter()) {
            let r = 3..payload.len() - 7;
            assert_eq!(
                reader.read(*seq, r.clone()).expect("read"),
                payload[r].to_vec()
            );
        }
        let (seq, payload) = &seqs[5];
        let past_end = reader.read(*seq, 0..payload.len() + 1);
        assert!(
            matches!(past_end, Err(StoreError::Corrupt { .. })),
            "{past_end:?}"
        );
        let missing = reader.read(10_000, 0..1);
        assert!(matches!(missing, Err(StoreError::NotFound { seq: 10_000 })));
        store.close().await.expect("close");
    }
}
