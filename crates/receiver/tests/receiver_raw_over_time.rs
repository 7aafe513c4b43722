//! The raw store over a long life, with a run-manager shard on a real store and data dir and
//! clocks the test controls. Retention: segments below the retention floor go, a segment holding
//! a record of a run not yet written stays, and a late span for a run whose raw records were
//! dropped leaves that run as it was on disk (counted), while the open run completes from the
//! records retention kept. Checkpoints: the startup scan starts at the shard's checkpoint, and a
//! trace with records on both sides of it is rebuilt whole.

mod common;

use common::*;
use prost::Message;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use traj_receiver::{ReceiverMetrics, RetentionFloor, RunManager, RunManagerConfig, TraceIndexDb};
use traj_store::{RetentionPolicy, Store, StoreConfig};

struct Shard {
    rm: RunManager,
    store: Store,
    floor: Arc<RetentionFloor>,
    metrics: Arc<ReceiverMetrics>,
}

fn shard(data: &std::path::Path, late_window: Duration) -> Shard {
    let mut store_cfg = StoreConfig::new(data);
    store_cfg.segment_bytes = 2048; // a segment every few batches
    let (store, _) = Store::open(store_cfg).unwrap();
    let cfg = RunManagerConfig {
        runs_dir: traj_runs::runs_dir_of(data),
        grace_period: Duration::from_millis(10),
        idle_timeout: Duration::from_secs(3600),
        late_window,
        durability: traj_runs::Durability::RenameOnly,
        shard: traj_receiver::Shard::ONLY,
    };
    let floor = RetentionFloor::new(1);
    let metrics = Arc::new(ReceiverMetrics::default());
    let index = TraceIndexDb::open(&TraceIndexDb::path_in(data)).unwrap();
    let rm = RunManager::new(
        cfg,
        store.clone(),
        index,
        Arc::clone(&floor),
        Arc::new(traj_assemble::MappingRules::default()),
        Arc::clone(&metrics),
    );
    Shard {
        rm,
        store,
        floor,
        metrics,
    }
}

impl Shard {
    /// Stores a batch as the ack path does and hands it to the shard; returns its seq.
    async fn ingest(&mut self, spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>) -> u64 {
        let bytes = request(spans).encode_to_vec();
        let seq = self.store.append(bytes.clone().into()).await.unwrap();
        let split = traj_assemble::split_encoded_by_trace(&bytes).unwrap();
        self.rm.on_spans(seq, split.traces, Instant::now());
        seq
    }
}

fn spans_on_disk(data: &std::path::Path, t: u8) -> u64 {
    let text = std::fs::read_to_string(run_dir(data, t).join("session.json")).unwrap();
    let session: traj_schema::Session = serde_json::from_str(&text).unwrap();
    session.lineage.spans
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_what_open_runs_need_and_late_spans_past_it_leave_the_run_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    std::fs::create_dir_all(data.join("runs")).unwrap();
    let mut s = shard(data, Duration::from_secs(60));

    // Trace 1: a whole run, then filler runs (traces 10..) so the records roll over several
    // segments, then trace 2: a span without its root (it stays open), then more filler.
    s.ingest(vec![span(1, 1, 0), span(1, 2, 1)]).await;
    for t in 10..30u8 {
        s.ingest(vec![span(t, 1, 0), span(t, 2, 1), span(t, 3, 1)])
            .await;
    }
    let open_seq = s.ingest(vec![span(2, 2, 1)]).await;
    for t in 30..50u8 {
        s.ingest(vec![span(t, 1, 0), span(t, 2, 1), span(t, 3, 1)])
            .await;
    }
    s.rm.tick(Instant::now() + Duration::from_secs(1));
    assert_eq!(spans_on_disk(data, 1), 2);
    assert_eq!(s.rm.open_runs(), 1, "trace 2 waits for its root");
    assert_eq!(
        s.floor.floor(),
        open_seq,
        "the open run holds its record up"
    );
    let segments_before = s.store.stats().segments;
    assert!(segments_before >= 4, "{segments_before} segments");

    // A clock two hours ahead: every sealed segment is older than the one-hour age, but only
    // those wholly below the open run's record may go.
    let policy = RetentionPolicy {
        max_age: Some(Duration::from_secs(3600)),
        max_bytes: None,
    };
    let two_hours_on = SystemTime::now() + Duration::from_secs(7200);
    let dropped = s
        .store
        .apply_retention(&policy, s.floor.floor(), two_hours_on)
        .unwrap();
    assert!(dropped.segments >= 1, "{dropped:?}");
    let first_kept = dropped.first_seq.unwrap();
    assert!(
        first_kept <= open_seq,
        "the open run's segment stays: {dropped:?}"
    );
    assert!(s.store.stats().segments >= 2, "later segments stay");
    assert!(s.store.read(1).is_err(), "trace 1's record was dropped");
    assert!(!s.store.read(open_seq).unwrap().is_empty());
    // Without the floor (the pass must respect it), more would have gone: a second pass with
    // the same floor drops nothing more.
    let again = s
        .store
        .apply_retention(&policy, s.floor.floor(), two_hours_on)
        .unwrap();
    assert_eq!(again.segments, 0);

    // A late span for trace 1: its earlier records are gone, so the run on disk is left whole
    // (2 spans); the span is kept in raw and counted.
    s.ingest(vec![span(1, 3, 1)]).await;
    s.rm.tick(Instant::now() + Duration::from_secs(2));
    assert_eq!(
        spans_on_disk(data, 1),
        2,
        "the run was not rebuilt from partial raw data"
    );
    assert_eq!(
        ReceiverMetrics::get(&s.metrics.late_records_past_retention),
        1
    );

    // The root of trace 2 arrives: the run completes from the records retention kept.
    s.ingest(vec![span(2, 1, 0)]).await;
    s.rm.tick(Instant::now() + Duration::from_secs(3));
    assert_eq!(s.rm.open_runs(), 0);
    assert_eq!(spans_on_disk(data, 2), 2);
    assert_eq!(s.floor.floor(), u64::MAX, "nothing open, nothing pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_startup_scan_starts_at_the_checkpoint_and_rebuilds_traces_across_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    std::fs::create_dir_all(data.join("runs")).unwrap();
    let t0 = Instant::now();
    let total;
    let open_seq;
    {
        // Finalized traces leave memory at once (late window 0), so checkpoints advance.
        let mut s = shard(data, Duration::ZERO);
        assert_eq!(
            s.rm.recover().scanned_from,
            0,
            "a first start scans everything"
        );
        s.ingest(vec![span(1, 1, 0), span(1, 2, 1)]).await;
        for t in 10..20u8 {
            s.ingest(vec![span(t, 1, 0), span(t, 2, 1)]).await;
        }
        s.rm.tick(t0 + Duration::from_secs(1));
        assert_eq!(spans_on_disk(data, 1), 2);
        // A rootless trace stays open and holds the checkpoint at its record (written with the
        // spill at least 5 minutes after the last one).
        open_seq = s.ingest(vec![span(2, 2, 1)]).await;
        s.rm.tick(t0 + Duration::from_secs(301));
        // A late span for trace 1, finalized again but not moved to disk before the "crash"
        // (same tick time: no spill).
        total = s.ingest(vec![span(1, 3, 1)]).await;
        s.rm.tick(t0 + Duration::from_secs(301));
        assert_eq!(spans_on_disk(data, 1), 3);
        s.store.clone().close().await.unwrap();
    }
    // The run of trace 1 is lost (as a crash before its write could lose it).
    std::fs::remove_dir_all(run_dir(data, 1)).unwrap();

    let mut s = shard(data, Duration::ZERO);
    let summary = s.rm.recover();
    assert_eq!(
        summary.scanned_from, open_seq,
        "the open run's record is the checkpoint"
    );
    assert_eq!(
        summary.records,
        total - open_seq + 1,
        "only records from the checkpoint on"
    );
    assert!(summary.records < total);
    assert_eq!(
        summary.reopened, 2,
        "trace 2 (open) and trace 1 (run missing)"
    );
    s.rm.tick(Instant::now() + Duration::from_secs(10));
    assert_eq!(
        spans_on_disk(data, 1),
        3,
        "rebuilt with its spans from below the checkpoint (via the on-disk index) and above"
    );
    assert_eq!(s.rm.open_runs(), 1, "trace 2 still waits for its root");
}

#[test]
fn a_batch_being_stored_holds_retention_below_its_seq() {
    let floor = RetentionFloor::new(2);
    floor.publish(0, u64::MAX);
    floor.publish(1, u64::MAX);
    let hold = floor.pending(17);
    assert_eq!(floor.floor(), 17);
    let for_shard_b = Arc::clone(&hold);
    drop(hold);
    assert_eq!(floor.floor(), 17, "shard b has not taken it yet");
    drop(for_shard_b);
    assert_eq!(floor.floor(), u64::MAX);
}
