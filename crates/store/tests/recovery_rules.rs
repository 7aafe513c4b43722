//! Recovery on open: torn or corrupt tails of the last segment are truncated and reported,
//! corruption anywhere else (older segments, or followed by valid data) refuses to open with file
//! and offset, and sequence numbers continue after the last good record.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use traj_store::{segment_name, CorruptKind, Store, StoreConfig, StoreError, HEADER_LEN};

const PAYLOAD: usize = 100;
const RECORD: u64 = (HEADER_LEN + PAYLOAD) as u64;

fn rec(i: u64) -> Bytes {
    Bytes::from(format!("{i:0>100}"))
}

fn cfg(dir: &Path) -> StoreConfig {
    let mut c = StoreConfig::new(dir);
    c.segment_bytes = 10 * RECORD; // 10 records per segment
    c
}

/// Appends records 1..=n one by one and closes the store.
fn populate(dir: &Path, n: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let (store, _) = Store::open(cfg(dir)).unwrap();
        for i in 1..=n {
            assert_eq!(store.append(rec(i)).await.unwrap(), i);
        }
        store.close().await.unwrap();
    });
}

fn seg(dir: &Path, first: u64) -> PathBuf {
    dir.join("raw").join(segment_name(first))
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

fn flip_byte(path: &Path, offset: u64) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    f.write_all_at(&[b[0] ^ 0x40], offset).unwrap();
}

/// Reopens, checks the report, and that appends continue at `records + 1` and everything scans.
fn reopen_expect(dir: &Path, records: u64, truncated: u64) -> traj_store::RecoveryReport {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let (store, report) = Store::open(cfg(dir)).unwrap();
        assert_eq!(report.records, records);
        assert_eq!(report.truncated_bytes, truncated);
        assert_eq!(report.last_seq, Some(records).filter(|r| *r > 0));
        assert_eq!(store.append(rec(records + 1)).await.unwrap(), records + 1);
        let seqs: Vec<u64> = store.scan(0).map(|r| r.unwrap().seq).collect();
        assert_eq!(seqs, (1..=records + 1).collect::<Vec<_>>());
        assert_eq!(store.read(records + 1).unwrap(), rec(records + 1));
        store.close().await.unwrap();
        report
    })
}

#[test]
fn clean_reopen_continues_sequence() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 25);
    let report = reopen_expect(dir.path(), 25, 0);
    assert_eq!(report.segments, 3);
    assert!(report.truncation.is_none());
    // And again, after the append of the previous reopen.
    reopen_expect(dir.path(), 26, 0);
}

#[test]
fn garbage_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 15);
    let last = seg(dir.path(), 11);
    append_bytes(&last, &[0xAB; 37]);
    let report = reopen_expect(dir.path(), 15, 37);
    let t = report.truncation.unwrap();
    assert_eq!(t.path, last);
    assert_eq!(t.offset, 5 * RECORD);
    assert_eq!(t.kind, CorruptKind::BadMagic);
}

#[test]
fn half_header_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 15);
    let last = seg(dir.path(), 11);
    // The first 10 bytes of a real header (copied from record 11).
    let mut head = [0u8; 10];
    std::fs::File::open(&last)
        .unwrap()
        .read_exact_at(&mut head, 0)
        .unwrap();
    append_bytes(&last, &head);
    let report = reopen_expect(dir.path(), 15, 10);
    assert_eq!(
        report.truncation.unwrap().kind,
        CorruptKind::ShortHeader { have: 10 }
    );
    assert_eq!(std::fs::metadata(&last).unwrap().len(), 6 * RECORD); // 5 + the new append
}

#[test]
fn half_payload_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 16);
    let last = seg(dir.path(), 11);
    // Cut the last record (seq 16) in the middle of its payload.
    let f = OpenOptions::new().write(true).open(&last).unwrap();
    f.set_len(6 * RECORD - 40).unwrap();
    let report = reopen_expect(dir.path(), 15, RECORD - 40);
    assert_eq!(
        report.truncation.unwrap().kind,
        CorruptKind::ShortPayload {
            need: PAYLOAD as u64,
            have: PAYLOAD as u64 - 40
        }
    );
}

#[test]
fn crc_mismatch_in_last_record_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 16);
    let last = seg(dir.path(), 11);
    flip_byte(&last, 5 * RECORD + HEADER_LEN as u64 + 50); // payload of seq 16
    let report = reopen_expect(dir.path(), 15, RECORD);
    assert!(matches!(
        report.truncation.unwrap().kind,
        CorruptKind::CrcMismatch { .. }
    ));
}

#[test]
fn crc_corruption_in_an_older_segment_surfaces_on_read_not_at_open() {
    // Sealed segments are walked by header at open (opening a large store must not read all of
    // it); their payloads' CRCs are checked by every read and scan.
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 25);
    let first = seg(dir.path(), 1);
    let before = std::fs::read(&first).unwrap();
    flip_byte(&first, 2 * RECORD + HEADER_LEN as u64 + 3); // payload of seq 3
    let (store, report) = Store::open(cfg(dir.path())).expect("opens: headers are intact");
    assert_eq!(report.truncated_bytes, 0, "nothing is truncated");
    assert_eq!(report.records, 25);
    assert!(matches!(
        store.read(3),
        Err(StoreError::Corrupt { path, offset, kind: CorruptKind::CrcMismatch { .. } })
            if path == first && offset == 2 * RECORD
    ));
    assert_eq!(store.read(4).unwrap(), rec(4));
    let items: Vec<_> = store.scan(0).collect();
    assert_eq!(items.len(), 3, "two good records, then the error");
    assert!(items[2].is_err());
    // Nothing was dropped: the file still has its full length, later segments are untouched.
    assert_eq!(std::fs::read(&first).unwrap().len(), before.len());
    assert_eq!(
        std::fs::metadata(seg(dir.path(), 21)).unwrap().len(),
        5 * RECORD
    );
}

#[test]
fn a_damaged_header_in_an_older_segment_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 25);
    let first = seg(dir.path(), 1);
    flip_byte(&first, 2 * RECORD + 12); // the seq field of the header of seq 3
    match Store::open(cfg(dir.path())) {
        Err(StoreError::Corrupt { path, offset, .. }) => {
            assert_eq!(path, first);
            assert_eq!(offset, 2 * RECORD);
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a store with a damaged header in an older segment"),
    }
}

#[test]
fn corruption_followed_by_valid_records_in_last_segment_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 18);
    let last = seg(dir.path(), 11);
    flip_byte(&last, RECORD + HEADER_LEN as u64 + 1); // seq 12; 13..=18 are still good
    match Store::open(cfg(dir.path())) {
        Err(StoreError::CorruptBeforeValid {
            path,
            offset,
            valid_at,
            ..
        }) => {
            assert_eq!(path, last);
            assert_eq!(offset, RECORD);
            assert_eq!(valid_at, 2 * RECORD);
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("truncated good data"),
    }
    assert_eq!(std::fs::metadata(&last).unwrap().len(), 8 * RECORD);
}

#[test]
fn missing_segment_is_a_sequence_gap() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 25);
    std::fs::remove_file(seg(dir.path(), 11)).unwrap();
    match Store::open(cfg(dir.path())) {
        Err(StoreError::Corrupt {
            path,
            offset: 0,
            kind,
        }) => {
            assert_eq!(path, seg(dir.path(), 21));
            assert_eq!(
                kind,
                CorruptKind::SeqMismatch {
                    expected: 11,
                    found: 21
                }
            );
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a store with a missing segment"),
    }
}

#[test]
fn empty_last_segment_from_a_crash_mid_roll_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 10);
    // Writer created seg-11 and crashed before writing to it.
    std::fs::File::create(seg(dir.path(), 11)).unwrap();
    let report = reopen_expect(dir.path(), 10, 0);
    assert_eq!(report.segments, 2);
}

#[test]
fn corrupt_data_surfaces_on_read_and_scan() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), 5);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (store, _) = Store::open(cfg(dir.path())).unwrap();
    // Bit rot after open: the record is in the index but no longer matches its CRC.
    flip_byte(&seg(dir.path(), 1), 2 * RECORD + HEADER_LEN as u64);
    assert!(matches!(
        store.read(3),
        Err(StoreError::Corrupt { offset, kind: CorruptKind::CrcMismatch { .. }, .. }) if offset == 2 * RECORD
    ));
    assert_eq!(store.read(4).unwrap(), rec(4));
    let items: Vec<_> = store.scan(0).collect();
    assert_eq!(
        items.len(),
        3,
        "two good records, then the error, then nothing"
    );
    assert!(items[2].is_err());
    rt.block_on(store.close()).unwrap();
}
