//! The settings of `traj serve`, each defined once: its name (the struct field, which is also the
//! config-file key and, with `-` for `_`, the long flag), its type, its default and its doc line.
//! Everything else is generated from that one table by [`serve_settings!`]: the clap flags (whose
//! help shows the default), the serde keys of the TOML file, the layering (flags over file over
//! defaults, [`ServeSettings::or`]) and the settings table of `docs/receiver.md` (checked by a
//! test, so the docs cannot drift from the code).
//!
//! Values the receiver needs typed (addresses, durations, the fsync policy) are kept as the
//! strings the user wrote and parsed once, in [`ServeSettings::into_config`], so a bad value is
//! reported with its setting's name whether it came from a flag or the file.

use crate::config::{parse_duration, parse_listen, ConfigError, Fsync, ReceiverConfig, TlsFiles};
use std::path::{Path, PathBuf};

/// One row of the settings table (for docs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingDoc {
    /// The config-file key.
    pub key: &'static str,
    /// The long flag (`None`: config file only).
    pub flag: Option<String>,
    /// The default as shown in `--help` (`None`: unset unless given).
    pub default: Option<String>,
    /// What the setting does (the field's doc comment).
    pub doc: String,
}

/// The doc comment lines of a field as one line.
fn doc_line(lines: &[&str]) -> String {
    lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A flag's help: its doc line and, if it has one, its default.
fn help_text(lines: &[&str], default: Option<String>) -> String {
    let doc = doc_line(lines);
    match default {
        Some(d) => format!("{doc} [default: {d}]"),
        None => doc,
    }
}

/// Generates [`ServeSettings`] and its tables from one list of settings. Entries under `flags`
/// are both flags and config-file keys; entries under `file_only` are keys only. `= expr` gives
/// a default (shown in `--help` through its `Display`); extra `#[arg(..)]` attributes pass to clap.
macro_rules! serve_settings {
    (
        flags {
            $(
                $(#[doc = $doc:literal])*
                $(#[arg($($arg:tt)*)])*
                $key:ident : $ty:ty $(= $default:expr)?
            ),* $(,)?
        }
        file_only {
            $(
                $(#[doc = $fdoc:literal])*
                $fkey:ident : $fty:ty
            ),* $(,)?
        }
    ) => {
        /// Every `traj serve` setting, each `None` unless given. Parsed from the command line
        /// (clap) and from the TOML config file (serde, unknown keys refused); layered with
        /// [`ServeSettings::or`] and resolved by [`ServeSettings::into_config`].
        #[derive(Debug, Clone, Default, clap::Args, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct ServeSettings {
            $(
                $(#[doc = $doc])*
                #[arg(
                    long,
                    help = help_text(&[$($doc),*], None $(.or(Some($default.to_string())))?),
                    long_help = help_text(&[$($doc),*], None $(.or(Some($default.to_string())))?)
                    $(, $($arg)*)*
                )]
                pub $key: Option<$ty>,
            )*
            $(
                $(#[doc = $fdoc])*
                #[arg(skip)]
                pub $fkey: Option<$fty>,
            )*
        }

        impl ServeSettings {
            /// The defaults: every setting that has one, set to it.
            pub fn defaults() -> ServeSettings {
                ServeSettings {
                    $( $key: None $(.or(Some($default)))?, )*
                    $( $fkey: None, )*
                }
            }

            /// Each setting from `self` if set there, else from `lower`.
            pub fn or(self, lower: ServeSettings) -> ServeSettings {
                ServeSettings {
                    $( $key: self.$key.or(lower.$key), )*
                    $( $fkey: self.$fkey.or(lower.$fkey), )*
                }
            }

            /// The settings table, in definition order.
            pub fn table() -> Vec<SettingDoc> {
                vec![
                    $(SettingDoc {
                        key: stringify!($key),
                        flag: Some(format!("--{}", stringify!($key).replace('_', "-"))),
                        default: None $(.or(Some($default.to_string())))?,
                        doc: doc_line(&[$($doc),*]),
                    },)*
                    $(SettingDoc {
                        key: stringify!($fkey),
                        flag: None,
                        default: None,
                        doc: doc_line(&[$($fdoc),*]),
                    },)*
                ]
            }
        }
    };
}

serve_settings! {
    flags {
        /// Data directory: raw store (`raw/`), assembled runs (`runs/`), `receiver.json`. Required.
        data_dir: PathBuf,
        /// OTLP/gRPC listen address (`off` to disable).
        grpc: String = String::from("127.0.0.1:4317"),
        /// OTLP/HTTP listen address, also /metrics and /healthz (`off` to disable).
        http: String = String::from("127.0.0.1:4318"),
        /// Tee accepted trace batches to this OTLP endpoint (repeatable flag; a list in the file):
        /// `grpc://host:port` or `http://host:port` (gRPC), `http://host:port/v1/traces`
        /// (HTTP/protobuf).
        forward: Vec<String>,
        /// Raw store durability: `always`, `never` or `interval:<duration>`.
        fsync: String = String::from("always"),
        /// Maximum request size in bytes, on the wire and after decompression.
        max_request_bytes: usize = crate::config::DEFAULT_MAX_REQUEST_BYTES,
        /// Finalize a run this long after its root span arrived and nothing else arrived.
        grace_period: String = String::from("2s"),
        /// Finalize a run without root span after this long without spans.
        idle_timeout: String = String::from("60s"),
        /// Finalized traces stay indexed in memory this long for late spans, then move to the
        /// on-disk index (`index/traces.redb`): memory follows recent traffic, not history.
        late_window: String = String::from("60s"),
        /// Drop raw segments (whole, oldest first) last written longer ago than this (`off`: keep
        /// forever); never one holding a record of a run not written yet.
        raw_retention_age: String = String::from("off"),
        /// Drop the oldest raw segments while the raw store is larger than this many bytes (0: no
        /// size limit); the same rules as `raw_retention_age`.
        raw_retention_bytes: u64 = 0,
        /// Open runs held in memory before new batches are refused (retryable).
        max_open_runs: usize = 10_000,
        /// Spans and log records being stored at once before new batches are refused (retryable).
        max_spans_in_flight: usize = 100_000,
        /// Request bytes (decompressed) being checked and stored at once before new requests are
        /// refused (retryable); a single larger request is let through alone.
        max_bytes_in_flight: usize = 67_108_864,
        /// Threads that assemble and write runs, each owning a share of the traces (0: one per core).
        assembly_threads: usize = 0,
        /// Mapping rules (TOML) for foreign GenAI/OpenInference traces (unset: the built-in rules).
        mapping_rules: PathBuf,
        /// Batches queued per forward target before new ones are dropped (and counted).
        forward_queue: usize = 1024,
        /// Delivery attempts per batch and forward target (backoff 50 ms doubling to 2 s).
        forward_attempts: u32 = 20,
        /// File holding the bearer token clients must send (`Authorization: Bearer <token>`);
        /// /healthz stays open (unset: no authentication).
        auth_token_file: PathBuf,
        /// Serve both transports over TLS with this PEM certificate chain (needs `tls_key`).
        tls_cert: PathBuf,
        /// PEM private key of `tls_cert`.
        tls_key: PathBuf,
        /// Redact span, span-event and log attribute strings before the raw store append (with
        /// `redact_policy`, else the default source policy).
        #[arg(num_args = 0..=1, require_equals = true, default_missing_value = "true")]
        redact_before_store: bool = false,
    }
    file_only {
        /// The policy (`name`, `kinds`, `placeholder`) for `redact_before_store`.
        redact_policy: traj_redact::Policy,
    }
}

impl ServeSettings {
    /// Reads and parses a TOML config file; unknown keys are errors (a typo must not be ignored).
    pub fn load(path: &Path) -> Result<ServeSettings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Toml {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Layers `self` over the defaults and parses the result into a checked [`ReceiverConfig`].
    pub fn into_config(self) -> Result<ReceiverConfig, ConfigError> {
        let s = self.or(ServeSettings::defaults());
        let data_dir = s.data_dir.ok_or_else(|| {
            ConfigError::Invalid(
                "data_dir is required (--data-dir or data_dir in the config file)".into(),
            )
        })?;
        let redact_before_store = s.redact_before_store.unwrap_or(false).then(|| {
            s.redact_policy
                .unwrap_or_else(traj_redact::Policy::default_source)
        });
        let cfg = ReceiverConfig {
            data_dir,
            grpc_addr: parse_listen(&required(s.grpc, "grpc")?)?,
            http_addr: parse_listen(&required(s.http, "http")?)?,
            forward: s.forward.unwrap_or_default(),
            fsync: Fsync::parse(&required(s.fsync, "fsync")?)?,
            max_request_bytes: required(s.max_request_bytes, "max_request_bytes")?,
            grace_period: parse_duration(&required(s.grace_period, "grace_period")?)?,
            idle_timeout: parse_duration(&required(s.idle_timeout, "idle_timeout")?)?,
            late_window: parse_duration(&required(s.late_window, "late_window")?)?,
            raw_retention: traj_store::RetentionPolicy {
                max_age: parse_optional_duration(&required(
                    s.raw_retention_age,
                    "raw_retention_age",
                )?)?,
                max_bytes: Some(required(s.raw_retention_bytes, "raw_retention_bytes")?)
                    .filter(|&b| b > 0),
            },
            max_open_runs: required(s.max_open_runs, "max_open_runs")?,
            max_spans_in_flight: required(s.max_spans_in_flight, "max_spans_in_flight")?,
            max_bytes_in_flight: required(s.max_bytes_in_flight, "max_bytes_in_flight")?,
            assembly_threads: required(s.assembly_threads, "assembly_threads")?,
            mapping_rules: s.mapping_rules,
            forward_queue: required(s.forward_queue, "forward_queue")?,
            forward_attempts: required(s.forward_attempts, "forward_attempts")?,
            auth_token_file: s.auth_token_file,
            tls: TlsFiles::pair(s.tls_cert, s.tls_key)?,
            redact_before_store,
        };
        cfg.check()?;
        Ok(cfg)
    }

    /// The settings table of `docs/receiver.md`, as markdown.
    pub fn markdown_table() -> String {
        let mut out = String::from("| key | flag | default | meaning |\n|---|---|---|---|\n");
        for s in ServeSettings::table() {
            let code = |v: &str| format!("`{v}`");
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                code(s.key),
                s.flag.as_deref().map_or("(file only)".to_string(), code),
                s.default.as_deref().map_or("unset".to_string(), code),
                s.doc
            ));
        }
        out
    }
}

/// A setting that has a default (so is set once layered over [`ServeSettings::defaults`]).
fn required<T>(v: Option<T>, key: &str) -> Result<T, ConfigError> {
    v.ok_or_else(|| ConfigError::Invalid(format!("{key}: no value and no default")))
}

/// A duration, or `off` for none.
fn parse_optional_duration(s: &str) -> Result<Option<std::time::Duration>, ConfigError> {
    match s.trim() {
        "off" => Ok(None),
        other => parse_duration(other).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::Duration;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: ServeSettings,
    }

    #[test]
    fn every_flag_is_a_file_key_and_the_defaults_resolve() {
        let cfg = ServeSettings {
            data_dir: Some("/d".into()),
            ..ServeSettings::default()
        }
        .into_config()
        .unwrap();
        assert_eq!(cfg.grace_period, Duration::from_secs(2));
        assert_eq!(cfg.grpc_addr, Some("127.0.0.1:4317".parse().unwrap()));
        // Each key, given in a file, is accepted.
        for s in ServeSettings::table() {
            let value = match s.key {
                "forward" => "[]".to_string(),
                "max_request_bytes"
                | "max_open_runs"
                | "max_spans_in_flight"
                | "max_bytes_in_flight"
                | "assembly_threads"
                | "raw_retention_bytes"
                | "forward_queue"
                | "forward_attempts" => "1".to_string(),
                "redact_before_store" => "true".to_string(),
                "redact_policy" => "{ name = \"p\", kinds = [\"email\"] }".to_string(),
                _ => "\"x\"".to_string(),
            };
            let text = format!("{} = {value}\n", s.key);
            let parsed: Result<ServeSettings, _> = toml::from_str(&text);
            assert!(parsed.is_ok(), "{text}: {parsed:?}");
        }
    }

    #[test]
    fn retention_is_off_by_default_and_parses_age_and_size() {
        let with = |age: Option<&str>, bytes: Option<u64>| {
            ServeSettings {
                data_dir: Some("/d".into()),
                raw_retention_age: age.map(str::to_string),
                raw_retention_bytes: bytes,
                ..ServeSettings::default()
            }
            .into_config()
            .map(|c| c.raw_retention)
        };
        assert!(with(None, None).unwrap().is_off());
        let p = with(Some("2h"), Some(1 << 30)).unwrap();
        assert_eq!(p.max_age, Some(Duration::from_secs(7200)));
        assert_eq!(p.max_bytes, Some(1 << 30));
        assert_eq!(
            with(Some("off"), Some(0)).unwrap(),
            traj_store::RetentionPolicy::default()
        );
        assert!(with(Some("a week"), None).is_err());
    }

    #[test]
    fn help_shows_the_defaults() {
        let mut cmd = <Cli as clap::CommandFactory>::command();
        let help = cmd.render_long_help().to_string();
        assert!(help.contains("--grace-period"), "{help}");
        assert!(help.contains("[default: 2s]"), "{help}");
        assert!(help.contains("[default: 67108864]"), "{help}");
        assert!(!help.contains("redact-policy"), "{help}");
        let cli =
            Cli::try_parse_from(["x", "--redact-before-store", "--forward", "grpc://a:1"]).unwrap();
        assert_eq!(cli.settings.redact_before_store, Some(true));
        assert_eq!(cli.settings.forward, Some(vec!["grpc://a:1".to_string()]));
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.settings.redact_before_store, None);
        assert_eq!(cli.settings.forward, None);
    }

    #[test]
    fn docs_receiver_md_has_the_settings_table() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/receiver.md");
        let docs = std::fs::read_to_string(&path).unwrap();
        let table = ServeSettings::markdown_table();
        assert!(
            docs.contains(&table),
            "docs/receiver.md must contain the settings table generated from \
             crates/receiver/src/settings.rs; paste this:\n\n{table}"
        );
    }
}
