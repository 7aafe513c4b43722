//! Round trip under concurrency: many tokio tasks append at once; every append gets a distinct
//! dense sequence number, group commit batches them (fewer commits than appends), and scan/read
//! return exactly what was appended.

use std::collections::BTreeMap;

use bytes::Bytes;
use traj_store::{FsyncPolicy, Record, RecordKind, Store, StoreConfig, StoreError};

fn payload(task: usize, i: usize) -> Bytes {
    // Varying sizes, content derived from (task, i) so mix-ups are caught.
    let mut v = format!("task{task}-rec{i}-").into_bytes();
    v.extend(std::iter::repeat_n(
        (task * 31 + i) as u8,
        (task * 7 + i * 13) % 300,
    ));
    Bytes::from(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_are_group_committed_and_scan_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (store, report) = Store::open(StoreConfig::new(dir.path())).unwrap();
    assert_eq!(report.records, 0);
    assert_eq!(report.last_seq, None);

    const TASKS: usize = 32;
    const PER_TASK: usize = 100;
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..PER_TASK {
                let p = payload(task, i);
                let seq = store.append(p.clone()).await.unwrap();
                got.push((seq, p));
            }
            got
        }));
    }
    let mut by_seq = BTreeMap::new();
    for h in handles {
        for (seq, p) in h.await.unwrap() {
            assert!(
                by_seq.insert(seq, p).is_none(),
                "seq {seq} handed out twice"
            );
        }
    }
    let total = (TASKS * PER_TASK) as u64;
    // Dense, starting at 1.
    assert_eq!(
        by_seq.keys().copied().collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );

    let stats = store.stats();
    assert_eq!(stats.records, total);
    assert_eq!(stats.last_seq, Some(total));
    assert_eq!(stats.first_seq, Some(1));
    assert_eq!(stats.queue_depth, 0);
    eprintln!(
        "{total} appends from {TASKS} tasks -> {} commits",
        stats.commits
    );
    assert!(
        stats.commits < total,
        "group commit must batch: {} commits for {total} appends",
        stats.commits
    );
    // Under Always every commit is fsynced.
    assert_eq!(stats.fsyncs, stats.commits);

    let scanned: Vec<(u64, Bytes)> = store
        .scan(0)
        .map(|r| r.map(|r| (r.seq, r.payload)).unwrap())
        .collect();
    assert_eq!(scanned.len() as u64, total);
    for (seq, p) in &scanned {
        assert_eq!(by_seq.get(seq), Some(p), "payload of seq {seq}");
    }
    // Read by seq, including anchors and records between them.
    for seq in [1, 2, 32, 33, 34, 64, 65, 1000, total] {
        assert_eq!(&store.read(seq).unwrap(), by_seq.get(&seq).unwrap());
    }
    assert!(matches!(
        store.read(0),
        Err(StoreError::NotFound { seq: 0 })
    ));
    assert!(matches!(
        store.read(total + 1),
        Err(StoreError::NotFound { .. })
    ));

    // A scan from the middle starts exactly there.
    let tail: Vec<u64> = store.scan(total - 4).map(|r| r.unwrap().seq).collect();
    assert_eq!(
        tail,
        vec![total - 4, total - 3, total - 2, total - 1, total]
    );
    assert_eq!(store.scan(total + 1).count(), 0);

    store.close().await.unwrap();
}

#[tokio::test]
async fn scan_is_a_snapshot_of_committed_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.fsync = FsyncPolicy::Never;
    let (store, _) = Store::open(cfg).unwrap();
    assert_eq!(store.scan(0).count(), 0);
    store.append(Bytes::from_static(b"a")).await.unwrap();
    let scan = store.scan(1);
    store.append(Bytes::from_static(b"b")).await.unwrap();
    let seen: Vec<_> = scan.map(|r| r.unwrap()).collect();
    assert_eq!(
        seen,
        vec![Record {
            seq: 1,
            kind: RecordKind::Traces,
            payload: Bytes::from_static(b"a")
        }]
    );
    assert_eq!(store.scan(1).count(), 2);
}

#[tokio::test]
async fn empty_payload_is_a_valid_record() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(StoreConfig::new(dir.path())).unwrap();
    let seq = store.append(Bytes::new()).await.unwrap();
    assert_eq!(store.read(seq).unwrap(), Bytes::new());
    store.close().await.unwrap();
    let (store, report) = Store::open(StoreConfig::new(dir.path())).unwrap();
    assert_eq!(report.records, 1);
    assert_eq!(store.read(1).unwrap().len(), 0);
}
