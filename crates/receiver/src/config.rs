//! The receiver's resolved configuration ([`ReceiverConfig`]: typed listen addresses, limits,
//! timers and caps) and the parsers of its string forms. The settings a user writes (flags, the
//! TOML file) and their defaults are defined once, in [`crate::settings`].

use crate::settings::ServeSettings;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default maximum request size after decompression: 64 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 64 << 20;

/// How the raw store makes acknowledged batches durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fsync {
    /// fdatasync every commit group before acknowledging (default).
    #[default]
    Always,
    /// Acknowledge once written; fsync at most this long after.
    Interval(Duration),
    /// Never fsync (tests, throw-away data).
    Never,
}

impl Fsync {
    /// Parses `always`, `never` or `interval:<duration>` (e.g. `interval:100ms`).
    pub fn parse(s: &str) -> Result<Fsync, ConfigError> {
        match s.trim() {
            "always" => Ok(Fsync::Always),
            "never" => Ok(Fsync::Never),
            other => match other.strip_prefix("interval:") {
                Some(d) => Ok(Fsync::Interval(parse_duration(d)?)),
                None => Err(ConfigError::Invalid(format!(
                    "fsync policy {other:?}: expected always, never or interval:<duration>"
                ))),
            },
        }
    }
}

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// Everything the receiver needs to run.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Holds `raw/` (the store), `runs/` (assembled runs) and `receiver.json` (bound addresses).
    pub data_dir: PathBuf,
    /// gRPC listen address (`None` disables gRPC).
    pub grpc_addr: Option<SocketAddr>,
    /// HTTP listen address (`None` disables HTTP, including /metrics and /healthz).
    pub http_addr: Option<SocketAddr>,
    /// OTLP endpoints every accepted batch is teed to.
    pub forward: Vec<String>,
    pub fsync: Fsync,
    /// Maximum request size after decompression.
    pub max_request_bytes: usize,
    /// How long after the root span ended a run is finalized.
    pub grace_period: Duration,
    /// How long a run without a root span may stay idle before it is finalized anyway.
    pub idle_timeout: Duration,
    /// How long finalized traces stay indexed in memory before moving to the on-disk index.
    pub late_window: Duration,
    /// Raw-store retention (age and/or size; off by default).
    pub raw_retention: traj_store::RetentionPolicy,
    /// Open runs held in memory; beyond this new batches are refused (retryable).
    pub max_open_runs: usize,
    /// Spans accepted but not yet stored; beyond this new batches are refused (retryable).
    pub max_spans_in_flight: usize,
    /// Request bytes being checked and stored at once; beyond this new requests are refused
    /// (retryable).
    pub max_bytes_in_flight: usize,
    /// Run-assembly threads (0: one per core).
    pub assembly_threads: usize,
    /// Mapping rules for foreign traces (`None`: the built-in defaults).
    pub mapping_rules: Option<PathBuf>,
    /// Batches queued per forward target before new ones are dropped (and counted).
    pub forward_queue: usize,
    /// Attempts per batch and forward target before it is dropped (and counted).
    pub forward_attempts: u32,
    /// File holding the bearer token clients must send (`None`: no authentication).
    pub auth_token_file: Option<PathBuf>,
    /// Serve both transports over TLS with this certificate chain and key (`None`: plain text).
    pub tls: Option<TlsFiles>,
    /// Redact span and span-event attribute strings with this policy before the raw store
    /// append (`None`: store what arrives).
    pub redact_before_store: Option<traj_redact::Policy>,
}

/// PEM files of the server certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ReceiverConfig {
    /// The defaults of [`ServeSettings`] (gRPC on 127.0.0.1:4317, HTTP on 127.0.0.1:4318,
    /// fsync always, ...) with `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let settings = ServeSettings {
            data_dir: Some(data_dir.into()),
            ..ServeSettings::default()
        };
        match settings.into_config() {
            Ok(cfg) => cfg,
            // The defaults are constants; `settings::tests` resolves them.
            Err(e) => unreachable!("the default serve settings do not resolve: {e}"),
        }
    }

    /// The directory assembled runs are written to.
    pub fn runs_dir(&self) -> PathBuf {
        self.data_dir.join("runs")
    }

    /// Run-assembly threads to start: `assembly_threads`, or one per core when 0.
    pub fn assembly_threads(&self) -> usize {
        match self.assembly_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Checks the values that would make the receiver misbehave.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.grpc_addr.is_none() && self.http_addr.is_none() {
            return Err(ConfigError::Invalid(
                "neither gRPC nor HTTP is enabled".into(),
            ));
        }
        for (name, v) in [
            ("max_request_bytes", self.max_request_bytes),
            ("max_open_runs", self.max_open_runs),
            ("max_spans_in_flight", self.max_spans_in_flight),
            ("max_bytes_in_flight", self.max_bytes_in_flight),
            ("forward_queue", self.forward_queue),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be > 0")));
            }
        }
        for url in &self.forward {
            crate::forward::Target::parse(url)?;
        }
        Ok(())
    }
}

impl TlsFiles {
    /// The TLS files, if both or neither of `cert` and `key` are given.
    pub fn pair(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Option<TlsFiles>, ConfigError> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
            (None, None) => Ok(None),
            _ => Err(ConfigError::Invalid(
                "tls_cert and tls_key must be given together".into(),
            )),
        }
    }
}

/// Parses a listen address; `off` or `none` disables the listener.
pub fn parse_listen(s: &str) -> Result<Option<SocketAddr>, ConfigError> {
    match s.trim() {
        "off" | "none" => Ok(None),
        a => a
            .parse()
            .map(Some)
            .map_err(|e| ConfigError::Invalid(format!("listen address {a:?}: {e}"))),
    }
}

/// Parses `250ms`, `2s`, `1.5s`, `5m`, `1h` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, ConfigError> {
    let s = s.trim();
    let bad = || ConfigError::Invalid(format!("duration {s:?}: expected e.g. 300ms, 2s, 1m"));
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn fsync_and_listen_parse() {
        assert_eq!(Fsync::parse("never").unwrap(), Fsync::Never);
        assert_eq!(
            Fsync::parse("interval:50ms").unwrap(),
            Fsync::Interval(Duration::from_millis(50))
        );
        assert!(Fsync::parse("sometimes").is_err());
        assert_eq!(parse_listen("off").unwrap(), None);
        assert!(parse_listen("localhost").is_err());
    }

    #[test]
    fn the_config_file_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "grace_period = \"1s\"\nforward = [\"http://127.0.0.1:1/v1/traces\"]\n",
        )
        .unwrap();
        let c = ServeSettings::load(&p).unwrap();
        assert_eq!(c.grace_period.as_deref(), Some("1s"));
        assert_eq!(c.forward.unwrap().len(), 1);
        std::fs::write(&p, "grace_perod = \"1s\"\n").unwrap();
        let err = ServeSettings::load(&p).unwrap_err().to_string();
        assert!(err.contains("grace_perod"), "{err}");
    }

    #[test]
    fn zero_caps_are_refused() {
        let mut c = ReceiverConfig::new("/tmp/x");
        assert!(c.check().is_ok());
        c.max_open_runs = 0;
        assert!(c.check().is_err());
    }
}
