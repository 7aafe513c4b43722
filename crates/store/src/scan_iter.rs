//! `Scan`: the ordered iterator over committed records, reading each segment sequentially through
//! a buffered reader and verifying every record (header, sequence number, CRC) on the way.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{CorruptKind, StoreError};
use crate::record_format::{self as fmt, Record, RecordKind, HEADER_LEN};
use crate::store_handle::Shared;

/// Iterator returned by [`crate::Store::scan`]: [`Record`]s (seq, kind, payload) in sequence
/// order, up to the last record committed when the scan was created. After an error it yields
/// nothing more.
pub struct Scan {
    shared: Arc<Shared>,
    next: u64,
    end: Option<u64>,
    cursor: Option<Cursor>,
    failed: bool,
}

struct Cursor {
    path: PathBuf,
    reader: BufReader<File>,
    offset: u64,
    segment_len: u64,
    segment_last: u64,
}

impl Scan {
    pub(crate) fn new(shared: Arc<Shared>, from_seq: u64) -> Self {
        let (first, end) = {
            let idx = shared.index();
            (idx.first_seq(), idx.last_seq())
        };
        Scan {
            shared,
            next: first.map_or(from_seq, |f| from_seq.max(f)),
            end,
            cursor: None,
            failed: false,
        }
    }

    fn step(&mut self) -> Result<Record, StoreError> {
        let seq = self.next;
        let reopen = self.cursor.as_ref().is_none_or(|c| c.segment_last < seq);
        if reopen {
            self.cursor = Some(self.open_at(seq)?);
        }
        let cursor = match self.cursor.as_mut() {
            Some(c) => c,
            None => return Err(StoreError::NotFound { seq }),
        };
        let (kind, payload) = read_record(cursor, seq, true)?;
        Ok(Record {
            seq,
            kind,
            payload: payload.unwrap_or_default(),
        })
    }

    /// Opens the segment holding `seq` and positions the reader on it.
    fn open_at(&self, seq: u64) -> Result<Cursor, StoreError> {
        let loc = self
            .shared
            .index()
            .locate(seq)
            .ok_or(StoreError::NotFound { seq })?;
        let file = File::open(&loc.path).map_err(|e| StoreError::io(&loc.path, e))?;
        let mut reader = BufReader::with_capacity(128 * 1024, file);
        reader
            .seek(SeekFrom::Start(loc.anchor_offset))
            .map_err(|e| StoreError::io(&loc.path, e))?;
        let mut cursor = Cursor {
            path: loc.path,
            reader,
            offset: loc.anchor_offset,
            segment_len: loc.segment_len,
            segment_last: loc.segment_last,
        };
        for skip in loc.anchor_seq..seq {
            read_record(&mut cursor, skip, false)?;
        }
        Ok(cursor)
    }
}

/// Reads and verifies the record at the cursor, which must be `expected`; its kind and (with
/// `keep`) its payload.
fn read_record(
    cursor: &mut Cursor,
    expected: u64,
    keep: bool,
) -> Result<(RecordKind, Option<Bytes>), StoreError> {
    let corrupt = |cursor: &Cursor, kind| StoreError::Corrupt {
        path: cursor.path.clone(),
        offset: cursor.offset,
        kind,
    };
    let mut h = [0u8; HEADER_LEN];
    let have =
        fmt::read_full(&mut cursor.reader, &mut h).map_err(|e| StoreError::io(&cursor.path, e))?;
    if have < HEADER_LEN {
        return Err(corrupt(cursor, CorruptKind::ShortHeader { have }));
    }
    let header = fmt::decode_header(&h).map_err(|k| corrupt(cursor, k))?;
    if header.seq != expected {
        let kind = CorruptKind::SeqMismatch {
            expected,
            found: header.seq,
        };
        return Err(corrupt(cursor, kind));
    }
    let room = cursor
        .segment_len
        .saturating_sub(cursor.offset + HEADER_LEN as u64);
    let need = u64::from(header.len);
    if need > room {
        return Err(corrupt(
            cursor,
            CorruptKind::ShortPayload { need, have: room },
        ));
    }
    let mut hasher = fmt::crc_hasher(&h);
    let mut body = if keep {
        Some(Vec::with_capacity(header.len as usize))
    } else {
        None
    };
    let got = fmt::stream_payload(&mut cursor.reader, need, &mut hasher, body.as_mut())
        .map_err(|e| StoreError::io(&cursor.path, e))?;
    if got < need {
        return Err(corrupt(
            cursor,
            CorruptKind::ShortPayload { need, have: got },
        ));
    }
    fmt::check_crc(&header, hasher.finalize()).map_err(|k| corrupt(cursor, k))?;
    cursor.offset += header.record_len();
    Ok((header.kind, body.map(Bytes::from)))
}

impl Iterator for Scan {
    type Item = Result<Record, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next > self.end? {
            return None;
        }
        let item = self.step();
        match &item {
            Ok(_) => self.next += 1,
            Err(_) => self.failed = true,
        }
        Some(item)
    }
}
