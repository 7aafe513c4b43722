//! `traj serve`: runs the OTLP receiver until SIGINT/SIGTERM. Flags override the TOML config
//! file (`--config`), which overrides the defaults.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use traj_receiver::config::{parse_duration, parse_listen, ConfigFile, Fsync};
use traj_receiver::{Receiver, ReceiverConfig};

#[derive(clap::Args)]
pub struct Args {
    /// Data directory: raw store (`raw/`), assembled runs (`runs/`), `receiver.json`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// OTLP/gRPC listen address (`off` to disable) [default: 127.0.0.1:4317].
    #[arg(long)]
    grpc: Option<String>,
    /// OTLP/HTTP listen address, also /metrics and /healthz (`off` to disable) [default: 127.0.0.1:4318].
    #[arg(long)]
    http: Option<String>,
    /// Tee accepted batches to this OTLP endpoint (repeatable): grpc://host:port or
    /// http://host:port (gRPC), http://host:port/v1/traces (HTTP/protobuf).
    #[arg(long)]
    forward: Vec<String>,
    /// TOML config file with any of these settings (keys as flags, `_` for `-`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Raw store durability: always | never | interval:<duration> [default: always].
    #[arg(long)]
    fsync: Option<String>,
    /// Maximum request size after decompression, bytes [default: 67108864].
    #[arg(long)]
    max_request_bytes: Option<usize>,
    /// Finalize a run this long after its root span ended and nothing else arrived [default: 2s].
    #[arg(long)]
    grace_period: Option<String>,
    /// Finalize a run without root span after this long without spans [default: 60s].
    #[arg(long)]
    idle_timeout: Option<String>,
    /// Open runs held in memory before new batches are refused (retryable) [default: 10000].
    #[arg(long)]
    max_open_runs: Option<usize>,
    /// Spans being stored at once before new batches are refused (retryable) [default: 100000].
    #[arg(long)]
    max_spans_in_flight: Option<usize>,
    /// Mapping rules (TOML) for foreign GenAI/OpenInference traces [default: built-in rules].
    #[arg(long)]
    mapping_rules: Option<PathBuf>,
    /// Batches queued per forward target before dropping [default: 1024].
    #[arg(long)]
    forward_queue: Option<usize>,
    /// Delivery attempts per batch and forward target [default: 20].
    #[arg(long)]
    forward_attempts: Option<u32>,
    /// Authentication, TLS and receive-side redaction (boxed: keeps the `Command` enum small).
    #[command(flatten)]
    security: Box<SecurityArgs>,
}

/// The security flags of `traj serve`.
#[derive(clap::Args)]
struct SecurityArgs {
    /// File holding the bearer token clients must send (`Authorization: Bearer <token>`, gRPC
    /// metadata or HTTP header; /healthz stays open) [default: no authentication].
    #[arg(long)]
    auth_token_file: Option<PathBuf>,
    /// Serve both transports over TLS with this PEM certificate chain (needs --tls-key).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Redact span / span-event attribute strings before the raw store append (policy:
    /// `redact_policy` in the config file, else the default source policy).
    #[arg(long)]
    redact_before_store: bool,
}

fn build_config(args: Args) -> anyhow::Result<ReceiverConfig> {
    let file = match &args.config {
        Some(p) => ConfigFile::load(p)?,
        None => ConfigFile::default(),
    };
    let receive_policy = file.receive_policy(args.security.redact_before_store);
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .context("--data-dir is required (or data_dir in the config file)")?;
    let mut cfg = ReceiverConfig::new(data_dir);
    if let Some(a) = args.grpc.or(file.grpc) {
        cfg.grpc_addr = parse_listen(&a)?;
    }
    if let Some(a) = args.http.or(file.http) {
        cfg.http_addr = parse_listen(&a)?;
    }
    cfg.forward = if args.forward.is_empty() {
        file.forward.unwrap_or_default()
    } else {
        args.forward
    };
    if let Some(f) = args.fsync.or(file.fsync) {
        cfg.fsync = Fsync::parse(&f)?;
    }
    if let Some(n) = args.max_request_bytes.or(file.max_request_bytes) {
        cfg.max_request_bytes = n;
    }
    if let Some(d) = args.grace_period.or(file.grace_period) {
        cfg.grace_period = parse_duration(&d)?;
    }
    if let Some(d) = args.idle_timeout.or(file.idle_timeout) {
        cfg.idle_timeout = parse_duration(&d)?;
    }
    if let Some(n) = args.max_open_runs.or(file.max_open_runs) {
        cfg.max_open_runs = n;
    }
    if let Some(n) = args.max_spans_in_flight.or(file.max_spans_in_flight) {
        cfg.max_spans_in_flight = n;
    }
    cfg.mapping_rules = args.mapping_rules.or(file.mapping_rules);
    if let Some(n) = args.forward_queue.or(file.forward_queue) {
        cfg.forward_queue = n;
    }
    if let Some(n) = args.forward_attempts.or(file.forward_attempts) {
        cfg.forward_attempts = n;
    }
    cfg.auth_token_file = args.security.auth_token_file.or(file.auth_token_file);
    cfg.tls = ConfigFile::tls_files(
        args.security.tls_cert.or(file.tls_cert),
        args.security.tls_key.or(file.tls_key),
    )?;
    cfg.redact_before_store = receive_policy;
    cfg.check()?;
    Ok(cfg)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::init_logs();
    let cfg = build_config(args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(async move {
        let data_dir = cfg.data_dir.clone();
        let receiver = Receiver::start(cfg).await?;
        let show = |a: Option<std::net::SocketAddr>| a.map_or("off".to_string(), |a| a.to_string());
        println!(
            "traj serve: grpc={} http={} data={}",
            show(receiver.grpc_addr()),
            show(receiver.http_addr()),
            data_dir.display()
        );
        wait_for_signal().await?;
        tracing::info!("shutting down: no new requests; acknowledged batches are stored");
        receiver.shutdown().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot wait for SIGINT")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn flags_override_the_config_file_which_overrides_defaults() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("serve.toml");
        std::fs::write(
            &file,
            "data_dir = \"/data/from-file\"\ngrace_period = \"5s\"\nidle_timeout = \"90s\"\n\
             grpc = \"off\"\nforward = [\"grpc://127.0.0.1:9\"]\nmax_open_runs = 7\n",
        )
        .unwrap();
        let w = Wrap::try_parse_from([
            "x",
            "--config",
            file.to_str().unwrap(),
            "--grace-period",
            "300ms",
            "--fsync",
            "never",
        ])
        .unwrap();
        let cfg = build_config(w.args).unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("/data/from-file"));
        assert_eq!(cfg.grace_period, std::time::Duration::from_millis(300));
        assert_eq!(cfg.idle_timeout, std::time::Duration::from_secs(90));
        assert_eq!(cfg.grpc_addr, None);
        assert_eq!(cfg.http_addr, Some("127.0.0.1:4318".parse().unwrap()));
        assert_eq!(cfg.forward, vec!["grpc://127.0.0.1:9".to_string()]);
        assert_eq!(cfg.max_open_runs, 7);
        assert_eq!(cfg.fsync, Fsync::Never);
        assert_eq!(cfg.auth_token_file, None);
        assert_eq!(cfg.tls, None);
        assert!(cfg.redact_before_store.is_none());

        std::fs::write(
            &file,
            "data_dir = \"/d\"\nauth_token_file = \"/etc/traj/token\"\ntls_cert = \"c.pem\"\n\
             tls_key = \"k.pem\"\nredact_before_store = true\n\
             [redact_policy]\nname = \"mail-only\"\nkinds = [\"email\"]\n",
        )
        .unwrap();
        let w = Wrap::try_parse_from(["x", "--config", file.to_str().unwrap()]).unwrap();
        let cfg = build_config(w.args).unwrap();
        assert_eq!(cfg.auth_token_file, Some(PathBuf::from("/etc/traj/token")));
        let tls = cfg.tls.unwrap();
        assert_eq!((tls.cert, tls.key), ("c.pem".into(), "k.pem".into()));
        assert_eq!(cfg.redact_before_store.unwrap().name(), "mail-only");
        let w = Wrap::try_parse_from(["x", "--data-dir", "/d", "--redact-before-store"]).unwrap();
        let cfg = build_config(w.args).unwrap();
        assert_eq!(cfg.redact_before_store.unwrap().name(), "traj-source");
        // Loopback by default.
        assert!(cfg.grpc_addr.unwrap().ip().is_loopback());
        assert!(cfg.http_addr.unwrap().ip().is_loopback());
        let w = Wrap::try_parse_from(["x", "--data-dir", "/d", "--tls-cert", "c.pem"]).unwrap();
        assert!(
            build_config(w.args).is_err(),
            "--tls-cert without --tls-key"
        );

        let w = Wrap::try_parse_from(["x", "--grace-period", "1s"]).unwrap();
        assert!(build_config(w.args).is_err(), "--data-dir is required");
        let w = Wrap::try_parse_from(["x", "--data-dir", "/d", "--forward", "ftp://x:1"]).unwrap();
        assert!(build_config(w.args).is_err(), "bad forward URL");
    }
}
