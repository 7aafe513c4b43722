//! The sinks of the receiver's topology, fed by the ack path once a batch is durable: the run
//! manager (assembly sharded by trace over threads, each behind a bounded queue, woken by a ticker) and the
//! forwarders (one bounded queue per `--forward` target). Neither is ever waited on by an
//! acknowledgement; each is started here and stopped here, in the order shutdown needs.

use crate::config::ReceiverConfig;
use crate::forward::{Forwarder, Target};
use crate::receiver_metrics::ReceiverMetrics;
use crate::retention_floor::RetentionFloor;
use crate::run_manager::{
    tick_interval, RunManager, RunManagerConfig, RunMsg, Shard, TraceIndexDb,
};
use crate::server::ReceiverError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use traj_assemble::MappingRules;
use traj_store::{RetentionPolicy, Store};

/// Batches that may wait for each run-manager shard (each is small: span locations, no bytes).
const RUN_QUEUE: usize = 512;

/// The queues of the run-manager shards, indexed by [`Shard::of`].
#[derive(Clone)]
pub(crate) struct RunQueues(Vec<mpsc::Sender<RunMsg>>);

impl RunQueues {
    /// Shards (at least one).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// A slot in `shard`'s queue, reserved before the batch is stored.
    pub fn try_reserve(
        &self,
        shard: usize,
    ) -> Result<mpsc::Permit<'_, RunMsg>, mpsc::error::TrySendError<()>> {
        match self.0.get(shard) {
            Some(tx) => tx.try_reserve(),
            None => Err(mpsc::error::TrySendError::Closed(())),
        }
    }
}

/// The run-manager shards (one thread each), their queues and their ticker.
pub(crate) struct RunSink {
    /// Where the ack path hands stored batches (a slot is reserved before the append).
    pub queues: RunQueues,
    /// The lowest raw record retention must keep (fed by the ack path and the shards).
    pub floor: Arc<RetentionFloor>,
    threads: Vec<std::thread::JoinHandle<()>>,
    ticker: JoinHandle<()>,
    retention: Option<JoinHandle<()>>,
}

impl RunSink {
    pub(crate) fn start(
        cfg: &ReceiverConfig,
        store: Store,
        rules: MappingRules,
        metrics: &Arc<ReceiverMetrics>,
    ) -> Result<RunSink, ReceiverError> {
        let count = cfg.assembly_threads();
        let rules = Arc::new(rules);
        let index_path = TraceIndexDb::path_in(&cfg.data_dir);
        let index_db = TraceIndexDb::open(&index_path)?;
        let floor = RetentionFloor::new(count);
        let mut txs = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        let mut tick = Duration::from_secs(1);
        for index in 0..count {
            let (tx, rx) = mpsc::channel::<RunMsg>(RUN_QUEUE);
            let rm_cfg = RunManagerConfig {
                runs_dir: cfg.runs_dir(),
                grace_period: cfg.grace_period,
                idle_timeout: cfg.idle_timeout,
                late_window: cfg.late_window,
                // Runs are derived from the fsynced raw store and rebuilt at startup when missing
                // or torn, so they are written rename-only (4 fsyncs per run would cap
                // finalization at a few dozen runs per second).
                durability: traj_runs::Durability::RenameOnly,
                shard: Shard { index, count },
            };
            tick = tick_interval(&rm_cfg);
            let manager = RunManager::new(
                rm_cfg,
                store.clone(),
                Arc::clone(&index_db),
                Arc::clone(&floor),
                Arc::clone(&rules),
                Arc::clone(metrics),
            );
            let thread = std::thread::Builder::new()
                .name(format!("traj-runs-{index}"))
                .spawn(move || manager.run(rx))
                .map_err(|source| ReceiverError::Io {
                    path: PathBuf::from("<thread>"),
                    source,
                })?;
            txs.push(tx);
            threads.push(thread);
        }
        let queues = RunQueues(txs);
        let ticker = tokio::spawn(tick_loop(queues.clone(), tick));
        let retention = (!cfg.raw_retention.is_off()).then(|| {
            tokio::spawn(retention_loop(
                store.clone(),
                cfg.raw_retention,
                Arc::clone(&floor),
                Arc::clone(metrics),
            ))
        });
        Ok(RunSink {
            queues,
            floor,
            threads,
            ticker,
            retention,
        })
    }

    /// Stops the ticker, hands over what is queued (batches already acknowledged), then stops the
    /// shards without finalizing open runs (they resume at the next start).
    pub(crate) async fn stop(self) {
        if let Some(retention) = self.retention {
            retention.abort();
            let _ = retention.await;
        }
        self.ticker.abort();
        let _ = self.ticker.await;
        for tx in &self.queues.0 {
            // Waits for room in the queue: batches already acknowledged are handed over first.
            let _ = tx.send(RunMsg::Stop).await;
        }
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

/// How often retention looks for raw segments to drop.
const RETENTION_EVERY: Duration = Duration::from_secs(10);

/// Drops raw segments the policy lets go, below the retention floor, every [`RETENTION_EVERY`].
async fn retention_loop(
    store: Store,
    policy: RetentionPolicy,
    floor: Arc<RetentionFloor>,
    metrics: Arc<ReceiverMetrics>,
) {
    let mut iv = tokio::time::interval(RETENTION_EVERY);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        let (store, floor) = (store.clone(), Arc::clone(&floor));
        let pass = tokio::task::spawn_blocking(move || {
            store.apply_retention(&policy, floor.floor(), std::time::SystemTime::now())
        })
        .await;
        match pass {
            Ok(Ok(dropped)) => {
                ReceiverMetrics::add(&metrics.raw_segments_dropped, dropped.segments);
                ReceiverMetrics::add(&metrics.raw_bytes_dropped, dropped.bytes);
                if let Some(first) = dropped.first_seq {
                    metrics
                        .raw_first_seq
                        .store(first, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "retention pass failed; retried later"),
            Err(e) => tracing::error!(error = %e, "retention pass panicked; retried later"),
        }
    }
}

/// Wakes every shard every `tick` (finalization timers) until their queues close.
async fn tick_loop(queues: RunQueues, tick: Duration) {
    let mut iv = tokio::time::interval(tick);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        let mut closed = 0;
        for tx in &queues.0 {
            if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(RunMsg::Tick) {
                closed += 1;
            }
        }
        if closed == queues.len() {
            break;
        }
    }
}

/// The forwarders' delivery tasks (the [`Forwarder`] handle goes to the ack path).
pub(crate) struct ForwardSink {
    tasks: Vec<JoinHandle<()>>,
}

impl ForwardSink {
    /// Starts one delivery task per `cfg.forward` target; none when there is no target.
    pub(crate) fn start(
        cfg: &ReceiverConfig,
        metrics: &Arc<ReceiverMetrics>,
    ) -> Result<(Forwarder, ForwardSink), ReceiverError> {
        let targets = cfg
            .forward
            .iter()
            .map(|u| Target::parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        if targets.is_empty() {
            return Ok((Forwarder::default(), ForwardSink { tasks: Vec::new() }));
        }
        let (forwarder, tasks) = Forwarder::start(
            targets,
            cfg.forward_queue,
            cfg.forward_attempts,
            Arc::clone(metrics),
        );
        Ok((forwarder, ForwardSink { tasks }))
    }

    /// Gives each delivery task up to `timeout` to drain its queue (the queues close once the
    /// ack path, the last holder of the [`Forwarder`], is gone), then abandons it.
    pub(crate) async fn stop(self, timeout: Duration) {
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(timeout, task).await.is_err() {
                abort.abort();
            }
        }
    }
}
