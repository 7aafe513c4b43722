//! `traj serve`: runs the OTLP receiver until SIGINT/SIGTERM. Flags override the TOML config
//! file (`--config`), which overrides the defaults; the settings themselves (flags, keys,
//! defaults, docs) are defined once in `traj_receiver::settings`.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use traj_receiver::{Receiver, ReceiverConfig, ServeSettings};

#[derive(clap::Args)]
pub struct Args {
    /// TOML config file with any of the settings below (keys as the flags, `_` for `-`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The settings, defined once in `traj_receiver::settings` (boxed: keeps the `Command` enum
    /// small).
    #[command(flatten)]
    settings: Box<ServeSettings>,
}

/// Flags over the config file over the defaults.
fn build_config(args: Args) -> anyhow::Result<ReceiverConfig> {
    let file = match &args.config {
        Some(p) => ServeSettings::load(p)?,
        None => ServeSettings::default(),
    };
    Ok(args.settings.or(file).into_config()?)
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
    use traj_receiver::Fsync;

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
