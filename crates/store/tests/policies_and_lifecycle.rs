//! Fsync policies (`Interval` syncs while idle, `Never` never syncs), dropping the last handle
//! without `close`, config validation, and the `Send + Sync` contract of the handle.

use std::time::{Duration, Instant};

use bytes::Bytes;
use traj_store::{FsyncPolicy, Store, StoreConfig, StoreError};

fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}

#[test]
fn store_handle_is_send_sync_clone() {
    assert_send_sync_clone::<Store>();
}

#[tokio::test]
async fn interval_policy_syncs_while_idle() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.fsync = FsyncPolicy::Interval(Duration::from_millis(20));
    let (store, _) = Store::open(cfg).unwrap();
    for i in 0..10u8 {
        store.append(Bytes::from(vec![i; 10])).await.unwrap();
    }
    // No further appends: only the writer's timer can produce the fsync.
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.stats().fsyncs == 0 {
        assert!(Instant::now() < deadline, "interval fsync never happened");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stats = store.stats();
    assert_eq!(stats.records, 10);
    assert_eq!(stats.sync_errors, 0);
    store.close().await.unwrap();
}

#[tokio::test]
async fn never_policy_does_not_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.fsync = FsyncPolicy::Never;
    cfg.segment_bytes = 100; // rolls too, still without fsync
    let (store, _) = Store::open(cfg.clone()).unwrap();
    for i in 0..10u8 {
        store.append(Bytes::from(vec![i; 60])).await.unwrap();
    }
    let stats = store.stats();
    assert_eq!((stats.fsyncs, stats.commits, stats.segments), (0, 10, 10));
    store.close().await.unwrap();
    let (store, report) = Store::open(cfg).unwrap();
    assert_eq!(report.records, 10);
    assert_eq!(store.read(10).unwrap(), Bytes::from(vec![9u8; 60]));
}

#[tokio::test]
async fn dropping_every_handle_stops_the_writer_and_keeps_acknowledged_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = Store::open(StoreConfig::new(dir.path())).unwrap();
        let clone = store.clone();
        store.append(Bytes::from_static(b"one")).await.unwrap();
        clone.append(Bytes::from_static(b"two")).await.unwrap();
    }
    let (store, report) = Store::open(StoreConfig::new(dir.path())).unwrap();
    assert_eq!(report.records, 2);
    assert_eq!(store.read(2).unwrap(), Bytes::from_static(b"two"));
    assert_eq!(store.append(Bytes::from_static(b"three")).await.unwrap(), 3);
}

#[test]
fn invalid_configs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base = StoreConfig::new(dir.path());
    let mut bad = Vec::new();
    let mut c = base.clone();
    c.queue_capacity = 0;
    bad.push(c);
    let mut c = base.clone();
    c.segment_bytes = 0;
    bad.push(c);
    let mut c = base.clone();
    c.max_batch_bytes = 0;
    bad.push(c);
    let mut c = base.clone();
    c.fsync = FsyncPolicy::Interval(Duration::ZERO);
    bad.push(c);
    for c in bad {
        assert!(matches!(Store::open(c), Err(StoreError::Config(_))));
    }
    // Nothing was created for a refused config.
    assert!(!dir.path().join("raw").exists());
}

#[test]
fn unrelated_files_in_the_raw_dir_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("raw")).unwrap();
    std::fs::write(dir.path().join("raw").join("README"), "notes").unwrap();
    std::fs::write(dir.path().join("raw").join("seg-12.log"), "junk").unwrap();
    let (store, report) = Store::open(StoreConfig::new(dir.path())).unwrap();
    assert_eq!((report.records, report.segments), (0, 1));
    assert_eq!(store.stats().last_seq, None);
}
