//! Starts and stops a whole receiver: opens the raw store, starts the run-manager thread, the
//! forwarders, and the gRPC and HTTP listeners (TCP_NODELAY), writes `DATA/receiver.json` with the
//! bound addresses, and shuts everything down in order. With TLS configured both listeners speak
//! only TLS.

use crate::auth::BearerToken;
use crate::config::{ConfigError, Fsync, ReceiverConfig};
use crate::forward::{Forwarder, Target};
use crate::grpc_server::{
    GrpcLogsService, GrpcTraceService, OtlpStatusCodes, RawLogsServiceServer, RawTraceServiceServer,
};
use crate::http_server::{router, HttpState};
use crate::ingest::Ingest;
use crate::receiver_metrics::ReceiverMetrics;
use crate::run_manager::{tick_interval, RunManager, RunManagerConfig, RunMsg};
use crate::tls::{TlsListener, TlsMaterial};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;
use traj_assemble::MappingRules;
use traj_store::{FsyncPolicy, Store, StoreConfig, StoreError};

/// Name of the file in the data dir that records the bound addresses.
pub const RECEIVER_INFO_FILE: &str = "receiver.json";

/// Batches that may wait for the run manager.
const RUN_QUEUE: usize = 1024;
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
}

/// Serves the HTTP router on `listener` until `stop` turns true.
fn spawn_http<L>(listener: L, app: axum::Router, mut stop: watch::Receiver<bool>) -> JoinHandle<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "HTTP server failed");
        }
    })
}

/// A running receiver.
pub struct Receiver {
    grpc_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    metrics: Arc<ReceiverMetrics>,
    stop_tx: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
    ticker: JoinHandle<()>,
    forward_tasks: Vec<JoinHandle<()>>,
    manager: Option<std::thread::JoinHandle<()>>,
    /// Used only to tell the run manager to stop.
    runs_tx: tokio::sync::mpsc::Sender<RunMsg>,
    store: Store,
}

impl Receiver {
    /// Opens the store under `cfg.data_dir`, starts everything and returns once both listeners
    /// are bound (port 0 gets an OS-chosen port: see [`Receiver::grpc_addr`]).
    pub async fn start(cfg: ReceiverConfig) -> Result<Receiver, ReceiverError> {
        cfg.check()?;
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
        let mut store_cfg = StoreConfig::new(&cfg.data_dir);
        store_cfg.fsync = match cfg.fsync {
            Fsync::Always => FsyncPolicy::Always,
            Fsync::Interval(d) => FsyncPolicy::Interval(d),
            Fsync::Never => FsyncPolicy::Never,
        };
        let (store, report) = Store::open(store_cfg)?;
        tracing::info!(dir = %cfg.data_dir.join("raw").display(), ?report, "raw store opened");
        let metrics = Arc::new(ReceiverMetrics::default());

        // Run manager thread.
        let (runs_tx, runs_rx) = tokio::sync::mpsc::channel::<RunMsg>(RUN_QUEUE);
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
        let manager = RunManager::new(rm_cfg, store.clone(), Arc::new(rules), Arc::clone(&metrics));
        let manager = std::thread::Builder::new()
            .name("traj-run-manager".into())
            .spawn(move || manager.run(runs_rx))
            .map_err(|source| ReceiverError::Io {
                path: PathBuf::from("<thread>"),
                source,
            })?;
        let tick_tx = runs_tx.clone();
        let stop_runs_tx = runs_tx.clone();
        let ticker = tokio::spawn(async move {
            let mut iv = tokio::time::interval(tick);
            iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                iv.tick().await;
                if let Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) =
                    tick_tx.try_send(RunMsg::Tick)
                {
                    break;
                }
            }
        });

        // Forwarders.
        let targets = cfg
            .forward
            .iter()
            .map(|u| Target::parse(u).map_err(ConfigError::Invalid))
            .collect::<Result<Vec<_>, _>>()?;
        let (forwarder, forward_tasks) = if targets.is_empty() {
            (Forwarder::default(), Vec::new())
        } else {
            Forwarder::start(
                targets,
                cfg.forward_queue,
                cfg.forward_attempts,
                Arc::clone(&metrics),
            )
        };

        let ingest = Arc::new(Ingest {
            store: store.clone(),
            runs_tx,
            in_flight: Arc::new(Semaphore::new(cfg.max_spans_in_flight)),
            max_spans_in_flight: cfg.max_spans_in_flight,
            max_open_runs: cfg.max_open_runs,
            forwarder,
            metrics: Arc::clone(&metrics),
            redact: cfg.redact_before_store.clone().map(Arc::new),
        });

        let (stop_tx, stop_rx) = watch::channel(false);
        let mut listeners = Vec::new();
        let mut grpc_addr = None;
        let mut http_addr = None;
        if let Some(addr) = cfg.grpc_addr {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| ReceiverError::Bind { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| ReceiverError::Bind { addr, source })?;
            grpc_addr = Some(bound);
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            let svc = OtlpStatusCodes {
                inner: RawTraceServiceServer::new(GrpcTraceService {
                    ingest: Arc::clone(&ingest),
                })
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(cfg.max_request_bytes),
                auth: auth.clone(),
            };
            let logs_svc = OtlpStatusCodes {
                inner: RawLogsServiceServer::new(GrpcLogsService {
                    ingest: Arc::clone(&ingest),
                })
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(cfg.max_request_bytes),
                auth: auth.clone(),
            };
            let mut stop = stop_rx.clone();
            let mut builder = tonic::transport::Server::builder();
            if let Some(tls) = &tls {
                let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
                builder = builder
                    .tls_config(
                        tonic::transport::ServerTlsConfig::new()
                            .identity(identity)
                            .timeout(crate::tls::HANDSHAKE_TIMEOUT),
                    )
                    .map_err(|e| ConfigError::Invalid(format!("gRPC TLS: {e}")))?;
            }
            listeners.push(tokio::spawn(async move {
                let result = builder
                    .add_service(svc)
                    .add_service(logs_svc)
                    .serve_with_incoming_shutdown(incoming, async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await;
                if let Err(e) = result {
                    tracing::error!(error = %e, "gRPC server failed");
                }
            }));
            tracing::info!(
                addr = %bound,
                tls = tls.is_some(),
                "OTLP/gRPC listening (TraceService, LogsService)"
            );
        }
        if let Some(addr) = cfg.http_addr {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| ReceiverError::Bind { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| ReceiverError::Bind { addr, source })?;
            http_addr = Some(bound);
            let app = router(Arc::new(HttpState {
                ingest: Arc::clone(&ingest),
                max_request_bytes: cfg.max_request_bytes,
                auth: auth.clone(),
            }));
            let stop = stop_rx.clone();
            match &tls {
                Some(tls) => {
                    let listener = TlsListener::start(listener, Arc::clone(&tls.http))
                        .map_err(|source| ReceiverError::Bind { addr, source })?;
                    listeners.push(spawn_http(listener, app, stop));
                }
                None => {
                    use axum::serve::ListenerExt;
                    let listener = listener.tap_io(|tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                    listeners.push(spawn_http(listener, app, stop));
                }
            }
            tracing::info!(
                addr = %bound,
                tls = tls.is_some(),
                "OTLP/HTTP listening (/v1/traces, /v1/logs, /metrics, /healthz)"
            );
        }
        drop(ingest);

        let info = serde_json::json!({
            "grpc": grpc_addr.map(|a| a.to_string()),
            "http": http_addr.map(|a| a.to_string()),
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
        Ok(Receiver {
            grpc_addr,
            http_addr,
            metrics,
            stop_tx,
            listeners,
            ticker,
            forward_tasks,
            manager: Some(manager),
            runs_tx: stop_runs_tx,
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
        let _ = self.stop_tx.send(true);
        for l in self.listeners.drain(..) {
            let abort = l.abort_handle();
            if tokio::time::timeout(STOP_TIMEOUT, l).await.is_err() {
                tracing::warn!("a listener did not stop in time; aborting it");
                abort.abort();
            }
        }
        self.ticker.abort();
        let _ = (&mut self.ticker).await;
        // Waits for room in the queue: batches already acknowledged are handed over first.
        let _ = self.runs_tx.send(RunMsg::Stop).await;
        if let Some(manager) = self.manager.take() {
            let _ = tokio::task::spawn_blocking(move || manager.join()).await;
        }
        for f in self.forward_tasks.drain(..) {
            let abort = f.abort_handle();
            if tokio::time::timeout(STOP_TIMEOUT, f).await.is_err() {
                abort.abort();
            }
        }
        if let Err(e) = self.store.close().await {
            tracing::error!(error = %e, "raw store close failed");
        }
        tracing::info!("receiver stopped");
    }
}
