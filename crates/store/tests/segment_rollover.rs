//! Segment rollover: files are named after their first sequence number, never grow past
//! `segment_bytes` (when groups are smaller than that), and scan/read/reopen work across them.

use bytes::Bytes;
use traj_store::{segment_name, FsyncPolicy, Store, StoreConfig, HEADER_LEN};

fn rec(i: u64) -> Bytes {
    Bytes::from(format!("{i:0>100}"))
}

const RECORD: u64 = HEADER_LEN as u64 + 100;

#[tokio::test]
async fn sequential_appends_roll_at_the_configured_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.segment_bytes = 8 * RECORD + 10; // room for exactly 8 records
    let (store, _) = Store::open(cfg.clone()).unwrap();
    for i in 1..=50u64 {
        assert_eq!(store.append(rec(i)).await.unwrap(), i);
    }
    let stats = store.stats();
    assert_eq!(stats.segments, 7);
    assert_eq!(stats.bytes, 50 * RECORD);

    let raw = dir.path().join("raw");
    let mut names: Vec<String> = std::fs::read_dir(&raw)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let expected: Vec<String> = [1u64, 9, 17, 25, 33, 41, 49]
        .iter()
        .map(|s| segment_name(*s))
        .collect();
    assert_eq!(names, expected);
    for name in &names[..6] {
        assert_eq!(std::fs::metadata(raw.join(name)).unwrap().len(), 8 * RECORD);
    }
    assert_eq!(
        std::fs::metadata(raw.join(&names[6])).unwrap().len(),
        2 * RECORD
    );

    let all: Vec<_> = store
        .scan(0)
        .map(|r| r.map(|r| (r.seq, r.payload)).unwrap())
        .collect();
    assert_eq!(all.len(), 50);
    for (seq, p) in &all {
        assert_eq!(p, &rec(*seq));
    }
    for seq in [8, 9, 16, 17, 48, 49, 50] {
        assert_eq!(store.read(seq).unwrap(), rec(seq));
    }
    // A scan starting inside a later segment.
    let from_20: Vec<u64> = store.scan(20).map(|r| r.unwrap().seq).collect();
    assert_eq!(from_20, (20..=50).collect::<Vec<_>>());
    store.close().await.unwrap();

    let (store, report) = Store::open(cfg).unwrap();
    assert_eq!(
        (report.records, report.segments, report.truncated_bytes),
        (50, 7, 0)
    );
    assert_eq!(report.last_seq, Some(50));
    assert_eq!(store.append(rec(51)).await.unwrap(), 51);
    assert_eq!(store.stats().segments, 7);
    assert_eq!(store.read(51).unwrap(), rec(51));
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_roll_without_splitting_groups_or_overflowing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.segment_bytes = 4_000;
    cfg.max_batch_bytes = 1_000;
    cfg.fsync = FsyncPolicy::Never;
    let (store, _) = Store::open(cfg.clone()).unwrap();
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..40u64 {
                let seq = store.append(rec(t * 1000 + i)).await.unwrap();
                assert_eq!(store.read(seq).unwrap(), rec(t * 1000 + i));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let raw = dir.path().join("raw");
    let sizes: Vec<u64> = std::fs::read_dir(&raw)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    assert!(sizes.len() >= 320 * RECORD as usize / 4_000);
    assert!(sizes.iter().all(|s| *s <= 4_000), "segment sizes {sizes:?}");
    assert_eq!(sizes.iter().sum::<u64>(), 320 * RECORD);
    let seqs: Vec<u64> = store.scan(0).map(|r| r.unwrap().seq).collect();
    assert_eq!(seqs, (1..=320).collect::<Vec<_>>());
    store.close().await.unwrap();
    let (_, report) = Store::open(cfg).unwrap();
    assert_eq!(report.records, 320);
    assert_eq!(report.segments, sizes.len());
}
