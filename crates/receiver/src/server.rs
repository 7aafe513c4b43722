//! Starts and stops a whole receiver, and is where its topology is wired:
//!
//! ```text
//! sources (sources.rs)      ack path (ingest.rs)                     sinks (sinks.rs)
//! gRPC listener ─┐                                               ┌─> run manager → runs/
//!                ├─> check → reserve → raw store append → hand off┤
//! HTTP listener ─┘                     (await commit)    then ack └─> forwarders (traces)
//! ```
//!
//! `start` reads the inputs (TLS, token, mapping rules), opens the raw store, starts the sinks,
//! builds the ack path over them and binds the sources, then writes `DATA/receiver.json` with
//! the bound addresses. `shutdown` stops them in the reverse order: sources, run manager,
//! forwarders, store.

use crate::auth::BearerToken;
use crate::config::{ConfigError, Fsync, ReceiverConfig};
use crate::ingest::Ingest;
use crate::receiver_metrics::ReceiverMetrics;
use crate::sinks::{ForwardSink, RunSink};
use crate::sources::{self, SourceContext};
use crate::tls::TlsMaterial;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use traj_assemble::MappingRules;
use traj_store::{FsyncPolicy, Store, StoreConfig, StoreError};

/// Name of the file in the data dir that records the bound addresses.
pub const RECEIVER_INFO_FILE: &str = "receiver.json";

/// How long shutdown waits for listeners and forwarders before abandoning them.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the receiver could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("raw store: {0}")]
    Store(#[from] StoreError),
    #[error("mapping rules {path}: {message}")]
    Rules { path: PathBuf, message: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Runs(#[from] traj_runs::RunsError),
    #[error(transparent)]
    Index(#[from] crate::run_manager::IndexError),
}

/// A running receiver.
pub struct Receiver {
    grpc_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    metrics: Arc<ReceiverMetrics>,
    stop_tx: watch::Sender<bool>,
    sources: Vec<JoinHandle<()>>,
    runs: RunSink,
    forwards: ForwardSink,
    store: Store,
}

impl Receiver {
    /// Opens the store under `cfg.data_dir`, starts everything and returns once both listeners
    /// are bound (port 0 gets an OS-chosen port: see [`Receiver::grpc_addr`]).
    ///
    /// The topology, in the order data flows backwards from where it ends up: the sinks first
    /// (run manager, forwarders), then the ack path that feeds them, then the sources that feed
    /// the ack path.
    pub async fn start(cfg: ReceiverConfig) -> Result<Receiver, ReceiverError> {
        cfg.check()?;
        let inputs = Inputs::load(&cfg)?;
        let store = open_store(&cfg)?;
        let metrics = Arc::new(ReceiverMetrics::default());

        // Sinks: they get a batch only once it is durable and never hold up an acknowledgement.
        let runs = RunSink::start(&cfg, store.clone(), inputs.rules, &metrics)?;
        let (forwarder, forwards) = ForwardSink::start(&cfg, &metrics)?;

        // Ack path: check, reserve, append to the raw store and await its commit, hand off to
        // the sinks, acknowledge.
        let kib_in_flight = cfg
            .max_bytes_in_flight
            .div_ceil(1024)
            .clamp(1, Semaphore::MAX_PERMITS);
        let ingest = Arc::new(Ingest {
            store: store.clone(),
            runs: runs.queues.clone(),
            floor: Arc::clone(&runs.floor),
            in_flight: Arc::new(Semaphore::new(cfg.max_spans_in_flight)),
            max_spans_in_flight: cfg.max_spans_in_flight,
            max_open_runs: cfg.max_open_runs,
            bytes_in_flight: Arc::new(Semaphore::new(kib_in_flight)),
            max_kib_in_flight: kib_in_flight,
            forwarder,
            metrics: Arc::clone(&metrics),
            redact: cfg.redact_before_store.clone().map(Arc::new),
        });

        // Sources: decode and authenticate, then call the ack path.
        let (stop_tx, stop) = watch::channel(false);
        let ctx = SourceContext {
            ingest,
            tls: inputs.tls,
            auth: inputs.auth,
            max_request_bytes: cfg.max_request_bytes,
            stop,
        };
        let grpc = match cfg.grpc_addr {
            Some(addr) => Some(sources::grpc(addr, &ctx).await?),
            None => None,
        };
        let http = match cfg.http_addr {
            Some(addr) => Some(sources::http(addr, &ctx).await?),
            None => None,
        };
        // From here the sources hold the only references to the ack path.
        drop(ctx);

        let (grpc_addr, http_addr) = (grpc.as_ref().map(|s| s.addr), http.as_ref().map(|s| s.addr));
        write_info(&cfg, grpc_addr, http_addr)?;
        Ok(Receiver {
            grpc_addr,
            http_addr,
            metrics,
            stop_tx,
            sources: grpc.into_iter().chain(http).map(|s| s.task).collect(),
            runs,
            forwards,
            store,
        })
    }

    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc_addr
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    pub fn metrics(&self) -> Arc<ReceiverMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Stops accepting, lets in-flight requests finish (each acknowledged batch is already
    /// durable), stops the run manager without finalizing open runs (they resume at the next
    /// start), gives forwarders a moment to drain, and closes the store.
    pub async fn shutdown(mut self) {
        // Sources first: no new requests; in-flight ones finish (and are durable when acked).
        let _ = self.stop_tx.send(true);
        for source in self.sources.drain(..) {
            let abort = source.abort_handle();
            if tokio::time::timeout(STOP_TIMEOUT, source).await.is_err() {
                tracing::warn!("a listener did not stop in time; aborting it");
                abort.abort();
            }
        }
        // Then the sinks, then the store they read from.
        self.runs.stop().await;
        self.forwards.stop(STOP_TIMEOUT).await;
        if let Err(e) = self.store.close().await {
            tracing::error!(error = %e, "raw store close failed");
        }
        tracing::info!("receiver stopped");
    }
}

/// What `start` reads from disk before anything runs: TLS material, the bearer token, the
/// mapping rules (and the runs directory it makes sure exists).
struct Inputs {
    tls: Option<TlsMaterial>,
    auth: Option<BearerToken>,
    rules: MappingRules,
}

impl Inputs {
    fn load(cfg: &ReceiverConfig) -> Result<Inputs, ReceiverError> {
        let tls = cfg.tls.as_ref().map(TlsMaterial::load).transpose()?;
        let auth = match &cfg.auth_token_file {
            Some(path) => Some(BearerToken::load(path)?),
            None => None,
        };
        let rules = match &cfg.mapping_rules {
            None => MappingRules::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ReceiverError::Io {
                    path: path.clone(),
                    source,
                })?;
                MappingRules::from_toml_str(&text).map_err(|e| ReceiverError::Rules {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            }
        };
        std::fs::create_dir_all(cfg.runs_dir()).map_err(|source| ReceiverError::Io {
            path: cfg.runs_dir(),
            source,
        })?;
        Ok(Inputs { tls, auth, rules })
    }
}

/// Opens (and recovers) the raw store under `cfg.data_dir` with the configured fsync policy.
fn open_store(cfg: &ReceiverConfig) -> Result<Store, ReceiverError> {
    let mut store_cfg = StoreConfig::new(&cfg.data_dir);
    store_cfg.fsync = match cfg.fsync {
        Fsync::Always => FsyncPolicy::Always,
        Fsync::Interval(d) => FsyncPolicy::Interval(d),
        Fsync::Never => FsyncPolicy::Never,
    };
    let (store, report) = Store::open(store_cfg)?;
    tracing::info!(dir = %cfg.data_dir.join("raw").display(), ?report, "raw store opened");
    Ok(store)
}

/// Writes `DATA/receiver.json` (bound addresses, pid) atomically, for scripts using port 0.
fn write_info(
    cfg: &ReceiverConfig,
    grpc: Option<SocketAddr>,
    http: Option<SocketAddr>,
) -> Result<(), ReceiverError> {
    let info = serde_json::json!({
        "grpc": grpc.map(|a| a.to_string()),
        "http": http.map(|a| a.to_string()),
        "pid": std::process::id(),
        "data_dir": cfg.data_dir,
    });
    let info_path = cfg.data_dir.join(RECEIVER_INFO_FILE);
    traj_runs::write_atomic_with(
        &info_path,
        info.to_string().as_bytes(),
        traj_runs::Durability::RenameOnly,
    )?;
    tracing::info!(
        data_dir = %cfg.data_dir.display(),
        runs = %cfg.runs_dir().display(),
        info = %info_path.display(),
        "receiver started"
    );
    Ok(())
}
