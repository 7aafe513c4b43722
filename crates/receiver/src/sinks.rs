//! The sinks of the receiver's topology, fed by the ack path once a batch is durable: the run
//! manager (assembly on its own thread, behind a bounded queue, woken by a ticker) and the
//! forwarders (one bounded queue per `--forward` target). Neither is ever waited on by an
//! acknowledgement; each is started here and stopped here, in the order shutdown needs.

use crate::config::ReceiverConfig;
use crate::forward::{Forwarder, Target};
use crate::receiver_metrics::ReceiverMetrics;
use crate::run_manager::{tick_interval, RunManager, RunManagerConfig, RunMsg};
use crate::server::ReceiverError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use traj_assemble::MappingRules;
use traj_store::Store;

/// Batches that may wait for the run manager.
const RUN_QUEUE: usize = 1024;

/// The run manager thread, its queue and its ticker.
pub(crate) struct RunSink {
    /// Where the ack path hands stored batches (a slot is reserved before the append).
    pub tx: mpsc::Sender<RunMsg>,
    thread: std::thread::JoinHandle<()>,
    ticker: JoinHandle<()>,
}

impl RunSink {
    pub(crate) fn start(
        cfg: &ReceiverConfig,
        store: Store,
        rules: MappingRules,
        metrics: &Arc<ReceiverMetrics>,
    ) -> Result<RunSink, ReceiverError> {
        let (tx, rx) = mpsc::channel::<RunMsg>(RUN_QUEUE);
        let rm_cfg = RunManagerConfig {
            runs_dir: cfg.runs_dir(),
            grace_period: cfg.grace_period,
            idle_timeout: cfg.idle_timeout,
            // Runs are derived from the fsynced raw store and rebuilt at startup when missing or
            // torn, so they are written rename-only (4 fsyncs per run would cap finalization
            // at a few dozen runs per second).
            durability: traj_runs::Durability::RenameOnly,
        };
        let tick = tick_interval(&rm_cfg);
        let manager = RunManager::new(rm_cfg, store, Arc::new(rules), Arc::clone(metrics));
        let thread = std::thread::Builder::new()
            .name("traj-run-manager".into())
            .spawn(move || manager.run(rx))
            .map_err(|source| ReceiverError::Io {
                path: PathBuf::from("<thread>"),
                source,
            })?;
        let ticker = tokio::spawn(tick_loop(tx.clone(), tick));
        Ok(RunSink { tx, thread, ticker })
    }

    /// Stops the ticker, hands over what is queued (batches already acknowledged), then stops the
    /// manager without finalizing open runs (they resume at the next start).
    pub(crate) async fn stop(self) {
        self.ticker.abort();
        let _ = self.ticker.await;
        // Waits for room in the queue: batches already acknowledged are handed over first.
        let _ = self.tx.send(RunMsg::Stop).await;
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

/// Wakes the run manager every `tick` (finalization timers) until its queue closes.
async fn tick_loop(tx: mpsc::Sender<RunMsg>, tick: Duration) {
    let mut iv = tokio::time::interval(tick);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(RunMsg::Tick) {
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
