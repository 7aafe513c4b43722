//! Open-time recovery: validates every segment, truncates a torn or corrupt tail of the last one,
//! refuses to open on corruption anywhere else, and rebuilds the in-memory index.

use std::fs::{File, OpenOptions};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::error::{CorruptKind, StoreError};
use crate::record_format::{self as fmt, ReadFailure, HEADER_LEN, MAGIC};
use crate::segment_files::{list_segments, segment_name, sync_dir};
use crate::segment_index::{Index, SegmentInfo};

/// What `Store::open` found and repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Committed records found.
    pub records: u64,
    /// Segment files (including a freshly created empty one).
    pub segments: usize,
    /// Bytes cut from the tail of the last segment (0 when it was clean).
    pub truncated_bytes: u64,
    /// Details of the cut, if any.
    pub truncation: Option<Truncation>,
    /// Last committed sequence number (None for an empty store); appends continue after it.
    pub last_seq: Option<u64>,
}

/// A torn or corrupt tail removed from the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    pub path: PathBuf,
    /// New length of the file = offset of the first bad record.
    pub offset: u64,
    pub bytes: u64,
    pub kind: CorruptKind,
}

/// Recovery output handed to the writer.
pub(crate) struct Recovered {
    pub index: Index,
    pub report: RecoveryReport,
    pub active: File,
    pub next_seq: u64,
}

/// Result of reading one segment front to back.
struct SegmentScan {
    info: SegmentInfo,
    file_len: u64,
    bad: Option<(u64, CorruptKind)>,
}

pub(crate) fn recover(store_dir: &Path, raw: &Path) -> Result<Recovered, StoreError> {
    if !raw.is_dir() {
        std::fs::create_dir_all(raw).map_err(|e| StoreError::io(raw, e))?;
        sync_dir(store_dir).map_err(|e| StoreError::io(store_dir, e))?;
    }
    let mut listed = list_segments(raw)?;
    if listed.is_empty() {
        let path = raw.join(segment_name(1));
        File::create(&path).map_err(|e| StoreError::io(&path, e))?;
        sync_dir(raw).map_err(|e| StoreError::io(raw, e))?;
        listed.push((1, path));
    }

    let mut index = Index::default();
    let mut truncation = None;
    let mut expected: Option<u64> = None;
    let last_i = listed.len() - 1;
    for (i, (first_seq, path)) in listed.into_iter().enumerate() {
        let want = expected.unwrap_or(first_seq.max(1));
        if first_seq != want {
            return Err(StoreError::Corrupt {
                path,
                offset: 0,
                kind: CorruptKind::SeqMismatch {
                    expected: want,
                    found: first_seq,
                },
            });
        }
        // Only the last segment can have a torn tail: it is read whole and every CRC checked.
        // Sealed segments were synced when they were sealed; their records are walked by
        // header (lengths and seqs), so opening a large store does not read all of it, and a
        // damaged payload there surfaces on read and scan (every read checks the CRC).
        let mut scan = if i == last_i {
            scan_segment(first_seq, path)?
        } else {
            walk_headers(first_seq, path)?
        };
        if let Some((offset, kind)) = scan.bad {
            let path = scan.info.path.clone();
            if i != last_i {
                return Err(StoreError::Corrupt { path, offset, kind });
            }
            if matches!(
                kind,
                CorruptKind::UnsupportedVersion(_) | CorruptKind::UnknownKind(_)
            ) && is_intact_record_at(&path, offset, scan.file_len)?
            {
                // A complete, CRC-valid record of a version or kind this build does not know was
                // written by a newer build, not torn by a crash: truncating it would lose data.
                return Err(StoreError::Corrupt { path, offset, kind });
            }
            let next_seq = first_seq + scan.info.records;
            if let Some(valid_at) = find_valid_record_after(&path, offset, scan.file_len, next_seq)?
            {
                return Err(StoreError::CorruptBeforeValid {
                    path,
                    offset,
                    kind,
                    valid_at,
                });
            }
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| StoreError::io(&path, e))?;
            f.set_len(offset).map_err(|e| StoreError::io(&path, e))?;
            f.sync_all().map_err(|e| StoreError::io(&path, e))?;
            let bytes = scan.file_len - offset;
            tracing::warn!(file = %path.display(), offset, bytes, %kind, "truncated torn tail of last segment");
            truncation = Some(Truncation {
                path,
                offset,
                bytes,
                kind,
            });
            scan.bad = None;
        }
        expected = Some(first_seq + scan.info.records);
        index.records += scan.info.records;
        index.bytes += scan.info.len;
        index.segments.push(scan.info);
    }

    let (active_path, next_seq) = match index.segments.last() {
        Some(s) => (s.path.clone(), s.first_seq + s.records),
        None => return Err(StoreError::Config("no segment after recovery".into())),
    };
    let active = OpenOptions::new()
        .write(true)
        .open(&active_path)
        .map_err(|e| StoreError::io(&active_path, e))?;
    let report = RecoveryReport {
        records: index.records,
        segments: index.segments.len(),
        truncated_bytes: truncation.as_ref().map_or(0, |t| t.bytes),
        truncation,
        last_seq: index.last_seq(),
    };
    tracing::info!(
        records = report.records,
        segments = report.segments,
        truncated_bytes = report.truncated_bytes,
        "raw store recovered"
    );
    Ok(Recovered {
        index,
        report,
        active,
        next_seq,
    })
}

/// Adds the record whose header (already checked) sits at `offset` to the segment's index when
/// its seq follows the previous one; returns the offset of the next record.
fn accept_record(
    info: &mut SegmentInfo,
    header: &fmt::RecordHeader,
    offset: u64,
) -> Result<u64, CorruptKind> {
    let expected = info.first_seq + info.records;
    if header.seq != expected {
        return Err(CorruptKind::SeqMismatch {
            expected,
            found: header.seq,
        });
    }
    if info.is_anchor(header.seq) {
        info.anchors.push(offset);
    }
    let next = offset + header.record_len();
    info.records += 1;
    info.len = next;
    Ok(next)
}

/// Walks a sealed segment header by header with positional reads (24 bytes per record, payloads
/// not read): header fields, lengths within the file and seqs; stops at the first bad one.
fn walk_headers(first_seq: u64, path: PathBuf) -> Result<SegmentScan, StoreError> {
    let file = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
    let file_len = file.metadata().map_err(|e| StoreError::io(&path, e))?.len();
    let mut info = SegmentInfo::new(first_seq, path);
    let mut offset = 0u64;
    let bad = loop {
        if offset >= file_len {
            break None;
        }
        let header = match fmt::pread_header(&file, offset, file_len) {
            Ok(header) => header,
            Err(ReadFailure::Corrupt(kind)) => break Some((offset, kind)),
            Err(ReadFailure::Io(e)) => return Err(StoreError::io(&info.path, e)),
        };
        match accept_record(&mut info, &header, offset) {
            Ok(next) => offset = next,
            Err(kind) => break Some((offset, kind)),
        }
    };
    Ok(SegmentScan {
        info,
        file_len,
        bad,
    })
}

/// Reads a segment sequentially, verifying every record; stops at the first bad one.
fn scan_segment(first_seq: u64, path: PathBuf) -> Result<SegmentScan, StoreError> {
    let file = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
    let file_len = file.metadata().map_err(|e| StoreError::io(&path, e))?.len();
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut info = SegmentInfo::new(first_seq, path);
    let mut offset = 0u64;
    let bad = loop {
        let mut h = [0u8; HEADER_LEN];
        let have =
            fmt::read_full(&mut reader, &mut h).map_err(|e| StoreError::io(&info.path, e))?;
        if have == 0 {
            break None;
        }
        if have < HEADER_LEN {
            break Some((offset, CorruptKind::ShortHeader { have }));
        }
        let header = match fmt::decode_header(&h) {
            Ok(header) => header,
            Err(kind) => break Some((offset, kind)),
        };
        let room = file_len.saturating_sub(offset + HEADER_LEN as u64);
        if u64::from(header.len) > room {
            let need = u64::from(header.len);
            break Some((offset, CorruptKind::ShortPayload { need, have: room }));
        }
        let mut hasher = fmt::crc_hasher(&h);
        let got = fmt::stream_payload(&mut reader, u64::from(header.len), &mut hasher, None)
            .map_err(|e| StoreError::io(&info.path, e))?;
        if got < u64::from(header.len) {
            let need = u64::from(header.len);
            break Some((offset, CorruptKind::ShortPayload { need, have: got }));
        }
        if let Err(kind) = fmt::check_crc(&header, hasher.finalize()) {
            break Some((offset, kind));
        }
        match accept_record(&mut info, &header, offset) {
            Ok(next) => offset = next,
            Err(kind) => break Some((offset, kind)),
        }
    };
    Ok(SegmentScan {
        info,
        file_len,
        bad,
    })
}

/// Looks for a complete, CRC-valid record with seq >= `min_seq` anywhere after `bad_offset`.
/// Finding one means the damage is not a torn tail and truncating would lose good data.
fn find_valid_record_after(
    path: &Path,
    bad_offset: u64,
    file_len: u64,
    min_seq: u64,
) -> Result<Option<u64>, StoreError> {
    let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let mut chunk = vec![0u8; 1024 * 1024];
    let mut pos = bad_offset + 1;
    while pos + HEADER_LEN as u64 <= file_len {
        let n = (chunk.len() as u64).min(file_len - pos) as usize;
        let got =
            fmt::pread_full(&file, &mut chunk[..n], pos).map_err(|e| StoreError::io(path, e))?;
        if got < 4 {
            break;
        }
        for i in 0..got - 3 {
            if chunk[i..i + 4] != MAGIC {
                continue;
            }
            let at = pos + i as u64;
            if is_valid_record_at(&file, at, file_len, min_seq)
                .map_err(|e| StoreError::io(path, e))?
            {
                return Ok(Some(at));
            }
        }
        pos += (got - 3) as u64;
    }
    Ok(None)
}

fn is_valid_record_at(file: &File, at: u64, file_len: u64, min_seq: u64) -> std::io::Result<bool> {
    let header = match fmt::pread_header(file, at, file_len) {
        Ok(h) => h,
        Err(ReadFailure::Corrupt(_)) => return Ok(false),
        Err(ReadFailure::Io(e)) => return Err(e),
    };
    if header.seq < min_seq {
        return Ok(false);
    }
    match fmt::pread_verify(file, at, &header) {
        Ok(()) => Ok(true),
        Err(ReadFailure::Corrupt(_)) => Ok(false),
        Err(ReadFailure::Io(e)) => Err(e),
    }
}

/// Whether the bytes at `at` are a complete record whose CRC matches, judged by the layout shared
/// by every version (magic, length at 8, CRC at 20 over bytes 4..20 and the payload) and without
/// interpreting the version or kind byte.
fn is_intact_record_at(path: &Path, at: u64, file_len: u64) -> Result<bool, StoreError> {
    let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let mut h = [0u8; HEADER_LEN];
    let have = fmt::pread_full(&file, &mut h, at).map_err(|e| StoreError::io(path, e))?;
    if have < HEADER_LEN || h[..4] != MAGIC {
        return Ok(false);
    }
    let len = u64::from(u32::from_le_bytes([h[8], h[9], h[10], h[11]]));
    if len > file_len.saturating_sub(at + HEADER_LEN as u64) {
        return Ok(false);
    }
    let stored = u32::from_le_bytes([h[20], h[21], h[22], h[23]]);
    let mut hasher = fmt::crc_hasher(&h);
    let mut chunk = vec![0u8; (len as usize).min(64 * 1024)];
    let mut pos = at + HEADER_LEN as u64;
    let mut left = len;
    while left > 0 {
        let n = (left as usize).min(chunk.len());
        let got =
            fmt::pread_full(&file, &mut chunk[..n], pos).map_err(|e| StoreError::io(path, e))?;
        if got < n {
            return Ok(false);
        }
        hasher.update(&chunk[..n]);
        pos += n as u64;
        left -= n as u64;
    }
    Ok(hasher.finalize() == stored)
}
