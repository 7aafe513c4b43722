//! The on-disk record format (see `docs/store.md`): a 24-byte header (magic, version, kind +
//! reserved, length, sequence number, CRC32) followed by the payload, plus encode/decode/verify
//! helpers. Version 1 records (no kind byte) are trace records; version 2 carries the kind.

use std::fs::File;
use std::io::{self, BufRead};
use std::os::unix::fs::FileExt;

use bytes::Bytes;

use crate::error::CorruptKind;

/// First four bytes of every record.
pub const MAGIC: [u8; 4] = *b"TRJS";
/// Record format version of trace records: byte-identical to the records of builds before the
/// record kind existed, so a store holding only traces stays readable by them.
pub const VERSION_1: u8 = 1;
/// Record format version carrying a [`RecordKind`] in header byte 5 (written for every kind
/// other than traces).
pub const VERSION_2: u8 = 2;
/// Bytes of the record header.
pub const HEADER_LEN: usize = 24;
/// Largest payload a record can hold (the length field is a u32).
pub const MAX_PAYLOAD: usize = u32::MAX as usize;

/// Layout offsets inside the header.
const VERSION_AT: usize = 4;
const KIND_AT: usize = 5; // version 2: the record kind; version 1: zero
const RESERVED_AT: usize = 6; // u16 reserved, zero in both versions
const LEN_AT: usize = 8;
const SEQ_AT: usize = 12;
const CRC_AT: usize = 20;

/// What a record's payload is. The store does not interpret payloads; the kind tells readers
/// which message to decode (the receiver: an OTLP `ExportTraceServiceRequest` or
/// `ExportLogsServiceRequest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RecordKind {
    /// An encoded OTLP trace export request. Every record of a version-1 store is one.
    #[default]
    Traces,
    /// An encoded OTLP logs export request.
    Logs,
}

impl RecordKind {
    /// The kind byte of a version-2 header.
    pub fn code(self) -> u8 {
        match self {
            RecordKind::Traces => 0,
            RecordKind::Logs => 1,
        }
    }

    /// The kind of a version-2 kind byte, if it is one this build knows.
    pub fn from_code(code: u8) -> Option<RecordKind> {
        match code {
            0 => Some(RecordKind::Traces),
            1 => Some(RecordKind::Logs),
            _ => None,
        }
    }

    /// The header version a record of this kind is written with.
    fn version(self) -> u8 {
        match self {
            RecordKind::Traces => VERSION_1,
            RecordKind::Logs => VERSION_2,
        }
    }
}

impl std::fmt::Display for RecordKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordKind::Traces => "traces",
            RecordKind::Logs => "logs",
        })
    }
}

/// One committed record as read back: its sequence number, kind and (CRC-checked) payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub kind: RecordKind,
    pub payload: Bytes,
}

/// A decoded, structurally valid header (the CRC still has to be checked against the payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub kind: RecordKind,
    pub len: u32,
    pub seq: u64,
    pub crc: u32,
}

impl RecordHeader {
    /// Header plus payload bytes.
    pub fn record_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }
}

/// Appends one encoded record (header + payload) to `buf`. `payload.len()` must be <= MAX_PAYLOAD.
/// Trace records are written as version 1 (kind byte 0), every other kind as version 2.
pub fn encode_into(buf: &mut Vec<u8>, seq: u64, kind: RecordKind, payload: &[u8]) {
    let start = buf.len();
    buf.extend_from_slice(&MAGIC);
    buf.push(kind.version());
    buf.extend_from_slice(&[kind.code(), 0, 0]);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&buf[start + VERSION_AT..start + CRC_AT]);
    h.update(payload);
    buf.extend_from_slice(&h.finalize().to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Checks magic, version, kind and reserved bytes and extracts kind, length, sequence number and
/// stored CRC. Version 1: bytes 5..8 must be zero, the kind is [`RecordKind::Traces`]. Version 2:
/// byte 5 is the kind, bytes 6..8 must be zero.
pub fn decode_header(h: &[u8; HEADER_LEN]) -> Result<RecordHeader, CorruptKind> {
    if h[..4] != MAGIC {
        return Err(CorruptKind::BadMagic);
    }
    let kind = match h[VERSION_AT] {
        VERSION_1 if h[KIND_AT] == 0 => RecordKind::Traces,
        VERSION_1 => return Err(CorruptKind::UnknownFlags),
        VERSION_2 => {
            RecordKind::from_code(h[KIND_AT]).ok_or(CorruptKind::UnknownKind(h[KIND_AT]))?
        }
        v => return Err(CorruptKind::UnsupportedVersion(v)),
    };
    if h[RESERVED_AT..LEN_AT] != [0, 0] {
        return Err(CorruptKind::UnknownFlags);
    }
    Ok(RecordHeader {
        kind,
        len: u32::from_le_bytes([h[LEN_AT], h[LEN_AT + 1], h[LEN_AT + 2], h[LEN_AT + 3]]),
        seq: u64::from_le_bytes([
            h[SEQ_AT],
            h[SEQ_AT + 1],
            h[SEQ_AT + 2],
            h[SEQ_AT + 3],
            h[SEQ_AT + 4],
            h[SEQ_AT + 5],
            h[SEQ_AT + 6],
            h[SEQ_AT + 7],
        ]),
        crc: u32::from_le_bytes([h[CRC_AT], h[CRC_AT + 1], h[CRC_AT + 2], h[CRC_AT + 3]]),
    })
}

/// A CRC hasher primed with the header fields the CRC covers (version .. seq).
pub fn crc_hasher(h: &[u8; HEADER_LEN]) -> crc32fast::Hasher {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&h[VERSION_AT..CRC_AT]);
    hasher
}

/// Compares the stored CRC with the computed one.
pub fn check_crc(header: &RecordHeader, computed: u32) -> Result<(), CorruptKind> {
    if header.crc == computed {
        Ok(())
    } else {
        Err(CorruptKind::CrcMismatch {
            stored: header.crc,
            computed,
        })
    }
}

/// Why reading a record failed: the OS, or the bytes.
#[derive(Debug)]
pub enum ReadFailure {
    Io(io::Error),
    Corrupt(CorruptKind),
}

impl From<io::Error> for ReadFailure {
    fn from(e: io::Error) -> Self {
        ReadFailure::Io(e)
    }
}

impl From<CorruptKind> for ReadFailure {
    fn from(k: CorruptKind) -> Self {
        ReadFailure::Corrupt(k)
    }
}

/// Reads and decodes the header at `offset` with positional I/O; `file_len` bounds the payload.
pub fn pread_header(file: &File, offset: u64, file_len: u64) -> Result<RecordHeader, ReadFailure> {
    let mut h = [0u8; HEADER_LEN];
    let have = pread_full(file, &mut h, offset)?;
    if have < HEADER_LEN {
        return Err(CorruptKind::ShortHeader { have }.into());
    }
    let header = decode_header(&h)?;
    let room = file_len.saturating_sub(offset + HEADER_LEN as u64);
    if u64::from(header.len) > room {
        return Err(CorruptKind::ShortPayload {
            need: u64::from(header.len),
            have: room,
        }
        .into());
    }
    Ok(header)
}

/// Reads the payload of the record whose header sits at `offset` and verifies its CRC.
pub fn pread_payload(
    file: &File,
    offset: u64,
    header: &RecordHeader,
) -> Result<Bytes, ReadFailure> {
    let mut h = [0u8; HEADER_LEN];
    file.read_exact_at(&mut h, offset)?;
    let mut payload = vec![0u8; header.len as usize];
    let have = pread_full(file, &mut payload, offset + HEADER_LEN as u64)?;
    if have < payload.len() {
        return Err(CorruptKind::ShortPayload {
            need: u64::from(header.len),
            have: have as u64,
        }
        .into());
    }
    let mut hasher = crc_hasher(&h);
    hasher.update(&payload);
    check_crc(header, hasher.finalize())?;
    Ok(Bytes::from(payload))
}

/// Verifies the CRC of the record at `offset` without keeping the payload (streams in chunks).
pub fn pread_verify(file: &File, offset: u64, header: &RecordHeader) -> Result<(), ReadFailure> {
    let mut h = [0u8; HEADER_LEN];
    file.read_exact_at(&mut h, offset)?;
    let mut hasher = crc_hasher(&h);
    let mut chunk = vec![0u8; (header.len as usize).min(64 * 1024)];
    let mut pos = offset + HEADER_LEN as u64;
    let mut left = u64::from(header.len);
    while left > 0 {
        let n = (left as usize).min(chunk.len());
        let got = pread_full(file, &mut chunk[..n], pos)?;
        if got < n {
            return Err(CorruptKind::ShortPayload {
                need: u64::from(header.len),
                have: u64::from(header.len) - left + got as u64,
            }
            .into());
        }
        hasher.update(&chunk[..n]);
        pos += n as u64;
        left -= n as u64;
    }
    check_crc(header, hasher.finalize())?;
    Ok(())
}

/// Reads as many bytes as exist (up to `buf.len()`) at `offset`; fewer means end of file.
pub fn pread_full(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Reads as many bytes as exist (up to `buf.len()`) from a buffered reader.
pub fn read_full(reader: &mut impl io::Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match reader.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Streams `len` bytes out of `reader` into `hasher` (and into `keep` if given). Returns the
/// number of bytes actually available (less than `len` at end of file).
pub fn stream_payload(
    reader: &mut impl BufRead,
    len: u64,
    hasher: &mut crc32fast::Hasher,
    mut keep: Option<&mut Vec<u8>>,
) -> io::Result<u64> {
    let mut left = len;
    while left > 0 {
        let chunk = match reader.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        let n = (chunk.len() as u64).min(left) as usize;
        hasher.update(&chunk[..n]);
        if let Some(k) = keep.as_deref_mut() {
            k.extend_from_slice(&chunk[..n]);
        }
        reader.consume(n);
        left -= n as u64;
    }
    Ok(len - left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_round_trips() {
        let mut buf = Vec::new();
        encode_into(&mut buf, 42, RecordKind::Traces, b"hello");
        assert_eq!(buf.len(), HEADER_LEN + 5);
        let h: [u8; HEADER_LEN] = buf[..HEADER_LEN].try_into().unwrap();
        let header = decode_header(&h).unwrap();
        assert_eq!(header.seq, 42);
        assert_eq!(header.len, 5);
        assert_eq!(header.kind, RecordKind::Traces);
        let mut hasher = crc_hasher(&h);
        hasher.update(&buf[HEADER_LEN..]);
        assert_eq!(check_crc(&header, hasher.finalize()), Ok(()));
    }

    #[test]
    fn crc_covers_seq_and_payload() {
        let mut a = Vec::new();
        encode_into(&mut a, 1, RecordKind::Traces, b"x");
        let mut b = Vec::new();
        encode_into(&mut b, 2, RecordKind::Traces, b"x");
        let mut c = Vec::new();
        encode_into(&mut c, 1, RecordKind::Traces, b"y");
        let mut d = Vec::new();
        encode_into(&mut d, 1, RecordKind::Logs, b"x");
        assert_ne!(a[20..24], b[20..24]);
        assert_ne!(a[20..24], c[20..24]);
        assert_ne!(a[20..24], d[20..24], "the kind is covered by the CRC");
    }

    #[test]
    fn decode_rejects_bad_magic_version_flags() {
        let mut buf = Vec::new();
        encode_into(&mut buf, 1, RecordKind::Traces, b"");
        let mut h: [u8; HEADER_LEN] = buf[..HEADER_LEN].try_into().unwrap();
        h[0] = b'X';
        assert_eq!(decode_header(&h), Err(CorruptKind::BadMagic));
        h[0] = MAGIC[0];
        h[4] = 9;
        assert_eq!(decode_header(&h), Err(CorruptKind::UnsupportedVersion(9)));
        h[4] = VERSION_1;
        h[6] = 1;
        assert_eq!(decode_header(&h), Err(CorruptKind::UnknownFlags));
        h[6] = 0;
        // Version 1 has no kind byte: a set byte 5 is a reserved bit, as before.
        h[5] = 1;
        assert_eq!(decode_header(&h), Err(CorruptKind::UnknownFlags));
        h[4] = VERSION_2;
        assert_eq!(decode_header(&h).map(|x| x.kind), Ok(RecordKind::Logs));
        h[5] = 7;
        assert_eq!(decode_header(&h), Err(CorruptKind::UnknownKind(7)));
        h[5] = 1;
        h[7] = 1;
        assert_eq!(decode_header(&h), Err(CorruptKind::UnknownFlags));
    }

    #[test]
    fn trace_records_keep_the_version_1_bytes_and_logs_use_version_2() {
        // A trace record is exactly what builds without record kinds wrote (checked byte by
        // byte against the old layout: magic, version 1, three zero bytes, len, seq, crc).
        let mut t = Vec::new();
        encode_into(&mut t, 7, RecordKind::Traces, b"abc");
        assert_eq!(&t[..8], b"TRJS\x01\x00\x00\x00");
        let mut old_crc = crc32fast::Hasher::new();
        old_crc.update(&[1, 0, 0, 0]);
        old_crc.update(&3u32.to_le_bytes());
        old_crc.update(&7u64.to_le_bytes());
        old_crc.update(b"abc");
        assert_eq!(t[20..24], old_crc.finalize().to_le_bytes());
        let mut l = Vec::new();
        encode_into(&mut l, 7, RecordKind::Logs, b"abc");
        assert_eq!(&l[..8], b"TRJS\x02\x01\x00\x00");
        for (buf, kind) in [(t, RecordKind::Traces), (l, RecordKind::Logs)] {
            let h: [u8; HEADER_LEN] = buf[..HEADER_LEN].try_into().unwrap();
            assert_eq!(decode_header(&h).unwrap().kind, kind);
        }
    }
}
