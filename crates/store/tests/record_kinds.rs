//! Record kinds: trace and log records share one sequence and group commit and read back with
//! their kind; segments written before kinds existed (version 1, hand-built here byte by byte
//! from the documented layout) still open and read as traces; a complete record of a version or
//! kind this build does not know is refused, never truncated as if it were a torn tail.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use traj_store::{
    segment_name, CorruptKind, FsyncPolicy, Record, RecordKind, Store, StoreConfig, StoreError,
    HEADER_LEN,
};

fn seg1(dir: &Path) -> PathBuf {
    dir.join("raw").join(segment_name(1))
}

/// A record exactly as `docs/store.md` describes it, built without the crate's encoder.
fn handmade_record(version: u8, kind_byte: u8, seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut header_tail = vec![version, kind_byte, 0, 0];
    header_tail.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    header_tail.extend_from_slice(&seq.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header_tail);
    crc.update(payload);
    let mut out = b"TRJS".to_vec();
    out.extend_from_slice(&header_tail);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn write_segment(dir: &Path, records: &[Vec<u8>]) {
    std::fs::create_dir_all(dir.join("raw")).unwrap();
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(seg1(dir))
        .unwrap();
    for r in records {
        f.write_all(r).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinds_round_trip_through_group_commit_scan_read_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.fsync = FsyncPolicy::Never;
    let (store, _) = Store::open(cfg.clone()).unwrap();
    let mut tasks = Vec::new();
    for t in 0..8u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..50u8 {
                let kind = if (t + i) % 3 == 0 {
                    RecordKind::Logs
                } else {
                    RecordKind::Traces
                };
                let payload = Bytes::from(vec![t, i, kind.code()]);
                let seq = store.append_kind(kind, payload.clone()).await.unwrap();
                got.push(Record { seq, kind, payload });
            }
            got
        }));
    }
    let mut expected = Vec::new();
    for t in tasks {
        expected.extend(t.await.unwrap());
    }
    expected.sort_by_key(|r| r.seq);
    let logs = expected
        .iter()
        .filter(|r| r.kind == RecordKind::Logs)
        .count();
    assert!(logs > 100 && logs < 300, "{logs} log records");

    let scanned: Vec<Record> = store.scan(0).map(Result::unwrap).collect();
    assert_eq!(scanned, expected);
    for r in &expected {
        assert_eq!(&store.read_record(r.seq).unwrap(), r);
        assert_eq!(store.read(r.seq).unwrap(), r.payload);
    }
    assert!(
        store.stats().commits < expected.len() as u64,
        "records of both kinds are grouped"
    );
    store.close().await.unwrap();

    let (store, report) = Store::open(cfg).unwrap();
    assert_eq!(report.records, 400);
    assert_eq!(report.truncated_bytes, 0);
    let again: Vec<Record> = store.scan(0).map(Result::unwrap).collect();
    assert_eq!(again, expected);
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_segment_written_before_record_kinds_reads_as_traces() {
    let dir = tempfile::tempdir().unwrap();
    let old: Vec<Vec<u8>> = (1..=3u64)
        .map(|seq| handmade_record(1, 0, seq, format!("old trace {seq}").as_bytes()))
        .collect();
    write_segment(dir.path(), &old);
    let old_bytes = std::fs::read(seg1(dir.path())).unwrap();

    let (store, report) = Store::open(StoreConfig::new(dir.path())).unwrap();
    assert_eq!((report.records, report.truncated_bytes), (3, 0));
    for seq in 1..=3u64 {
        let r = store.read_record(seq).unwrap();
        assert_eq!(r.kind, RecordKind::Traces);
        assert_eq!(r.payload, format!("old trace {seq}").into_bytes());
    }
    // New records of both kinds continue the old segment; the old bytes stay untouched and a new
    // trace record is byte-identical to what the old format prescribes.
    assert_eq!(
        store
            .append_kind(RecordKind::Logs, Bytes::from_static(b"new logs"))
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        store
            .append(Bytes::from_static(b"new trace"))
            .await
            .unwrap(),
        5
    );
    store.close().await.unwrap();
    let now = std::fs::read(seg1(dir.path())).unwrap();
    assert_eq!(&now[..old_bytes.len()], &old_bytes[..]);
    let logs_rec = handmade_record(2, 1, 4, b"new logs");
    let trace_rec = handmade_record(1, 0, 5, b"new trace");
    assert_eq!(&now[old_bytes.len()..], &[logs_rec, trace_rec].concat()[..]);

    let (store, _) = Store::open(StoreConfig::new(dir.path())).unwrap();
    let kinds: Vec<RecordKind> = store.scan(0).map(|r| r.unwrap().kind).collect();
    assert_eq!(
        kinds,
        [
            RecordKind::Traces,
            RecordKind::Traces,
            RecordKind::Traces,
            RecordKind::Logs,
            RecordKind::Traces
        ]
    );
}

#[test]
fn a_complete_record_of_an_unknown_kind_or_version_is_refused_not_truncated() {
    for (version, kind_byte, want) in [
        (2u8, 9u8, CorruptKind::UnknownKind(9)),
        (3, 0, CorruptKind::UnsupportedVersion(3)),
        (99, 0, CorruptKind::UnsupportedVersion(99)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let first = handmade_record(1, 0, 1, b"trace");
        let newer = handmade_record(version, kind_byte, 2, b"from a newer build");
        write_segment(dir.path(), &[first.clone(), newer]);
        let before = std::fs::read(seg1(dir.path())).unwrap();
        match Store::open(StoreConfig::new(dir.path())) {
            Err(e @ StoreError::Corrupt { offset, kind, .. }) => {
                assert_eq!(offset, first.len() as u64);
                assert_eq!(kind, want);
                if version > 2 {
                    let text = e.to_string();
                    assert!(
                        text.contains(&format!(
                            "record format version {version} is newer than this build reads \
                             (versions 1 and 2)"
                        )),
                        "{text}"
                    );
                }
            }
            other => panic!("expected a refusal, got {:?}", other.map(|(_, r)| r)),
        }
        assert_eq!(std::fs::read(seg1(dir.path())).unwrap(), before);
    }
}

#[test]
fn a_torn_log_record_at_the_tail_is_truncated_like_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let first = handmade_record(2, 1, 1, b"logs one");
    let mut torn = handmade_record(2, 1, 2, b"logs two, cut short");
    torn.truncate(HEADER_LEN + 4);
    write_segment(dir.path(), &[first.clone(), torn]);
    let (store, report) = Store::open(StoreConfig::new(dir.path())).unwrap();
    assert_eq!(report.records, 1);
    assert_eq!(report.truncated_bytes, (HEADER_LEN + 4) as u64);
    assert_eq!(store.read_record(1).unwrap().kind, RecordKind::Logs);
    assert_eq!(
        std::fs::metadata(seg1(dir.path())).unwrap().len(),
        first.len() as u64
    );
}
