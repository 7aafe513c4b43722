//! Tests that need the writer's failure-injection hook (`fault_injection`): write errors such as
//! ENOSPC mid-write, fsync and truncate failures, and a parked writer to fill the queue.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::fault_injection::FaultPlan;
use crate::{segment_name, Store, StoreConfig, StoreError, WriteOp, HEADER_LEN};

const RECORD: u64 = HEADER_LEN as u64 + 100;

fn rec(i: u64) -> Bytes {
    Bytes::from(format!("{i:0>100}"))
}

fn open(dir: &Path, capacity: usize) -> (Store, Arc<FaultPlan>) {
    let mut cfg = StoreConfig::new(dir);
    cfg.queue_capacity = capacity;
    let plan = Arc::new(FaultPlan::default());
    let (store, _) = Store::open_with_faults(cfg, Some(plan.clone())).unwrap();
    (store, plan)
}

fn seg1_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("raw").join(segment_name(1)))
        .unwrap()
        .len()
}

fn wait_until_held(plan: &FaultPlan) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !plan.is_held() {
        assert!(Instant::now() < deadline, "writer never reached the hold");
        std::thread::yield_now();
    }
}

/// Reopens without faults and returns (records, truncated bytes, all payloads in order).
fn reopen(dir: &Path) -> (u64, u64, Vec<(u64, Bytes)>) {
    let (store, report) = Store::open(StoreConfig::new(dir)).unwrap();
    let all = store
        .scan(0)
        .map(|r| r.map(|r| (r.seq, r.payload)).unwrap())
        .collect();
    (report.records, report.truncated_bytes, all)
}

fn expect_write_error(r: Result<u64, StoreError>, op: WriteOp) -> StoreError {
    match r {
        Err(e @ StoreError::Write { .. }) => {
            assert!(e.is_retryable());
            if let StoreError::Write { op: got, .. } = &e {
                assert_eq!(*got, op);
            }
            e
        }
        other => panic!("expected a {op} error, got {other:?}"),
    }
}

#[tokio::test]
async fn enospc_mid_write_leaves_no_half_record_and_later_appends_work() {
    let dir = tempfile::tempdir().unwrap();
    let (store, plan) = open(dir.path(), 16);
    for i in 1..=3 {
        assert_eq!(store.append(rec(i)).await.unwrap(), i);
    }
    let commits = store.stats().commits;

    // The disk fills up after 30 bytes of the next group.
    plan.partial_bytes.store(30, Ordering::Release);
    plan.fail_writes.store(1, Ordering::Release);
    let err = expect_write_error(store.append(rec(99)).await, WriteOp::Write);
    match &err {
        StoreError::Write { source, .. } => assert_eq!(source.raw_os_error(), Some(28)),
        _ => unreachable!(),
    }
    assert_eq!(
        seg1_len(dir.path()),
        3 * RECORD,
        "half record left in the file"
    );
    assert_eq!(store.stats().records, 3);
    assert_eq!(store.stats().commits, commits);
    assert!(matches!(
        store.read(4),
        Err(StoreError::NotFound { seq: 4 })
    ));

    // Space is back: the sequence continues without a gap.
    assert_eq!(store.append(rec(4)).await.unwrap(), 4);
    assert_eq!(store.read(4).unwrap(), rec(4));
    store.close().await.unwrap();

    let (records, truncated, all) = reopen(dir.path());
    assert_eq!((records, truncated), (4, 0));
    assert_eq!(all, (1..=4).map(|i| (i, rec(i))).collect::<Vec<_>>());
}

#[tokio::test]
async fn failed_group_fails_every_append_in_it_and_consumes_no_sequence_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let (store, plan) = open(dir.path(), 16);
    plan.fail_writes.store(1, Ordering::Release);
    plan.partial_bytes.store(200, Ordering::Release);
    plan.hold_writer();
    let t1 = store.try_append(rec(1)).unwrap();
    wait_until_held(&plan);
    // These queue up behind the parked group and form the next group.
    let rest: Vec<_> = (2..=5).map(|i| store.try_append(rec(i)).unwrap()).collect();
    assert_eq!(store.stats().queue_depth, 4);
    plan.release();
    expect_write_error(t1.await, WriteOp::Write);
    let mut seqs = Vec::new();
    for t in rest {
        seqs.push(t.await.unwrap());
    }
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    assert_eq!(
        store.stats().commits,
        1,
        "the four queued appends were one group"
    );
    assert_eq!(store.read(1).unwrap(), rec(2));
    store.close().await.unwrap();
    assert_eq!(reopen(dir.path()).0, 4);
}

#[tokio::test]
async fn fsync_failure_fails_the_group_and_truncates_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, plan) = open(dir.path(), 16);
    store.append(rec(1)).await.unwrap();
    plan.fail_syncs.store(1, Ordering::Release);
    expect_write_error(store.append(rec(2)).await, WriteOp::Sync);
    assert_eq!(seg1_len(dir.path()), RECORD);
    assert_eq!(store.append(rec(2)).await.unwrap(), 2);
    store.close().await.unwrap();
    let (records, truncated, _) = reopen(dir.path());
    assert_eq!((records, truncated), (2, 0));
}

#[tokio::test]
async fn failed_truncate_is_repaired_before_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let (store, plan) = open(dir.path(), 16);
    store.append(rec(1)).await.unwrap();

    // Write fails after 50 bytes and the cleanup truncate fails too: garbage stays for now.
    plan.partial_bytes.store(50, Ordering::Release);
    plan.fail_writes.store(1, Ordering::Release);
    plan.fail_truncates.store(2, Ordering::Release);
    expect_write_error(store.append(rec(2)).await, WriteOp::Write);
    assert_eq!(seg1_len(dir.path()), RECORD + 50);

    // The next group must repair first; that truncate fails as well, so it does not write.
    expect_write_error(store.append(rec(2)).await, WriteOp::Truncate);
    assert_eq!(seg1_len(dir.path()), RECORD + 50);

    // Now the repair works: the garbage is cut before the record is written.
    assert_eq!(store.append(rec(2)).await.unwrap(), 2);
    assert_eq!(seg1_len(dir.path()), 2 * RECORD);
    store.close().await.unwrap();
    let (records, truncated, all) = reopen(dir.path());
    assert_eq!((records, truncated), (2, 0));
    assert_eq!(all[1], (2, rec(2)));
}

#[tokio::test]
async fn full_queue_is_refused_with_busy_then_drains() {
    let dir = tempfile::tempdir().unwrap();
    let (store, plan) = open(dir.path(), 4);
    plan.hold_writer();
    let first = store.try_append(rec(1)).unwrap();
    wait_until_held(&plan);
    let queued: Vec<_> = (2..=5).map(|i| store.try_append(rec(i)).unwrap()).collect();
    assert_eq!(store.stats().queue_depth, 4);

    let busy = store.try_append(rec(6));
    assert!(matches!(busy, Err(StoreError::Busy { capacity: 4 })));
    assert!(busy.err().unwrap().is_retryable());
    // The async API reports it too, without waiting.
    assert!(matches!(
        store.append(rec(6)).await,
        Err(StoreError::Busy { .. })
    ));
    assert_eq!(store.stats().queue_depth, 4, "refused appends hold no slot");

    plan.release();
    assert_eq!(first.await.unwrap(), 1);
    let mut seqs = Vec::new();
    for t in queued {
        seqs.push(t.await.unwrap());
    }
    assert_eq!(seqs, vec![2, 3, 4, 5]);
    assert_eq!(store.stats().queue_depth, 0);
    assert_eq!(store.append(rec(6)).await.unwrap(), 6);
    store.close().await.unwrap();
}

#[tokio::test]
async fn close_commits_what_was_queued_and_refuses_later_appends() {
    let dir = tempfile::tempdir().unwrap();
    let (store, plan) = open(dir.path(), 16);
    plan.hold_writer();
    let first = store.try_append(rec(1)).unwrap();
    wait_until_held(&plan);
    let queued: Vec<_> = (2..=4).map(|i| store.try_append(rec(i)).unwrap()).collect();
    let other = store.clone();
    let closing = tokio::spawn(store.close());
    // The close is in flight: new appends are refused right away.
    while !other.inner.shared.closing.load(Ordering::Acquire) {
        tokio::task::yield_now().await;
    }
    assert!(matches!(other.try_append(rec(9)), Err(StoreError::Closed)));
    plan.release();
    closing.await.unwrap().unwrap();
    assert_eq!(first.await.unwrap(), 1);
    for (i, t) in queued.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), i as u64 + 2);
    }
    assert!(matches!(
        other.append(rec(9)).await,
        Err(StoreError::Closed)
    ));
    // A second close on another handle returns once the writer is gone.
    other.clone().close().await.unwrap();
    assert_eq!(other.stats().records, 4);
    assert_eq!(other.read(4).unwrap(), rec(4));
    drop(other);
    assert_eq!(reopen(dir.path()).0, 4);
}
