//! Where spans go and how they are batched: [`ExportConfig`] and its resolution against the
//! standard `OTEL_*` environment variables (explicit configuration always wins).

use crate::error::InstrumentError;
use std::time::Duration;

/// Default OTLP/gRPC endpoint (loopback only; nothing else is ever a default target).
pub const DEFAULT_GRPC_ENDPOINT: &str = "http://127.0.0.1:4317";
/// Default OTLP/HTTP base endpoint; `/v1/traces` is appended.
pub const DEFAULT_HTTP_ENDPOINT: &str = "http://127.0.0.1:4318";
/// Default `service.name` when neither the config nor `OTEL_SERVICE_NAME` sets one.
pub const DEFAULT_SERVICE_NAME: &str = "traj-agent";
/// Default batch queue: holds a 10 000-span burst several times over.
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 65_536;

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (tonic).
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    HttpProtobuf,
}

impl Protocol {
    /// Parses the values of `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc`, `http/protobuf`; `http` is
    /// accepted as shorthand). `http/json` is not supported.
    pub fn parse(s: &str) -> Option<Protocol> {
        match s.trim() {
            "grpc" => Some(Protocol::Grpc),
            "http/protobuf" | "http" => Some(Protocol::HttpProtobuf),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// What [`crate::init`] sets up. `None` fields fall back to the `OTEL_*` variables, then to
/// the defaults above.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// For gRPC the collector address; for HTTP a base URL (`/v1/traces` is appended when it
    /// has no path) or the full traces URL.
    pub endpoint: Option<String>,
    pub protocol: Option<Protocol>,
    pub service_name: Option<String>,
    /// Spans the batch queue holds before further spans are dropped (and counted).
    pub max_queue_size: usize,
    /// Spans per OTLP request.
    pub max_export_batch_size: usize,
    /// How often the batch processor exports on its own.
    pub scheduled_delay: Duration,
    /// Timeout of one OTLP request.
    pub export_timeout: Duration,
    /// Least verbose `tracing` level exported as spans (the helpers use `INFO`).
    pub level: tracing::Level,
    /// When set, a `fmt` layer writes logs to stderr with this filter directive (`RUST_LOG`
    /// overrides it). `None` installs no log output.
    pub stderr_log_filter: Option<String>,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            endpoint: None,
            protocol: None,
            service_name: None,
            max_queue_size: DEFAULT_MAX_QUEUE_SIZE,
            max_export_batch_size: 1024,
            scheduled_delay: Duration::from_millis(500),
            export_timeout: Duration::from_secs(10),
            level: tracing::Level::INFO,
            stderr_log_filter: Some("warn".to_string()),
        }
    }
}

/// The configuration after applying the environment: exactly what the exporter uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedExport {
    pub protocol: Protocol,
    /// Full URL the exporter sends to (for HTTP it includes `/v1/traces`).
    pub endpoint: String,
    pub service_name: String,
}

const ENV_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const ENV_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const ENV_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const ENV_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
const ENV_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";

impl ExportConfig {
    /// Resolves against the process environment.
    pub fn resolve(&self) -> Result<ResolvedExport, InstrumentError> {
        self.resolve_with(|k| std::env::var(k).ok())
    }

    /// Resolves against `env` (a lookup of variable names; empty values count as unset).
    ///
    /// Precedence: explicit field > `*_TRACES_*` variable > generic variable > default. As the
    /// OTLP spec says, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is used as is, while the generic
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` gets `/v1/traces` appended for HTTP.
    pub fn resolve_with(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ResolvedExport, InstrumentError> {
        let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let protocol = match self.protocol {
            Some(p) => p,
            None => match env(ENV_TRACES_PROTOCOL)
                .map(|v| (ENV_TRACES_PROTOCOL, v))
                .or_else(|| env(ENV_PROTOCOL).map(|v| (ENV_PROTOCOL, v)))
            {
                Some((key, v)) => Protocol::parse(&v).ok_or_else(|| InstrumentError::Config {
                    key: key.to_string(),
                    message: format!("unsupported protocol {v:?} (use grpc or http/protobuf)"),
                })?,
                None => Protocol::Grpc,
            },
        };
        let (key, endpoint) = if let Some(e) = self.endpoint.clone().filter(|e| !e.is_empty()) {
            let e = match protocol {
                Protocol::Grpc => e,
                Protocol::HttpProtobuf => with_traces_path_if_bare(&e),
            };
            ("endpoint", e)
        } else if let Some(e) = env(ENV_TRACES_ENDPOINT) {
            (ENV_TRACES_ENDPOINT, e)
        } else if let Some(e) = env(ENV_ENDPOINT) {
            let e = match protocol {
                Protocol::Grpc => e,
                Protocol::HttpProtobuf => append_traces_path(&e),
            };
            (ENV_ENDPOINT, e)
        } else {
            let e = match protocol {
                Protocol::Grpc => DEFAULT_GRPC_ENDPOINT.to_string(),
                Protocol::HttpProtobuf => append_traces_path(DEFAULT_HTTP_ENDPOINT),
            };
            ("default", e)
        };
        let endpoint = endpoint.trim().to_string();
        if !endpoint.starts_with("http://") {
            return Err(InstrumentError::Config {
                key: key.to_string(),
                message: format!(
                    "endpoint {endpoint:?} must be an http:// URL (TLS is not built in)"
                ),
            });
        }
        let service_name = self
            .service_name
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| env(ENV_SERVICE_NAME))
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string());
        Ok(ResolvedExport {
            protocol,
            endpoint,
            service_name,
        })
    }
}

fn append_traces_path(base: &str) -> String {
    format!("{}/v1/traces", base.trim().trim_end_matches('/'))
}

/// `http://h:p` or `http://h:p/` → `http://h:p/v1/traces`; a URL with a path is kept.
fn with_traces_path_if_bare(url: &str) -> String {
    let rest = url.trim().strip_prefix("http://").unwrap_or(url);
    match rest.find('/') {
        None => append_traces_path(url),
        Some(i) if rest[i..] == *"/" => append_traces_path(url),
        Some(_) => url.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn defaults_are_grpc_on_loopback() {
        let r = ExportConfig::default().resolve_with(env_of(&[])).unwrap();
        assert_eq!(r.protocol, Protocol::Grpc);
        assert_eq!(r.endpoint, "http://127.0.0.1:4317");
        assert_eq!(r.service_name, "traj-agent");
    }

    #[test]
    fn env_is_honoured_and_traces_specific_wins() {
        let env = env_of(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9000/"),
            ("OTEL_SERVICE_NAME", "svc-from-env"),
        ]);
        let r = ExportConfig::default().resolve_with(&env).unwrap();
        assert_eq!(r.protocol, Protocol::HttpProtobuf);
        assert_eq!(r.endpoint, "http://127.0.0.1:9000/v1/traces");
        assert_eq!(r.service_name, "svc-from-env");

        let env = env_of(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9000"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://127.0.0.1:9001/custom",
            ),
        ]);
        let r = ExportConfig::default().resolve_with(&env).unwrap();
        assert_eq!(r.endpoint, "http://127.0.0.1:9001/custom");
    }

    #[test]
    fn explicit_config_wins_over_env() {
        let env = env_of(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:1/x"),
            ("OTEL_SERVICE_NAME", "env"),
        ]);
        let cfg = ExportConfig {
            endpoint: Some("http://127.0.0.1:4444".into()),
            protocol: Some(Protocol::Grpc),
            service_name: Some("explicit".into()),
            ..ExportConfig::default()
        };
        let r = cfg.resolve_with(&env).unwrap();
        assert_eq!(r.protocol, Protocol::Grpc);
        assert_eq!(r.endpoint, "http://127.0.0.1:4444");
        assert_eq!(r.service_name, "explicit");

        let cfg = ExportConfig {
            endpoint: Some("http://127.0.0.1:4318".into()),
            protocol: Some(Protocol::HttpProtobuf),
            ..ExportConfig::default()
        };
        assert_eq!(
            cfg.resolve_with(env_of(&[])).unwrap().endpoint,
            "http://127.0.0.1:4318/v1/traces"
        );
    }

    #[test]
    fn bad_values_are_precise_errors() {
        let err = ExportConfig::default()
            .resolve_with(env_of(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]))
            .unwrap_err();
        assert!(
            err.to_string().contains("OTEL_EXPORTER_OTLP_PROTOCOL"),
            "{err}"
        );
        let err = ExportConfig {
            endpoint: Some("https://127.0.0.1:4317".into()),
            ..ExportConfig::default()
        }
        .resolve_with(env_of(&[]))
        .unwrap_err();
        assert!(err.to_string().contains("http://"), "{err}");
    }
}
